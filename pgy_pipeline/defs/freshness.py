"""The freshness policy of `kol_fans_trend`: China-yesterday must be in by a deadline (default 09:00 China).

Dagster 1.13's `FreshnessPolicy.cron` judges the time of the asset's latest materialisation: at each
deadline tick it asks whether the asset materialised between the window's start and the deadline. The
window here starts at 00:00 China time, the earliest moment China-yesterday is complete, so "fresh at
09:00" means "a run landed today before 09:00", which the daily run (default 06:30) does when all is
well. The freshness daemon (on in the production dagster.yaml) evaluates it every 30 s and the UI shows
the asset as late once the deadline passes without it; the alert sensor turns that into one message.

What Dagster cannot express: the policy is not partition-aware (it tracks materialisation time, not
which partition landed), so a backfill of old dates after midnight also counts as fresh. The
`freshness` asset check (every active KOL's newest date at most 2 days old) judges the data itself.
"""

from __future__ import annotations

import os
from datetime import timedelta

from dagster import FreshnessPolicy

from pgy_pipeline.china_time import CHINA_TZ_NAME
from pgy_pipeline.config import ConfigError, time_of_day

DEFAULT_DEADLINE = "09:00"


def trend_freshness_policy(value: str | None) -> FreshnessPolicy:
    """The policy for a deadline `HH:MM` (China time; default 09:00); 00:00 leaves no window and is refused."""
    hour, minute = time_of_day(value, "PGY_FRESHNESS_DEADLINE", DEFAULT_DEADLINE)
    since_midnight = timedelta(hours=hour, minutes=minute)
    if since_midnight < timedelta(minutes=1):
        raise ConfigError("PGY_FRESHNESS_DEADLINE=00:00 leaves no time for yesterday to land; use e.g. 09:00")
    return FreshnessPolicy.cron(
        deadline_cron=f"{minute} {hour} * * *", lower_bound_delta=since_midnight, timezone=CHINA_TZ_NAME
    )


TREND_FRESHNESS = trend_freshness_policy(os.environ.get("PGY_FRESHNESS_DEADLINE"))
