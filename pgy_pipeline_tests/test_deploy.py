"""The production `dagster.yaml` (pgy_pipeline/deploy/): Postgres storage, the run queue with tag limits,
the API concurrency pool, exercised by a real webserver and daemon running a real schedule tick."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pgy_pipeline.defs.assets import API_POOL, kol_fans_trend
from pgy_pipeline.deploy import DAGSTER_YAML
from pgy_pipeline.plan import CHINA_TZ
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.dagster_procs import BIN, free_port, gql, pgy_env, process_group, spawn, wait_for, wait_for_runs
from pgy_pipeline_tests.pg import fresh_database, libpq_url
from pgy_pipeline_tests.pipeline_support import stored, track

SCHEDULE = "kol_fans_trend_daily"
REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}"""
INSTANCE = "{ instance { runQueuingSupported runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }"


@pytest.fixture
def dagster_storage_url(admin_url: str) -> Iterator[str]:
    """Dagster's own storage: a database of its own on the test server (as it would be in production)."""
    with fresh_database(admin_url, prefix="dagster_t") as url:
        # dagster-postgres is written for psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://
        yield make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return home


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
    assert kol_fans_trend.op.pool == API_POOL


def _next_minute_in_china() -> datetime:
    """A schedule time the daemon reaches soon, with room for the daemon to start first."""
    now = datetime.now(CHINA_TZ)
    return (now + timedelta(minutes=2 if now.second > 40 else 1)).replace(second=0, microsecond=0)


@pytest.mark.timeout(900)  # real processes / many simulated days: slow on a loaded machine
def test_webserver_and_daemon_on_the_production_config_run_a_schedule_tick(
    engine: Engine,
    sim: Simulator,
    dagster_home: Path,
    dagster_storage_url: str,
    database_url: str,
    tmp_path: Path,
    yesterday: date,
) -> None:
    kols = track(engine, 3)
    tick = _next_minute_in_china()
    env = pgy_env(
        dagster_home, database_url, sim.base_url, sim.token,
        DAGSTER_PG_URL=dagster_storage_url, PGY_SCHEDULE_TIME=f"{tick:%H:%M}",
    )  # fmt: skip
    target = ["-m", "pgy_pipeline.definitions"]
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    port = free_port()
    graphql = f"http://127.0.0.1:{port}/graphql"
    with process_group() as processes:
        spawn([str(BIN / "dagster-webserver"), *target, "-h", "127.0.0.1", "-p", str(port)], env, web_log, processes)
        wait_for(f"http://127.0.0.1:{port}/server_info", processes[0], web_log)
        spawn([str(BIN / "dagster-daemon"), "run", *target], env, daemon_log, processes)

        instance = gql(graphql, INSTANCE)["instance"]
        assert instance["runQueuingSupported"] is True
        assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4

        (repo,) = gql(graphql, REPOSITORIES)["repositoriesOrError"]["nodes"]
        selector = {"repositoryLocationName": repo["location"]["name"], "repositoryName": repo["name"],
                    "scheduleName": SCHEDULE}  # fmt: skip
        started = gql(graphql, START_SCHEDULE, {"selector": selector})["startSchedule"]
        assert started["__typename"] == "ScheduleStateResult", started  # turned on as in the UI's toggle

        wait_s = (tick - datetime.now(CHINA_TZ)).total_seconds() + 150
        runs = wait_for_runs(graphql, ("dagster/schedule_name", SCHEDULE), wait_s, poll_s=1)
        logs = f"daemon:\n{daemon_log.read_text()[-3000:]}"
    assert len(runs) == 1, f"expected one scheduled run, got {runs}\n{logs}"
    (run,) = runs
    assert run["status"] == "SUCCESS", logs
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == yesterday.isoformat()  # the tick targets China-yesterday
    assert len(stored(engine, yesterday, yesterday)) == 2 * len(kols)
    assert sim.billed_calls == 2 * len(kols)  # steady state: exactly 2 billed calls per KOL
    with psycopg.connect(libpq_url(dagster_storage_url)) as conn:  # Dagster's history is in Postgres, not on local disk
        (stored_runs,) = conn.execute("SELECT count(*) FROM runs").fetchone() or (0,)
    assert stored_runs == 1
