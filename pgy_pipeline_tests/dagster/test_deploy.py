"""The production `dagster.yaml` (pgy_pipeline/deploy/): Postgres storage, the run queue with tag limits,
the API concurrency pool, exercised by a real webserver and daemon running a real schedule tick."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance
from sqlalchemy import Engine

from pgy_pipeline.china_time import CHINA_TZ
from pgy_pipeline.defs.assets import API_POOL, kol_fans_trend
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster_procs import (
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
INSTANCE = "{ instance { runQueuingSupported runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }"


def test_production_instance_config_loads_with_queue_limits_and_pool(
    dagster_home: Path, dagster_storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url)
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.run_queue_config is not None and config.run_queue_config.max_concurrent_runs == 4
        limits = {limit["key"]: limit["limit"] for limit in config.run_queue_config.tag_concurrency_limits}
        assert limits == {"dagster/backfill": 1, "dagster/schedule_name": 1}
        # A run whose worker dies is failed and retried; a run the asset itself failed is not.
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
    assert kol_fans_trend.op.pool == API_POOL


def _next_minute_in_china() -> datetime:
    """The next whole minute in China: a schedule time in the future, whatever happens next."""
    return (datetime.now(CHINA_TZ) + timedelta(minutes=1)).replace(second=0, microsecond=0)


@pytest.mark.timeout(900)  # real processes / many simulated days: slow on a loaded machine
def test_webserver_and_daemon_on_the_production_config_run_a_schedule_tick(
    engine: Engine,
    sim_today: Simulator,
    dagster_home: Path,
    dagster_storage_url: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    """The schedule is turned on first; only then is its time chosen (the next minute) and the daemon started
    with it. Dagster's scheduler evaluates every tick after the moment the schedule was started, catching up
    on ticks it reaches late, so however slowly the machine starts the daemon, this tick cannot be missed."""
    kols = track(engine, 3)
    env = pgy_env(dagster_home, database_url, sim_today.base_url, sim_today.token, DAGSTER_PG_URL=dagster_storage_url)
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    with process_group() as processes:
        graphql = start_webserver(env, web_log, processes)

        instance = gql(graphql, INSTANCE)["instance"]
        assert instance["runQueuingSupported"] is True
        assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4

        (repo,) = gql(graphql, REPOSITORIES)["repositoriesOrError"]["nodes"]
        selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                    "scheduleName": SCHEDULE}  # fmt: skip
        started = gql(graphql, START_SCHEDULE, {"selector": selector})["startSchedule"]
        assert started["__typename"] == "ScheduleStateResult", started  # turned on as in the UI's toggle

        tick = _next_minute_in_china()  # after the schedule's start: the daemon will evaluate it, late or not
        daemon_env = env | {"PGY_SCHEDULE_TIME": f"{tick:%H:%M}"}
        start_daemon(daemon_env, daemon_log, processes)
        wait_s = (tick - datetime.now(CHINA_TZ)).total_seconds() + 600
        runs = wait_for_runs(graphql, ("dagster/schedule_name", SCHEDULE), wait_s, poll_s=1)
        logs = f"daemon:\n{daemon_log.read_text()[-3000:]}"
    assert len(runs) == 1, f"expected one scheduled run, got {runs}\n{logs}"
    (run,) = runs
    assert run["status"] == "SUCCESS", logs
    tags = {t["key"]: t["value"] for t in run["tags"]}
    partition = tick.date() - timedelta(days=1)  # China-yesterday of the tick's own date
    # The tick targets yesterday and, on this fresh deployment, every unmaterialised day of its 30-day window.
    assert (tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == (
        (partition - timedelta(days=29)).isoformat(),
        partition.isoformat(),
    )
    assert len(stored(engine, partition, partition)) == 2 * len(kols)
    assert sim_today.billed_calls == 2 * len(kols)  # steady state: exactly 2 billed calls per KOL
    with psycopg.connect(libpq_url(dagster_storage_url)) as conn:  # Dagster's history is in Postgres, not on local disk
        (stored_runs,) = conn.execute(
            "SELECT count(*) FROM runs WHERE pipeline_name = 'kol_fans_trend_job'"
        ).fetchone() or (0,)
    assert stored_runs == 1  # (the daemon's automation may have started kol_fans_anomaly after it: its own job)
