"""`pgy-pipeline status`: the table, the JSON, and the exit code monitoring relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.china_time import china_today
from pgy_pipeline.cli import main
from pgy_pipeline.defs.metadata import report_metadata
from pgy_pipeline.model import Series, TrendPoint
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.status import read_status
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline_tests.support.simulator import client_for
from pgy_pipeline_tests.support.warehouse import track


@pytest.fixture
def engine_in_env(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The migrated test database, named by PGY_DATABASE_URL too: where `pgy-pipeline status` looks."""
    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    return engine


def _fill(engine: Engine, kol_ids: list[str], last: date, days: int, *, skip: tuple[str, date] | None = None) -> None:
    """Both series for `days` dates ending at `last`, except the (KOL, date) in `skip`."""
    points = [
        TrendPoint(k, last - timedelta(days=i), s, 100 + i)
        for k in kol_ids
        for i in range(days)
        for s in ("total_fans", "new_fans")
        if (k, last - timedelta(days=i)) != skip
    ]
    load_points(engine, points)


def _log_run(engine: Engine, run_id: str, day: date, rows: list[tuple[str, str, str, int | None, bool]]) -> None:
    with engine.begin() as conn:
        for kol, series, outcome, code, billed in rows:
            conn.execute(
                text(
                    "INSERT INTO pgy.fetch_log (run_id, partition_start, partition_end, kol_id, increase_type,"
                    " endpoint, window_days, days_wanted, attempt, outcome, is_final, http_status, api_code,"
                    " api_message, billed) VALUES (:run, :d, :d, :kol, :series, 'legacy_v1', 30, 1,"
                    " CASE WHEN :outcome = 'not_attempted' THEN 0 ELSE 1 END, :outcome, true, 200, :code,"
                    " CASE WHEN :code = 303 THEN 'daily quota exceeded' END, :billed)"
                ),
                dict(run=run_id, d=day, kol=kol, series=series, outcome=outcome, code=code, billed=billed),
            )


def test_complete_yesterday_exits_zero_and_shows_the_last_run(
    engine_in_env: Engine, capsys: pytest.CaptureFixture[str], yesterday: date
):
    add_kols(engine_in_env, ["k1", "k2", "gone"])
    with engine_in_env.begin() as conn:  # the API said 201 for "gone": flagged, so not counted as missing
        conn.execute(
            text("UPDATE pgy.tracked_kol SET last_error_code = 201, last_error_at = now() WHERE kol_id = 'gone'")
        )
    _fill(engine_in_env, ["k1", "k2"], yesterday, days=7)
    _log_run(
        engine_in_env,
        "run-1",
        yesterday,
        [
            ("k1", "total_fans", "ok", 0, True),
            ("k1", "new_fans", "ok", 0, True),
            ("k2", "total_fans", "ok", 0, True),
            ("k2", "new_fans", "ok", 0, True),
            ("gone", "total_fans", "no_content", 201, True),
        ],
    )
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert f"{yesterday}        2/2        0           0        1       5       5  0:4 201:1" in out
    assert "last run: run-1" in out and "5 call(s), 4 ok, 1 failed" in out
    assert f"OK: yesterday ({yesterday}) is complete" in out


def test_incomplete_yesterday_exits_nonzero_and_names_the_kol(
    engine_in_env: Engine, capsys: pytest.CaptureFixture[str], yesterday: date
):
    add_kols(engine_in_env, ["k1", "k2"])
    _fill(engine_in_env, ["k1", "k2"], yesterday, days=3, skip=("k2", yesterday))
    _log_run(
        engine_in_env,
        "run-2",
        yesterday,
        [
            ("k1", "total_fans", "ok", 0, True),
            ("k1", "new_fans", "stopped", 303, False),
            ("k2", "total_fans", "not_attempted", None, False),
        ],
    )
    assert main(["status", "--days", "3"]) == 1
    out = capsys.readouterr().out
    assert f"PROBLEM: yesterday ({yesterday}) is incomplete: 1 of 2 KOL(s) missing (k2)" in out
    assert "stopped (code 303: daily quota exceeded)" in out
    status = read_status(engine_in_env, days=3)
    assert [p.date for p in status.partitions] == [yesterday - timedelta(days=i) for i in range(3)]
    assert [p.kols_complete for p in status.partitions] == [1, 2, 2]


def test_json_output_for_machines(engine_in_env: Engine, capsys: pytest.CaptureFixture[str], yesterday: date) -> None:
    add_kols(engine_in_env, ["k1"])
    assert main(["status", "--json", "--days", "2"]) == 1  # nothing fetched yet: yesterday incomplete
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["last_run"] is None
    assert data["partitions"][0] == {
        "date": str(yesterday),
        "kols_expected": 1,
        "kols_complete": 0,
        "kols_missing": 1,
        "missing": ["k1"],
        "kols_not_served": 0,
        "not_served": [],
        "kols_flagged": 0,
        "calls": 0,
        "billed_calls": 0,
        "codes": {},
    }


@pytest.mark.subprocess
def test_status_command_exit_code_from_a_shell(engine_in_env: Engine, database_url: str) -> None:
    """What cron sees: the installed command's exit status."""
    add_kols(engine_in_env, ["k1"])
    _fill(engine_in_env, ["k1"], china_today() - timedelta(days=1), days=1)
    env = {**os.environ, "PGY_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "pgy_pipeline.cli", "status", "--days", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "OK: yesterday" in done.stdout


def test_failed_calls_are_counted_alike_by_metadata_status_and_the_view(
    engine_in_env: Engine, sim_today: Simulator
) -> None:
    """One definition of a failed call: the run's metadata, `status` and pgy.fetch_health agree."""
    kols = track(engine_in_env, 4)  # in id order, one call at a time: ok, failed after retries, stopped, not attempted
    sim_today.inject(kols[1], "code_500")
    sim_today.inject(kols[2], "code_100", series=Series.TOTAL_FANS)
    with client_for(sim_today, concurrency=1) as client:
        report = run_range(
            engine_in_env,
            client,
            sim_today.today - timedelta(days=1),
            sim_today.today - timedelta(days=1),
            run_id="r-failed-calls",
            today=sim_today.today,
        )
    metadata = report_metadata(report)
    last_run = read_status(engine_in_env, today=sim_today.today).last_run
    with engine_in_env.connect() as conn:
        view = conn.execute(text("select sum(calls_failed), sum(calls_not_attempted) from pgy.fetch_health")).one()
    assert report.stop is not None and report.calls_not_attempted > 0  # every kind of ending is present
    assert metadata["calls_failed"].value == 3  # kols[1]: two series after retries, kols[2]: the stopped call
    assert last_run is not None
    assert (last_run.calls_failed, last_run.calls_not_attempted) == (3, report.calls_not_attempted)
    assert tuple(view) == (3, report.calls_not_attempted)
