"""A run whose worker process is SIGKILLed mid-run, on the production dagster.yaml with the real daemon: the run
is marked failed, retried once by Dagster, and the retry bills only the calls whose rows were not committed.
A run that fails in the asset itself (the API stopped it) is not retried.

Everything is the production file except how soon run monitoring returns a dead run's pool slot: every 5 s
instead of every 30 s, 5 s after the run ended instead of 60 s. Only the wait changes, not what happens."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus
from sqlalchemy import Engine, text

from pgy_pipeline_tests.support.dagster_procs import BIN, REPO, TARGET, pgy_env, process_group, start_daemon
from pgy_pipeline_tests.support.faults import GatedSimulator, wait_until
from pgy_pipeline_tests.support.warehouse import stored, track

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

KOLS = 8  # KOLs 0-3 answer at once (two committed chunks of 4 calls); the answers for 4-7 are held
STARTED_WORKER = re.compile(r"Executing steps in process \(pid: (\d+)\)")  # the run worker
DAEMON_WAIT_S = 600.0  # detection, retry, queue, a new worker and the pool slot's release: generous
SOONER = {"poll_interval_seconds: 30": "poll_interval_seconds: 5",
          "free_slots_after_run_end_seconds: 60": "free_slots_after_run_end_seconds: 5"}  # fmt: skip


def _worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    for event in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        match = STARTED_WORKER.search(event.message)
        if match:
            return int(match.group(1))
    return None


def _trend_runs(instance: DagsterInstance) -> list[DagsterRun]:
    """Runs of the daily job (the daemon's automation also starts kol_fans_anomaly runs after the trend lands)."""
    return [r for r in instance.get_runs() if r.job_name == "kol_fans_trend_job"]


def _launch(env: dict[str, str], run_config: dict[str, object], partition: date) -> None:
    """Submit a run of the daily job as an operator would; the daemon's queue launches it."""
    subprocess.run(
        [str(BIN / "dagster"), "job", "launch", *TARGET, "-j", "kol_fans_trend_job",
         "--tags", json.dumps({"dagster/partition": partition.isoformat()}), "--config-json", json.dumps(run_config)],
        env=env, cwd=REPO, check=True, capture_output=True, timeout=300,
    )  # fmt: skip


def _messages(instance: DagsterInstance, run: DagsterRun) -> str:
    return "\n".join(e.message for e in instance.all_logs(run.run_id))


def _committed_calls(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("select count(*) from pgy.fetch_log_loaded")).scalar_one())


@pytest.fixture
def sooner_slots(dagster_home: Path) -> Path:
    """The production dagster.yaml with run monitoring's two timings shortened (SOONER)."""
    config = dagster_home / "dagster.yaml"
    text = config.read_text()
    for production, sooner in SOONER.items():
        assert production in text, f"the production dagster.yaml no longer says {production!r}"
        text = text.replace(production, sooner)
    config.write_text(text)
    return dagster_home


@pytest.fixture
def gated(engine: Engine) -> Iterator[tuple[GatedSimulator, list[str]]]:
    kols = track(engine, KOLS)
    sim = GatedSimulator(held=kols[4:])  # the real clock: Dagster's partitions follow it
    with sim:
        try:
            yield sim, kols
        finally:
            sim.release.set()  # answer (to nobody) what the killed worker left waiting


@pytest.mark.timeout(600)  # a real daemon, three runs, a pool slot released by run monitoring
def test_a_killed_run_worker_is_failed_and_retried_billing_only_uncommitted_calls(
    engine: Engine,
    gated: tuple[GatedSimulator, list[str]],
    sooner_slots: Path,
    dagster_storage_url: str,
    database_url: str,
    tmp_path: Path,
    yesterday: date,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim, kols = gated
    dagster_home = sooner_slots
    env = pgy_env(dagster_home, database_url, sim.base_url, sim.token, DAGSTER_PG_URL=dagster_storage_url)
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url)
    daemon_log = tmp_path / "daemon.log"
    with process_group() as processes, DagsterInstance.from_config(str(dagster_home)) as instance:
        start_daemon(env, daemon_log, processes)
        _launch(env, {"ops": {"kol_fans_trend": {"config": {"chunk_calls": 4}}}}, yesterday)
        (first,) = _trend_runs(instance)

        # Mid-run: KOLs 0-3 committed (8 calls), calls for KOLs 4-7 on the wire, nothing of theirs committed.
        wait_until(lambda: _committed_calls(engine) == 8, "two committed chunks", DAEMON_WAIT_S)
        wait_until(lambda: sim.held_in_flight >= 1, "held calls in flight")
        pid = wait_until(lambda: _worker_pid(instance, first.run_id), "the run worker's pid")
        assert sim.billed_calls == 8
        os.kill(pid, signal.SIGKILL)  # the run worker (its steps run inside it), as a node's death would
        sim.held = set()  # the retry's calls are answered; the dead worker's stay held (never billed)

        def retried() -> DagsterRun | None:
            runs = _trend_runs(instance)
            retries = [r for r in runs if r.parent_run_id == first.run_id]
            return retries[0] if retries and retries[0].is_finished else None

        retry = wait_until(retried, "the retry run to finish", DAEMON_WAIT_S)
        failed = instance.get_run_by_id(first.run_id)
        logs = f"daemon:\n{daemon_log.read_text()[-3000:]}"
        assert failed is not None and failed.status == DagsterRunStatus.FAILURE, logs
        assert f"Run execution process for {first.run_id} was terminated by signal 9" in _messages(instance, failed)
        assert retry.status == DagsterRunStatus.SUCCESS, f"{_messages(instance, retry)[-3000:]}\n{logs}"
        assert retry.tags["dagster/retry_number"] == "1"
        assert retry.tags["dagster/partition"] == yesterday.isoformat()
        assert len(_trend_runs(instance)) == 2

        assert sim.billed_calls == 8 + 8  # the retry billed only KOLs 4-7: the committed calls were not re-fetched
        assert {k for k, _, _ in stored(engine, yesterday, yesterday)} == set(kols)

        # A failure of the asset itself (the API stopped the run) is final: Dagster says so and does not retry.
        sim.inject(kols[0], "code_100")
        _launch(env, {"ops": {"kol_fans_trend": {"config": {"force": True}}}}, yesterday)
        stopped = wait_until(
            lambda: next((r for r in _trend_runs(instance) if r.run_id not in {first.run_id, retry.run_id}), None),
            "the forced run",
        )
        wait_until(lambda: "Not retrying run since it failed due to an asset or op failure" in _messages(
            instance, stopped), "the daemon's decision not to retry", DAEMON_WAIT_S)  # fmt: skip
        assert check_status(instance, stopped) == DagsterRunStatus.FAILURE
        assert [r for r in _trend_runs(instance) if r.parent_run_id == stopped.run_id] == []


def check_status(instance: DagsterInstance, run: DagsterRun) -> DagsterRunStatus:
    again = instance.get_run_by_id(run.run_id)
    assert again is not None
    return again.status
