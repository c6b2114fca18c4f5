"""The daily schedule: every morning in China, one run for yesterday and every earlier gap its window covers.

A daily run calls the API's smallest window for every KOL anyway, so the schedule widens its range back to the
oldest date inside that window that still needs fetching, by the warehouse or by Dagster's partition marks:
missed and failed days heal for the same two calls per KOL. Anything older is a backfill's job.
See docs/dagster.md (automation) and docs/completeness.md.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta

from dagster import (
    AssetKey,
    AssetPartitionStatus,
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
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.model import Endpoint
from pgy_pipeline.plan import date_range
from pgy_pipeline.warehouse.completeness import oldest_lacking

log = logging.getLogger(__name__)
SCHEDULE_NAME = "kol_fans_trend_daily"
HEALING_FALLBACK_TAG = "pgy/healing_fallback"  # set when the warehouse could not be read at tick time


def healing_range(
    instance: DagsterInstance, yesterday: date, endpoint: Endpoint, lacking: date | None
) -> tuple[date, date]:
    """Yesterday back to the oldest date inside the smallest window (clipped to the first partition) that the
    warehouse lacks (`lacking`, from `oldest_lacking`; None: nothing, or unknown) or Dagster shows missing or
    failed. A partition in progress is left to its run."""
    first = window_start(yesterday, endpoint)
    keys = [d.isoformat() for d in date_range(first, yesterday)]
    status = instance.get_status_by_partition(AssetKey(kol_fans_trend.key.path), keys, partitions_def) or {}
    settled = {AssetPartitionStatus.MATERIALIZED, AssetPartitionStatus.IN_PROGRESS}
    todo = [date.fromisoformat(k) for k in keys if status.get(k) not in settled]
    if lacking is not None and first <= lacking <= yesterday:
        todo.append(lacking)
    return min(todo, default=yesterday), yesterday


def window_start(yesterday: date, endpoint: Endpoint) -> date:
    """The oldest partition the smallest window ending yesterday covers (never before the first partition)."""
    first_key = partitions_def.get_first_partition_key()
    first = date.fromisoformat(first_key) if first_key else yesterday
    return max(first, yesterday - timedelta(days=window_for(endpoint, 1) - 1))


def warehouse_lacking(warehouse: WarehouseResource, first: date, last: date) -> tuple[date | None, str | None]:
    """(the oldest date first..last the warehouse lacks, None) or, when the warehouse cannot be read,
    (None, one sentence saying the range follows Dagster's marks alone and why)."""
    try:
        with warehouse.engine() as engine:
            return oldest_lacking(engine, first, last), None
    except Exception as exc:  # unreachable, unmigrated, misconfigured: the tick still runs on Dagster's marks
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]  # never the URL: no password
        return None, (
            f"the warehouse could not be read ({type(exc).__name__}: {reason}); the healing range follows "
            "Dagster's partition marks alone"
        )


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
        "Yesterday (China time) plus every earlier date of the last 30 days that a KOL lacks in the warehouse "
        "or Dagster shows missing or failed, for every active KOL, in one run; bills 2 calls per KOL."
        + (f" WARNING: {SCHEDULE_TIME_WARNING}" if SCHEDULE_TIME_WARNING else "")
    ),
)
def daily_schedule(
    context: ScheduleEvaluationContext, trend_api: TrendApiResource, warehouse: WarehouseResource
) -> RunRequest:
    tick = context.scheduled_execution_time
    yesterday = latest_served_date(china_today(tick))
    endpoint = trend_api.endpoint_variant()
    lacking, fallback = warehouse_lacking(warehouse, window_start(yesterday, endpoint), yesterday)
    tags: dict[str, str] = {}
    if fallback is not None:
        context.log.warning(fallback)
        tags[HEALING_FALLBACK_TAG] = fallback
    start, end = healing_range(context.instance, yesterday, endpoint, lacking)
    if start == end:
        return RunRequest(partition_key=end.isoformat(), tags=tags)
    return RunRequest(tags={**range_tags(start, end), **tags})
