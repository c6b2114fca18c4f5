"""The daily schedule: every morning in China, one run for yesterday and every earlier gap its window covers.

The time of day comes from `PGY_SCHEDULE_TIME` (`HH:MM`, China time; default 06:30, when the API has
usually published yesterday). A daily run for yesterday calls the API's smallest window (30 days) for
every KOL anyway, so the schedule widens its partition range back to the oldest partition inside that
window that Dagster does not show as materialised (missing, or failed on an earlier day). After the
daemon was down for three days, the next tick is ONE run over four partitions that still bills 2 calls
per KOL: self-healing for free. Anything older than the window is a backfill's job (it bills a 60/90-day
window), so the schedule never reaches further.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from dagster import (
    AssetKey,
    DagsterInstance,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    schedule,
)

from pgy_pipeline.api.endpoints import window_for
from pgy_pipeline.china_time import CHINA_TZ_NAME, china_today, latest_served_date
from pgy_pipeline.config import Settings
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.jobs import kol_fans_trend_job
from pgy_pipeline.defs.partitions import partitions_def, range_tags
from pgy_pipeline.defs.resources import TrendApiResource
from pgy_pipeline.model import Endpoint
from pgy_pipeline.plan import date_range

log = logging.getLogger(__name__)
SCHEDULE_NAME = "kol_fans_trend_daily"


def healing_range(instance: DagsterInstance, yesterday: date, endpoint: Endpoint) -> tuple[date, date]:
    """Yesterday back to the oldest unmaterialised partition inside the smallest window (clipped to the first)."""
    first_key = partitions_def.get_first_partition_key()
    first = date.fromisoformat(first_key) if first_key else yesterday
    oldest = max(first, yesterday - timedelta(days=window_for(endpoint, 1) - 1))
    materialised = instance.get_materialized_partitions(AssetKey(kol_fans_trend.key.path))
    todo = [d for d in date_range(oldest, yesterday) if d.isoformat() not in materialised]
    return (todo[0] if todo else yesterday), yesterday


(_hour, _minute), SCHEDULE_TIME_WARNING = Settings.from_env().at_load(Settings.schedule_time)
if SCHEDULE_TIME_WARNING:  # the code location still loads; the UI and the alert sensor say why the time is off
    log.warning(SCHEDULE_TIME_WARNING)


@schedule(
    name=SCHEDULE_NAME,
    job=kol_fans_trend_job,
    cron_schedule=f"{_minute} {_hour} * * *",
    execution_timezone=CHINA_TZ_NAME,
    default_status=DefaultScheduleStatus.STOPPED,
    description=(
        "Yesterday (China time) plus every earlier partition of the last 30 days not yet materialised, for every "
        "active KOL, in one run; bills 2 calls per KOL."
        + (f" WARNING: {SCHEDULE_TIME_WARNING}" if SCHEDULE_TIME_WARNING else "")
    ),
)
def daily_schedule(context: ScheduleEvaluationContext, trend_api: TrendApiResource) -> RunRequest:
    tick = context.scheduled_execution_time
    yesterday = latest_served_date(china_today(tick))
    start, end = healing_range(context.instance, yesterday, trend_api.endpoint_variant())
    if start == end:
        return RunRequest(partition_key=end.isoformat())
    return RunRequest(tags=range_tags(start, end))
