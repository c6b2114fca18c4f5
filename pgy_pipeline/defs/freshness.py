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

import logging
from datetime import timedelta

from dagster import FreshnessPolicy

from pgy_pipeline.china_time import CHINA_TZ_NAME
from pgy_pipeline.config import Settings

log = logging.getLogger(__name__)


def trend_freshness_policy(deadline: tuple[int, int]) -> FreshnessPolicy:
    """The policy for a deadline (hour, minute) China time, as `Settings.freshness_deadline` parses it."""
    hour, minute = deadline
    return FreshnessPolicy.cron(
        deadline_cron=f"{minute} {hour} * * *",
        lower_bound_delta=timedelta(hours=hour, minutes=minute),
        timezone=CHINA_TZ_NAME,
    )


_deadline, FRESHNESS_WARNING = Settings.from_env().at_load(Settings.freshness_deadline)
if FRESHNESS_WARNING:  # the code location still loads; the asset's description and the alert sensor say why
    log.warning(FRESHNESS_WARNING)
TREND_FRESHNESS = trend_freshness_policy(_deadline)
