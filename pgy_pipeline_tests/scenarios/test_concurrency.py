"""The daily run (a `dagster asset materialize` process) and a backfill (a run_range process) over overlapping
dates at the same time, with restated values in the API: no deadlock, no duplicate, no lost (or doubled) revision."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.model import Series
from pgy_pipeline.pipeline import PROBE_CALLS, run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.faults import GatedSimulator, wait_until
from pgy_pipeline_tests.support.simulator import fast_client
from pgy_pipeline_tests.support.warehouse import stored, track

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[2]


def _backfill(database_url: str, sim: Simulator, start: date, end: date, today: date) -> subprocess.Popen[str]:
    """A backfill: run_range in its own process, small chunks so its loads interleave with the daily run's."""
    return subprocess.Popen(
        [sys.executable, "-m", "pgy_pipeline_tests.support.child_run", "--database-url", database_url,
         "--base-url", sim.base_url, "--token", sim.token, "--start", str(start), "--end", str(end),
         "--today", str(today), "--run-id", "backfill", "--chunk-calls", "8", "--concurrency", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def _daily(database_url: str, sim: Simulator, dagster_home: Path, partition: date) -> subprocess.Popen[str]:
    """The daily run as the schedule makes it: `dagster asset materialize` of yesterday's partition."""
    env = {
        **os.environ,
        "PGY_DATABASE_URL": database_url,
        "PGY_API_BASE_URL": sim.base_url,
        "PGY_API_TOKEN": sim.token,
        "DAGSTER_HOME": str(dagster_home),
    }
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.Popen(
        [str(dagster), "asset", "materialize", "-m", "pgy_pipeline.definitions", "--select", "kol_fans_trend",
         "--partition", partition.isoformat()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip


def test_daily_run_and_overlapping_backfill_at_once(
    engine: Engine, database_url: str, tmp_path: Path, today: date, yesterday: date
) -> None:
    kols = track(engine, 30)
    sim = GatedSimulator(today=today - timedelta(days=1))
    with sim:
        with fast_client(sim, concurrency=8) as client:  # the day before: yesterday-30..yesterday-1 stored
            first = run_range(engine, client, *[yesterday - timedelta(days=1)] * 2, run_id="d0", today=sim.today)
        assert first.problems == []
        rng = random.Random(5)
        for kol in rng.sample(kols, 12):  # the API restates past totals, each moving 3 stored keys
            d = yesterday - timedelta(days=rng.randint(2, 25))
            sim.restate(kol, Series.TOTAL_FANS, d, (sim.truth(kol, Series.TOTAL_FANS, d) or 0) + rng.choice((-5, 8)))
        sim.set_today(today)
        before = stored(engine, yesterday - timedelta(days=90), yesterday)

        sim.held = set(kols)  # every call waits until BOTH runs have calls on the wire: they run at once
        daily = _daily(database_url, sim, tmp_path, yesterday)  # window 30: yesterday-29..yesterday
        backfill = _backfill(database_url, sim, yesterday - timedelta(days=40), yesterday - timedelta(days=10), today)
        outputs: dict[str, tuple[str, str]] = {}
        try:
            # The daily run's lag probe (its first calls: one series of two KOLs) + the backfill's 4 calls in
            # flight: more than either process can have alone.
            both = PROBE_CALLS + 4
            wait_until(lambda: sim.held_in_flight >= both or daily.poll() is not None, "both runs fetching")
            sim.release.set()
            for name, proc in (("daily", daily), ("backfill", backfill)):
                outputs[name] = proc.communicate(timeout=120)  # a deadlock would hang here
                assert proc.returncode == 0, outputs[name][1][-3000:]
        finally:
            sim.release.set()
            for proc in (daily, backfill):
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert "RUN_SUCCESS" in outputs["daily"][1]
    assert json.loads(outputs["backfill"][0].strip().splitlines()[-1])["problems"] == []

    # No duplicate, nothing missing: every (KOL, date, series) of the 60 days once, with the API's value now.
    with engine.connect() as conn:
        total, distinct = conn.execute(
            text("select count(*), count(distinct (kol_id, date_key, increase_type)) from pgy.kol_fans_trend")
        ).one()
        revisions = conn.execute(
            text("select kol_id, date_key, increase_type, old_num, new_num from pgy.kol_fans_trend_revision")
        ).all()
    assert total == distinct == 30 * 2 * 60
    after = stored(engine, yesterday - timedelta(days=90), yesterday)
    assert after == {
        (k, yesterday - timedelta(days=i), s.value): sim.truth(k, s, yesterday - timedelta(days=i))
        for k in kols
        for s in Series
        for i in range(60)
    }
    # No lost and no doubled revision: each changed stored value has exactly one, with the right old/new.
    changed = {key: (old, after[key]) for key, old in before.items() if after[key] != old}
    assert len(changed) >= 12 * 3
    assert sorted(revisions) == sorted((k, d, s, old, new) for (k, d, s), (old, new) in changed.items())
