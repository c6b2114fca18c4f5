"""The `kol_fans_trend` asset: one daily partition per China date, ranges backfilled in a single run.

The asset is a thin shell over `pgy_pipeline.pipeline.run_range`: it turns the partition key range
into dates, runs, and turns the report into metadata. A run that could not complete its range (a stop
code, failed calls, dates too old for any window, data not yet published) still loads everything it
fetched and then fails with one sentence per reason, so the UI shows why and the partitions stay
un-materialised until a rerun — which bills only what is still missing — completes them.
"""

import os
from datetime import date, timedelta

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    DailyPartitionsDefinition,
    Failure,
    MaterializeResult,
    asset,
)
from pydantic import Field

from pgy_pipeline.defs.freshness import TREND_FRESHNESS
from pgy_pipeline.defs.metadata import concurrency_metadata, report_metadata
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.errors import PgyError
from pgy_pipeline.pipeline import DEFAULT_CHUNK_CALLS, run_range
from pgy_pipeline.warehouse.errors import WarehouseUnavailable

CHINA_TZ_NAME = "Asia/Shanghai"
DEFAULT_PARTITIONS_START = "2025-01-01"
API_POOL = "justone_api"

# end_offset=0 (the default): the last partition is the last *complete* China day, i.e. yesterday,
# which is also the newest date the API serves.
partitions_def = DailyPartitionsDefinition(
    start_date=os.environ.get("PGY_PARTITIONS_START") or DEFAULT_PARTITIONS_START,
    timezone=CHINA_TZ_NAME,
)


class TrendRunConfig(Config):
    """Run config of a `kol_fans_trend` materialisation (launchpad, schedule or sensor)."""

    force: bool = Field(
        default=False, description="Fetch (and bill) again even what was already fetched for the range."
    )
    kol_ids: list[str] | None = Field(
        default=None, description="Only these tracked KOLs (the new-KOL sensor sets this); default all active."
    )
    chunk_calls: int = Field(
        default=DEFAULT_CHUNK_CALLS,
        ge=1,
        description="API calls per warehouse transaction: a run that dies loses (and its retry bills again) at "
        "most this many fetched calls.",
    )


def partition_dates(context: AssetExecutionContext) -> tuple[date, date]:
    """First and last China date of the run's partition (range), inclusive."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date()


@asset(
    group_name="pgy",
    partitions_def=partitions_def,
    backfill_policy=BackfillPolicy.single_run(),
    # Every step that calls the API is in this concurrency pool; the production dagster.yaml limits it
    # to one step at a time across all runs (see README "Deploying beyond one machine").
    pool=API_POOL,
    freshness_policy=TREND_FRESHNESS,  # China-yesterday in by PGY_FRESHNESS_DEADLINE (default 09:00 China)
    kinds={"postgres", "python"},
    description=(
        "Follower trend (total and new fans) of every active tracked KOL, one row per KOL, China date and series "
        "in pgy.kol_fans_trend. A partition is done when its date landed for every KOL the API serves."
    ),
)
def kol_fans_trend(
    context: AssetExecutionContext,
    config: TrendRunConfig,
    trend_api: TrendApiResource,
    warehouse: WarehouseResource,
) -> MaterializeResult[None]:
    start, end = partition_dates(context)
    client = trend_api.make_client()
    try:
        with client, warehouse.engine() as engine:
            report = run_range(
                engine,
                client,
                start,
                end,
                run_id=context.run.run_id,
                force=config.force,
                kol_ids=config.kol_ids,
                chunk_calls=config.chunk_calls,
            )
    except PgyError as exc:  # the sentence says what to do; the driver's traceback would bury it
        # Only an unreachable warehouse may heal by itself; an outdated schema or a refused history will not.
        raise Failure(description=str(exc), allow_retries=isinstance(exc, WarehouseUnavailable)) from None
    metadata = {**report_metadata(report), **concurrency_metadata(client.flow)}
    problems = report.problems
    if problems:
        for extra in problems[1:]:
            context.log.error(extra)
        raise Failure(description=" ".join(problems), metadata=metadata, allow_retries=False)
    return MaterializeResult(metadata=metadata)
