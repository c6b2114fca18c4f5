"""The freshness policy of `kol_fans_trend`: China-yesterday must be in by a deadline (PGY_FRESHNESS_DEADLINE).

Dagster's `FreshnessPolicy.cron` asks, at each deadline, whether the asset materialised since 00:00 China time,
the earliest moment China-yesterday is complete. It judges materialisation time, not which partition landed, so
the `freshness` asset check judges the data itself. See docs/anomalies-and-alerts.md (freshness).
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
