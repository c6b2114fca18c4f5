"""Which warehouse a run writes to: never a throwaway embedded Postgres nobody asked for, and the demo's server
is announced, stoppable and quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from dagster import materialize
from dagster._core.test_utils import instance_for_test

from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.embedded import embedded_server
from pgy_pipeline_tests.support.dagster import step_failure


def test_a_run_on_a_postgres_backed_instance_never_falls_back_to_an_embedded_warehouse(
    dagster_storage_url: str, sim_today: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, yesterday: date
) -> None:
    """Production (Dagster's own storage in Postgres), PGY_DATABASE_URL missing from the run's environment: the
    run fails with the sentence naming it, bills nothing and creates nothing, even with a PGY_HOME set."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("PGY_DATABASE_URL", raising=False)
    monkeypatch.setenv("PGY_HOME", str(work / "home"))
    storage = {"storage": {"postgres": {"postgres_url": dagster_storage_url}}}
    (tmp_path / "dagster").mkdir()
    with instance_for_test(overrides=storage, temp_dir=str(tmp_path / "dagster")) as instance:
        assert "postgres" in type(instance.run_storage).__module__
        result = materialize(
            [kol_fans_trend],
            instance=instance,
            resources={"trend_api": TrendApiResource(token=sim_today.token, base_url=sim_today.base_url),
                       "warehouse": WarehouseResource()},
            partition_key=yesterday.isoformat(),
            raise_on_error=False,
        )  # fmt: skip
    assert not result.success
    description, _ = step_failure(result)
    assert description.startswith("PGY_DATABASE_URL is not set where this run executes")
    assert sim_today.billed_calls == 0
    assert list(work.iterdir()) == []


@pytest.mark.embedded
@pytest.mark.subprocess
def test_the_demo_on_a_fresh_clone_is_quiet_says_how_to_stop_its_postgres_and_db_stop_stops_it(
    tmp_path: Path,
) -> None:
    """A fresh directory, no PGY_* at all: the demo's own story on the terminal (no Dagster storage migrations),
    third-party chatter in the log file it names, and the embedded server it leaves running is stopped by
    `pgy-pipeline db stop` from the same directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PGY_", "DAGSTER_"))}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pgy_pipeline.cli", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=540)  # fmt: skip

    try:
        demo = cli("demo", "--days", "2")
        assert demo.returncode == 0, demo.stderr[-3000:]
        shown = demo.stdout + demo.stderr
        assert "alembic" not in shown and " INFO " not in shown, shown
        log = tmp_path / ".pgy" / "demo.log"
        assert f"log: {log}" in demo.stdout and "alembic" in log.read_text()  # the chatter went to the file
        assert "stop it with: (from this directory) pgy-pipeline db stop" in demo.stdout
        running = embedded_server(tmp_path / ".pgy")
        assert running.pid is not None and f"pid {running.pid}" in demo.stdout

        assert f"embedded Postgres running (pid {running.pid})" in cli("db", "status").stdout
        stopped = cli("db", "stop")
        assert stopped.returncode == 0 and f"stopped the embedded Postgres (pid {running.pid})" in stopped.stdout
        assert embedded_server(tmp_path / ".pgy").pid is None
        assert "not running" in cli("db", "status").stdout
    finally:
        cli("db", "stop")  # whatever happened above, leave no server running
