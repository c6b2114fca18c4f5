"""End to end as a user does it: the Dagster webserver and daemon as real processes, a partition-range
backfill launched through the webserver's GraphQL API exactly as the UI's "Launch backfill" sends it,
then the rows checked in the warehouse."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine

from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.pipeline_support import YESTERDAY, engine, sim, stored, track

__all__ = ["engine", "sim"]  # fixtures

BIN = Path(sys.executable).parent
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""
RUNS = """
query Runs($backfill: String!) {
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $backfill}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    reply = requests.post(url, json={"query": query, "variables": variables}, timeout=30)
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


@pytest.fixture
def dagster_env(tmp_path: Path, database_url: str, sim: Simulator) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGY_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        PGY_DATABASE_URL=database_url,
        PGY_API_BASE_URL=sim.base_url,
        PGY_API_TOKEN=sim.token,
        PGY_TREND_ENDPOINT="legacy_v1",
    )
    return env


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:  # Ctrl-C, as a user stops them
        os.killpg(proc.pid, signal.SIGINT)
    for proc in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left (e.g. a lingering code server)


def _start(cmd: list[str], env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> None:
    with log.open("wb") as out:
        # A session of its own, so teardown can stop the process with all its children (code servers, run
        # workers) by signalling the group, and nothing of the test's own group is ever signalled.
        proc = subprocess.Popen(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[1], start_new_session=True
        )
        started.append(proc)


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"webserver exited:\n{log.read_text()[-3000:]}"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"webserver did not answer within {timeout_s}s:\n{log.read_text()[-3000:]}")


def test_partition_range_backfill_launched_through_graphql_lands_in_the_warehouse(
    engine: Engine,
    sim: Simulator,
    dagster_env: dict[str, str],
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    kols = track(engine, 2)
    port = _free_port()
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    target = ["-m", "pgy_pipeline.definitions"]
    _start(
        [str(BIN / "dagster-webserver"), *target, "-h", "127.0.0.1", "-p", str(port)], dagster_env, web_log, processes
    )
    _wait_for(f"http://127.0.0.1:{port}/server_info", processes[0], web_log)

    start, end = YESTERDAY - timedelta(days=2), YESTERDAY
    names = [(start + timedelta(days=i)).isoformat() for i in range(3)]
    graphql = f"http://127.0.0.1:{port}/graphql"
    params = {"partitionNames": names, "assetSelection": [{"path": ["kol_fans_trend"]}]}
    launched = _gql(graphql, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]

    # Backfills are executed by the daemon (as under `dagster dev`); started now, its first tick picks this one up.
    _start([str(BIN / "dagster-daemon"), "run", *target], dagster_env, daemon_log, processes)
    deadline = time.monotonic() + 90
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = _gql(graphql, RUNS, {"backfill": backfill_id})["runsOrError"]["results"]
        if runs and all(r["status"] in DONE for r in runs):
            break
        time.sleep(0.5)
    assert runs, f"no run was launched for the backfill:\n{daemon_log.read_text()[-3000:]}"
    (run,) = runs  # single-run backfill policy: the whole range in ONE run
    assert run["status"] == "SUCCESS", daemon_log.read_text()[-3000:]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        names[0],
        names[-1],
    )
    rows = stored(engine, start, end)
    assert len(rows) == 2 * 2 * 3
    assert {k for k, _, _ in rows} == set(kols)
    assert sim.billed_calls == 4
