"""Sensors: backfill newly tracked KOLs, and run the checks a run lost to the API's horizon could not.

The new-KOL sensor: the daily run only asks for yesterday; a newly tracked KOL also deserves every
day the API still serves. The sensor watches `tracked_kol.added_at` (cursor = newest value seen) and
launches one single-run backfill over the largest window, for the new KOLs alone, named in the run
config (and counted in a tag). On its very first tick every tracked KOL counts as new: that is the
initial load.

The follow-up sensor: a backfill over a range that reaches past the API's horizon loads every
reachable date, marks those partitions materialised and fails for the dates lost for good. Dagster
then skips the run's asset checks (their step depends on the failed one), and it cannot fail only
some partitions of a single run (dagster-io/dagster#17836). So when a run failed for lost dates alone,
this sensor launches one run over the reachable part: everything is in hand, it bills nothing, and
its checks run over exactly those partitions.
"""

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from dagster import (
    DefaultSensorStatus,
    RunConfig,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from pgy_pipeline.defs.assets import CHECKS_FOLLOWUP_KEY, TrendRunConfig
from pgy_pipeline.defs.jobs import kol_fans_trend_job
from pgy_pipeline.defs.partitions import partitions_def, range_tags
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.model import Endpoint
from pgy_pipeline.plan import reachable_range
from pgy_pipeline.warehouse.runs import kols_added_since

KOLS_PER_RUN = 1000  # keeps each run's config small and its failure blast radius bounded


def backfill_range(endpoint: Endpoint, latest_key: str) -> tuple[date, date]:
    """The partitions the largest window reaches when the newest partition is `latest_key` (never before the first)."""
    latest = date.fromisoformat(latest_key)
    first = date.fromisoformat(partitions_def.get_first_partition_key() or latest_key)
    reach = reachable_range(first, latest, endpoint=endpoint, today=latest + timedelta(days=1))
    return reach or (latest, latest)


@sensor(
    job=kol_fans_trend_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.STOPPED,
    description="Backfills the largest window the API serves for KOLs newly added to pgy.tracked_kol.",
)
def new_kols_sensor(
    context: SensorEvaluationContext, warehouse: WarehouseResource, trend_api: TrendApiResource
) -> SensorResult | SkipReason:
    with warehouse.engine() as engine:
        new_ids, cursor = kols_added_since(engine, context.cursor)
    if not new_ids:
        return SkipReason("no newly tracked KOLs")
    latest_key = partitions_def.get_last_partition_key()
    if latest_key is None:
        return SkipReason("no partition is complete yet")
    start, end = backfill_range(trend_api.endpoint_variant(), latest_key)
    requests = [
        RunRequest(
            run_key=f"new-kols:{cursor}:{i}",
            run_config=RunConfig(ops={"kol_fans_trend": TrendRunConfig(kol_ids=batch)}),
            tags={**range_tags(start, end), "pgy/new_kols": str(len(batch)), "pgy/first_new_kol": batch[0]},
        )
        for i, batch in enumerate(new_ids[j : j + KOLS_PER_RUN] for j in range(0, len(new_ids), KOLS_PER_RUN))
    ]
    return SensorResult(run_requests=requests, cursor=cursor)


@run_failure_sensor(
    name="kol_fans_trend_checks_followup",
    request_job=kol_fans_trend_job,
    default_status=DefaultSensorStatus.RUNNING,  # bills nothing: it only re-reads what the failed run loaded
    description="After a run failed only for dates older than the API serves, checks its reachable partitions.",
)
def checks_followup_sensor(context: RunFailureSensorContext) -> RunRequest | SkipReason:
    for event in context.get_step_failure_events():
        info = event.step_failure_data.user_failure_data
        value = info.metadata.get(CHECKS_FOLLOWUP_KEY) if info is not None else None
        if value is not None and isinstance(value.value, str):
            start, end = value.value.split("..")
            kol_ids = _run_kol_ids(context.dagster_run.run_config)  # the same KOLs as the failed run, never more
            return RunRequest(
                run_key=f"checks-followup:{context.dagster_run.run_id}",
                run_config=RunConfig(ops={"kol_fans_trend": TrendRunConfig(kol_ids=kol_ids)}),
                tags={**range_tags(start, end), "pgy/followup_of": context.dagster_run.run_id},
            )
    return SkipReason("the run failed for more than dates lost to the API's horizon; nothing to follow up")


def _run_kol_ids(run_config: Mapping[str, Any]) -> list[str] | None:
    """The `kol_ids` a run was scoped to in its run config (None: all active KOLs)."""
    node: Any = run_config
    for key in ("ops", "kol_fans_trend", "config", "kol_ids"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return [str(k) for k in node] if isinstance(node, list) else None
