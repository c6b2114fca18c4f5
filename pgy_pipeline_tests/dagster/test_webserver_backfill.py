"""End to end as a user does it: the Dagster webserver and daemon as real processes, a partition-range
backfill launched through the webserver's GraphQL API exactly as the UI's "Launch backfill" sends it,
then the rows checked in the warehouse."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster_procs import (
    LAUNCH_BACKFILL,
    gql,
    pgy_env,
    process_group,
    start_daemon,
    start_webserver,
    wait_for_runs,
)
from pgy_pipeline_tests.support.warehouse import stored, track

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


@pytest.fixture
def dagster_env(tmp_path: Path, database_url: str, sim_today: Simulator) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return pgy_env(home, database_url, sim_today.base_url, sim_today.token)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    with process_group() as started:
        yield started


@pytest.mark.timeout(900)  # real processes / many simulated days: slow on a loaded machine
def test_partition_range_backfill_launched_through_graphql_lands_in_the_warehouse(
    engine: Engine,
    sim_today: Simulator,
    dagster_env: dict[str, str],
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    yesterday: date,
) -> None:
    kols = track(engine, 2)
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    graphql = start_webserver(dagster_env, web_log, processes)

    start, end = yesterday - timedelta(days=2), yesterday
    names = [(start + timedelta(days=i)).isoformat() for i in range(3)]
    params = {"partitionNames": names, "assetSelection": [{"path": ["kol_fans_trend"]}]}
    launched = gql(graphql, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    # Backfills are executed by the daemon (as under `dagster dev`); started now, its first tick picks this one up.
    start_daemon(dagster_env, daemon_log, processes)
    # The run worker imports Dagster and the package; on 2 loaded cores (the suite in 4 processes, the anomaly and
    # report runs the automation starts meanwhile) that alone can take minutes: wait for it to finish, not a pace.
    runs = wait_for_runs(graphql, ("dagster/backfill", backfill_id), timeout_s=420)
    assert runs, f"no run was launched for the backfill:\n{daemon_log.read_text()[-3000:]}"
    (run,) = runs  # single-run backfill policy: the whole range in ONE run
    assert run["status"] == "SUCCESS", daemon_log.read_text()[-3000:]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (tags[RANGE_START_TAG], tags[RANGE_END_TAG]) == (
        names[0],
        names[-1],
    )
    rows = stored(engine, start, end)
    assert len(rows) == 2 * 2 * 3
    assert {k for k, _, _ in rows} == set(kols)
    assert sim_today.billed_calls == 4
