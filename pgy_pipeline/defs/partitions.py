"""The daily partitions both assets share, and the partition-range facts every schedule, sensor and check uses.

A partition is one China calendar date. The newest is China-yesterday (`end_offset=0`: the last *complete*
day), which is also the newest date the API serves. A run over a range of partitions carries the range in
Dagster's two run tags below; they are spelled once, here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, timedelta

from dagster import DailyPartitionsDefinition, TimeWindow

from pgy_pipeline.china_time import CHINA_TZ_NAME, china_today
from pgy_pipeline.config import ConfigError, Settings
from pgy_pipeline.model import Endpoint
from pgy_pipeline.plan import oldest_reachable_date

log = logging.getLogger(__name__)
# Dagster's run tags for a partition range (what a UI backfill or a ranged RunRequest sets).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


def default_partitions_start() -> str:
    """The oldest date the configured endpoint still serves, as of when the definitions load.

    Partitions older than that could never be filled (the API only answers its last 60/90 days), and a
    newcomer's partitions page would list hundreds of them as missing. Set PGY_PARTITIONS_START (e.g. to
    the day you first ran the pipeline) to keep older partitions visible.
    """
    try:
        endpoint = Settings.from_env().trend_endpoint
    except ConfigError:  # a bad setting fails every run with its own sentence; the partitions still load
        endpoint = Endpoint.LEGACY_V1
    return oldest_reachable_date(china_today(), endpoint).isoformat()


_start, PARTITIONS_START_WARNING = Settings.from_env().at_load(Settings.partitions_start)
if PARTITIONS_START_WARNING:  # the code location still loads; the assets' descriptions and the alert sensor say why
    log.warning(PARTITIONS_START_WARNING)
partitions_def = DailyPartitionsDefinition(
    start_date=_start.isoformat() if _start else default_partitions_start(),
    timezone=CHINA_TZ_NAME,
)


def window_dates(window: TimeWindow) -> tuple[date, date]:
    """First and last China date of a partition (range)'s time window, inclusive."""
    return window.start.date(), (window.end - timedelta(days=1)).date()


def range_tags(start: date | str, end: date | str) -> dict[str, str]:
    """The run tags that make a run cover partitions start..end (inclusive)."""
    return {RANGE_START_TAG: str(start), RANGE_END_TAG: str(end)}


def tagged_range(tags: Mapping[str, str]) -> str | None:
    """The partitions a run's tags name, as `D` or `D1..D2`, or None for an unpartitioned run."""
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if start and end:
        return start if start == end else f"{start}..{end}"
    return tags.get(PARTITION_TAG)
