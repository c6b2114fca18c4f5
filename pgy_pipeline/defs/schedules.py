"""The daily schedule: every morning in China, one run for yesterday's partition, all active KOLs.

The time of day comes from `PGY_SCHEDULE_TIME` (`HH:MM`, China time; default 06:30, when the API has
published yesterday). Dagster takes the timezone from the partitions (Asia/Shanghai) and each tick
targets the newest complete partition before it, i.e. China-yesterday.
"""

from __future__ import annotations

import os

from dagster import DefaultScheduleStatus, build_schedule_from_partitioned_job

from pgy_pipeline.config import time_of_day
from pgy_pipeline.defs.jobs import kol_fans_trend_job

DEFAULT_TIME = "06:30"


def schedule_time(value: str | None) -> tuple[int, int]:
    """(hour, minute) from `HH:MM`; a malformed value names the variable and the expected form."""
    return time_of_day(value, "PGY_SCHEDULE_TIME", DEFAULT_TIME)


_hour, _minute = schedule_time(os.environ.get("PGY_SCHEDULE_TIME"))

daily_schedule = build_schedule_from_partitioned_job(
    kol_fans_trend_job,
    name="kol_fans_trend_daily",
    description="Yesterday's partition (China time) for every active KOL; bills 2 calls per KOL.",
    hour_of_day=_hour,
    minute_of_hour=_minute,
    default_status=DefaultScheduleStatus.STOPPED,
)
