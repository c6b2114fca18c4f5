"""Running Dagster's own processes (webserver, daemon) in tests, and talking to them as the UI does.

Fixtures `dagster_home` (the production dagster.yaml) and `dagster_storage_url` (Dagster's own Postgres
database) live in `pgy_pipeline_tests/fix_dagster_procs.py`.

Each process gets a session of its own, so teardown stops it with all its children (code servers, run
workers) by signalling the group, and nothing of the test's own process group is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
TARGET = ["-m", "pgy_pipeline.definitions"]  # the code location, as the CLI, webserver and daemon load it
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
INSTANCE = "{ instance { runQueuingSupported runQueueConfig { maxConcurrentRuns tagConcurrencyLimitsYaml } } }"
REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
START_SCHEDULE = """
mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) {
    __typename
    ... on ScheduleStateResult { scheduleState { status } }
    ... on PythonError { message }
  }
}"""
LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""
RUNS_BY_TAG = """
query Runs($key: String!, $value: String!) {
  runsOrError(filter: {tags: [{key: $key, value: $value}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """One GraphQL request to the webserver; GraphQL-level errors fail the test with the body."""
    reply = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    assert reply.status_code == 200, f"GraphQL answered HTTP {reply.status_code}: {reply.text[:2000]}"
    body: dict[str, Any] = reply.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def wait_for_runs(graphql: str, tag: tuple[str, str], timeout_s: float, poll_s: float = 0.5) -> list[dict[str, Any]]:
    """The runs tagged `tag` once at least one exists and all are finished, or whatever exists at the timeout."""
    key, value = tag
    deadline = time.monotonic() + timeout_s
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = gql(graphql, RUNS_BY_TAG, {"key": key, "value": value})["runsOrError"]["results"]
        if runs and all(r["status"] in DONE for r in runs):
            break
        time.sleep(poll_s)
    return runs


@contextlib.contextmanager
def process_group() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Collects started processes; on exit stops them as a user would (Ctrl-C), then kills what is left."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        for proc in started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def spawn(cmd: list[str], env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> None:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        started.append(proc)


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    """Until `url` answers 200; fails with the process's log when it exits or never answers."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited:\n{log.read_text()[-3000:]}"
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {timeout_s}s:\n{log.read_text()[-3000:]}")


def start_webserver(env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> str:
    """`dagster-webserver` for the code location on a free loopback port, once it answers; its GraphQL URL."""
    port = free_port()
    spawn([str(BIN / "dagster-webserver"), *TARGET, "-h", "127.0.0.1", "-p", str(port)], env, log, started)
    wait_for(f"http://127.0.0.1:{port}/server_info", started[-1], log)
    return f"http://127.0.0.1:{port}/graphql"


def start_daemon(env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> None:
    """`dagster-daemon run` for the code location (its log in `log`)."""
    spawn([str(BIN / "dagster-daemon"), "run", *TARGET], env, log, started)


def pgy_env(dagster_home: Path, database_url: str, base_url: str, token: str, **extra: str) -> dict[str, str]:
    """The process environment of a deployment: only the PGY_/DAGSTER_ variables the test sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGY_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        PGY_DATABASE_URL=database_url,
        PGY_API_BASE_URL=base_url,
        PGY_API_TOKEN=token,
        PGY_TREND_ENDPOINT="legacy_v1",
        PGY_REPORT_DIR=str(dagster_home / "reports"),  # the report runs the automation starts write here
        **extra,
    )
    return env
