"""Sensors: backfill newly tracked KOLs, and run the checks a run lost to the API's horizon could not.

The new-KOL sensor launches one single-run backfill over the largest window for KOLs added since its cursor,
and requests a failed one again with a growing wait; the retry state lives in Dagster's run storage (run tags),
not the cursor, so a restarted daemon sees the same. The follow-up sensor runs the asset checks Dagster skipped
in a run that failed only for dates lost for good, over the reachable part, billing nothing.
See docs/dagster.md (automation) and docs/completeness.md.
"""

import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunConfig,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
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
from pgy_pipeline.warehouse.kols import active_kol_ids, kols_added_since

KOLS_PER_RUN = 1000  # keeps each run's config small and its failure blast radius bounded

KIND_TAG, NEW_KOL_BACKFILL = "pgy/kind", "new_kol_backfill"
ATTEMPT_TAG = "pgy/backfill_attempt"  # 1 for the sensor's first request, then one more per retry
RETRY_OF_TAG = "pgy/retry_of"  # the failed run a retry repeats
RETRY_FIRST_WAIT_S = 10 * 60  # after a first failure; doubles per failed attempt
RETRY_MAX_WAIT_S = 6 * 3600
RETRY_LOOKBACK = timedelta(days=90)  # the largest window: a chain of retries is never older than its last wait

_clock = time.time  # the wall clock the waits are measured on (a test moves it instead of waiting hours)


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
    description="Backfills the largest window the API serves for KOLs newly added to pgy.tracked_kol, and "
    "requests a failed backfill again (10 min, doubling to 6 h) until it lands.",
)
def new_kols_sensor(
    context: SensorEvaluationContext, warehouse: WarehouseResource, trend_api: TrendApiResource
) -> SensorResult | SkipReason:
    latest_key = partitions_def.get_last_partition_key()
    if latest_key is None:
        return SkipReason("no partition is complete yet")
    start, end = backfill_range(trend_api.endpoint_variant(), latest_key)
    with warehouse.engine() as engine:
        new_ids, cursor = kols_added_since(engine, context.cursor)
        failed, waiting = failed_backfills(context.instance, _clock())
        retries = [(run, ids) for run in failed if (ids := active_kol_ids(engine, _run_kol_ids(run.run_config)))]
    requests = [
        _backfill_request(f"new-kols:{cursor}:{i}", batch, start, end, attempt=1)
        for i, batch in enumerate(new_ids[j : j + KOLS_PER_RUN] for j in range(0, len(new_ids), KOLS_PER_RUN))
    ]
    for run, ids in retries:
        attempt = _attempt(run) + 1
        requests.append(_backfill_request(f"new-kols-retry:{run.run_id}", ids, start, end, attempt, run.run_id))
        context.log.info(f"new-KOL backfill {run.run_id} failed; requesting attempt {attempt} for {len(ids)} KOL(s)")
    if not requests:
        return SkipReason("no newly tracked KOLs" + _waiting_note(waiting))
    return SensorResult(run_requests=requests, cursor=cursor)


def retry_wait_s(attempt: int) -> int:
    """Seconds to wait after attempt `attempt` (1, 2, …) of a new-KOL backfill failed: 10 min doubling to 6 h."""
    return int(min(RETRY_FIRST_WAIT_S * 2 ** min(attempt - 1, 16), RETRY_MAX_WAIT_S))


def failed_backfills(instance: DagsterInstance, now: float) -> tuple[list[DagsterRun], list[float]]:
    """(failed new-KOL backfills not yet retried whose wait is over, the times the others become due)."""
    since = datetime.fromtimestamp(now, UTC) - RETRY_LOOKBACK
    records = instance.get_run_records(RunsFilter(tags={KIND_TAG: NEW_KOL_BACKFILL}, created_after=since))
    retried = {r.dagster_run.tags.get(RETRY_OF_TAG) for r in records}
    due: list[DagsterRun] = []
    waiting: list[float] = []
    for record in records:
        run = record.dagster_run
        if run.status != DagsterRunStatus.FAILURE or run.run_id in retried:
            continue
        failed_at = record.end_time or record.update_timestamp.timestamp()
        ready_at = failed_at + retry_wait_s(_attempt(run))
        if ready_at <= now:
            due.append(run)
        else:
            waiting.append(ready_at)
    return sorted(due, key=lambda r: r.run_id), waiting


def _attempt(run: DagsterRun) -> int:
    value = run.tags.get(ATTEMPT_TAG, "1")
    return int(value) if value.isdigit() else 1


def _waiting_note(waiting: list[float]) -> str:
    if not waiting:
        return ""
    at = datetime.fromtimestamp(min(waiting), UTC)
    return f"; {len(waiting)} failed new-KOL backfill(s) wait for their retry, the next at {at:%Y-%m-%d %H:%M} UTC"


def _backfill_request(
    run_key: str, kol_ids: list[str], start: date, end: date, attempt: int, retry_of: str | None = None
) -> RunRequest:
    """One backfill of `kol_ids` over start..end, tagged so operators (and this sensor) can follow its attempts."""
    tags = {
        **range_tags(start, end),
        "pgy/new_kols": str(len(kol_ids)),
        "pgy/first_new_kol": kol_ids[0],
        KIND_TAG: NEW_KOL_BACKFILL,
        ATTEMPT_TAG: str(attempt),
    }
    if retry_of is not None:
        tags[RETRY_OF_TAG] = retry_of
    return RunRequest(
        run_key=run_key, run_config=RunConfig(ops={"kol_fans_trend": TrendRunConfig(kol_ids=kol_ids)}), tags=tags
    )


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
