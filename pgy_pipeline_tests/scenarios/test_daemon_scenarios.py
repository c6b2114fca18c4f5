"""The first month in production, driven by a live webserver and daemon on the production `dagster.yaml`.

One deployment (Postgres storage, run queue, API pool) serves two scenarios in turn:

0. The webserver reports the production run queue, and Dagster's run history lands in its Postgres storage.

1. The daemon was down for three days and the API publishes one KOL late on the morning it is back:
   ONE schedule tick heals all four partitions, the step retries itself for the late KOL and succeeds,
   billing 2 calls per KOL plus 2 for the retried KOL.
2. A UI backfill (GraphQL, as "Launch backfill" sends it) over a range reaching past the API's horizon:
   ONE run for the whole range; the reachable partitions end materialised with their rows in the warehouse,
   the lost ones failed, and the follow-up sensor's run (billing nothing) runs the checks the failed run skipped.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._core.scheduler.instigation import InstigatorType, ScheduleInstigatorData
from sqlalchemy import Engine

from pgy_pipeline.china_time import CHINA_TZ, china_today
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.status import read_status
from pgy_pipeline_tests.support.dagster import disposed_after, materialize_trend, partition_keys, partition_status
from pgy_pipeline_tests.support.dagster_procs import (
    INSTANCE,
    LAUNCH_BACKFILL,
    REPOSITORIES,
    START_SCHEDULE,
    gql,
    pgy_env,
    process_group,
    start_daemon,
    start_webserver,
    wait_for_runs,
)
from pgy_pipeline_tests.support.db import libpq_url
from pgy_pipeline_tests.support.warehouse import stored, track

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

SCHEDULE = "kol_fans_trend_daily"


def _on_since_before_this_minute(dagster_home: Path) -> datetime:
    """The schedule, just turned on as in the UI, records that it was on since before the current minute (as it
    would have been for months), and that minute becomes its time: the daemon then finds a tick it has not
    evaluated yet and evaluates it on its first pass, as it does when it comes back after being down, instead
    of the test waiting up to a minute for the next one. Only the recorded start moves (Dagster's own state)."""
    tick = datetime.now(CHINA_TZ).replace(second=0, microsecond=0)
    with disposed_after(DagsterInstance.from_config(str(dagster_home))) as instance:
        states = instance.all_instigator_state(instigator_type=InstigatorType.SCHEDULE)
        (state,) = [s for s in states if s.instigator_name == SCHEDULE]
        cron = state.instigator_data.cron_schedule
        instance.update_instigator_state(state.with_data(ScheduleInstigatorData(cron, tick.timestamp() - 1)))
    return tick


@pytest.mark.timeout(600)  # a real webserver and daemon over four runs and two daemon intervals (30 s)
def test_missed_days_a_late_morning_and_a_backfill_across_the_horizon_on_a_live_daemon(
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    dagster_home: Path,
    dagster_storage_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    yesterday = china_today() - timedelta(days=1)
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url)
    kols = track(engine, 3)

    # Until four days ago all ran well: partitions of the last 30 days up to then are materialised.
    sim_today.set_today(yesterday - timedelta(days=3))
    seeded = (yesterday - timedelta(days=29)).isoformat(), (yesterday - timedelta(days=4)).isoformat()
    with disposed_after(DagsterInstance.from_config(str(dagster_home))) as instance:
        assert materialize_trend(instance, sim_today, database_url, start=seeded[0], end=seeded[1]).success
    sim_today.set_today(None)
    sim_today.reset_counters()

    env = pgy_env(
        dagster_home, database_url, sim_today.base_url, sim_today.token, DAGSTER_PG_URL=dagster_storage_url,
        PGY_PUBLISH_LAG_WAIT_S="3", PGY_PUBLISH_LAG_RETRIES="5",
        PGY_PARTITIONS_START="2025-01-01",  # this deployment keeps partitions older than the API's horizon
    )  # fmt: skip
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    with process_group() as processes:
        graphql = start_webserver(env, web_log, processes)
        queue = gql(graphql, INSTANCE)["instance"]
        assert queue["runQueuingSupported"] is True and queue["runQueueConfig"]["maxConcurrentRuns"] == 4
        (repo,) = gql(graphql, REPOSITORIES)["repositoriesOrError"]["nodes"]
        location = repo["location"]["name"]

        # --- 1. one tick after three missed days, with one KOL published late that morning ---------------
        sim_today.delay_publication(kols[1], 1)

        def publish_once_the_first_attempt_is_in() -> None:
            while len(sim_today.calls) < 2 * len(kols):
                time.sleep(0.05)
            sim_today.delay_publication(kols[1], 0)

        publisher = threading.Thread(target=publish_once_the_first_attempt_is_in, daemon=True)
        publisher.start()
        selector = {"repositoryLocationName": location, "repositoryName": repo["name"], "scheduleName": SCHEDULE}
        started = gql(graphql, START_SCHEDULE, {"selector": selector})["startSchedule"]
        assert started["__typename"] == "ScheduleStateResult", started  # turned on as in the UI's toggle
        tick = _on_since_before_this_minute(dagster_home)
        start_daemon(env | {"PGY_SCHEDULE_TIME": f"{tick:%H:%M}"}, daemon_log, processes)
        runs = wait_for_runs(graphql, ("dagster/schedule_name", SCHEDULE), timeout_s=300, poll_s=1)
        logs = f"daemon:\n{daemon_log.read_text()[-3000:]}"
        assert len(runs) == 1, f"expected one scheduled run, got {runs}\n{logs}"
        assert runs[0]["status"] == "SUCCESS", logs
        tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
        healed = yesterday - timedelta(days=3), yesterday
        assert (tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == (
            healed[0].isoformat(),
            healed[1].isoformat(),
        )
        assert sim_today.billed_calls == 2 * len(kols) + 2  # one window per KOL and series, then the late KOL again
        assert [c.kol_id for c in sim_today.calls[2 * len(kols) :]] == [kols[1], kols[1]]
        assert len(stored(engine, *healed)) == 2 * len(kols) * 4
        assert read_status(engine, days=30, today=china_today()).ok
        with psycopg.connect(libpq_url(dagster_storage_url)) as conn:  # Dagster's history: in Postgres, not on disk
            assert conn.execute("SELECT count(*) FROM runs WHERE run_id = %s", (runs[0]["runId"],)).fetchone() == (1,)

        # --- 2. a UI backfill reaching past the API's horizon ---------------------------------------------
        sim_today.reset_counters()
        oldest = yesterday - timedelta(days=59)
        start, end = oldest - timedelta(days=3), oldest + timedelta(days=2)
        params = {"partitionNames": partition_keys(start, end), "assetSelection": [{"path": ["kol_fans_trend"]}]}
        launched = gql(graphql, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        (backfill_run,) = wait_for_runs(graphql, ("dagster/backfill", launched["backfillId"]), timeout_s=300)
        assert backfill_run["status"] == "FAILURE", daemon_log.read_text()[-3000:]
        followups = wait_for_runs(graphql, ("pgy/followup_of", backfill_run["runId"]), timeout_s=300)
        assert [r["status"] for r in followups] == ["SUCCESS"], daemon_log.read_text()[-3000:]
        tags = {t["key"]: t["value"] for t in followups[0]["tags"]}
        assert (tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == (
            oldest.isoformat(),
            end.isoformat(),
        )
    assert sim_today.billed_calls == 2 * len(kols)  # the backfill's windows; the follow-up billed nothing
    assert len(stored(engine, oldest, end)) == 2 * len(kols) * 3  # the reachable days, from the oldest served
    with disposed_after(DagsterInstance.from_config(str(dagster_home))) as instance:
        status = partition_status(instance, start, end)
        assert status == {
            k: ("FAILED" if k < oldest.isoformat() else "MATERIALIZED") for k in partition_keys(start, end)
        }
        assert set(partition_status(instance, *healed).values()) == {"MATERIALIZED"}
        records = instance.get_records_for_run(
            followups[0]["runId"], of_type=DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
        evaluations = [r.event_log_entry.get_dagster_event().asset_check_evaluation_data for r in records]
        checks = {e.check_name: e.passed for e in evaluations}
    assert checks == dict.fromkeys(
        ["partition_completeness", "no_gaps_60_days", "total_vs_new_consistency", "freshness"], True
    )
