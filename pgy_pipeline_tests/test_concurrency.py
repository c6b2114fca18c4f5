"""The daily run and a backfill over overlapping dates at the same time, in two processes, with restated
values in the API: no deadlock, no duplicate, no lost (or doubled) revision."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from pgy_pipeline.model import Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.pipeline_support import engine, stored, track
from pgy_pipeline_tests.sim import SIM_TODAY, fast_client

__all__ = ["engine"]  # fixture

DAY = SIM_TODAY - timedelta(days=1)
REPO = Path(__file__).resolve().parents[1]


def _child(database_url: str, sim: Simulator, start: date, end: date, run_id: str) -> subprocess.Popen[str]:
    """A run_range in its own process; small chunks, so its loads interleave with the other process's."""
    return subprocess.Popen(
        [sys.executable, "-m", "pgy_pipeline_tests.child_run", "--database-url", database_url,
         "--base-url", sim.base_url, "--token", sim.token, "--start", str(start), "--end", str(end),
         "--today", str(SIM_TODAY), "--run-id", run_id, "--chunk-calls", "8", "--concurrency", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def test_daily_run_and_overlapping_backfill_at_once(engine: Engine, database_url: str) -> None:
    kols = track(engine, 30)
    with Simulator(today=SIM_TODAY - timedelta(days=1), latency_s=0.03) as sim:
        with fast_client(sim, concurrency=8) as client:  # yesterday's daily run: DAY-30..DAY-1 stored
            first = run_range(
                engine, client, DAY - timedelta(days=1), DAY - timedelta(days=1), run_id="d0", today=sim.today
            )
        assert first.problems == []
        rng = random.Random(5)
        for kol in rng.sample(kols, 12):  # the API restates past totals, each moving 3 stored keys
            d = DAY - timedelta(days=rng.randint(2, 25))
            sim.restate(kol, Series.TOTAL_FANS, d, (sim.truth(kol, Series.TOTAL_FANS, d) or 0) + rng.choice((-5, 8)))
        sim.set_today(SIM_TODAY)
        before = stored(engine, DAY - timedelta(days=90), DAY)

        daily = _child(database_url, sim, DAY, DAY, "daily")  # window 30: DAY-29..DAY
        backfill = _child(database_url, sim, DAY - timedelta(days=40), DAY - timedelta(days=10), "backfill")  # 60
        outputs = {}
        try:
            for name, proc in (("daily", daily), ("backfill", backfill)):
                out, err = proc.communicate(timeout=120)  # a deadlock would hang (or be killed by Postgres)
                assert proc.returncode == 0, err[-3000:]
                outputs[name] = json.loads(out.strip().splitlines()[-1])
        finally:
            for proc in (daily, backfill):
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    assert outputs["daily"]["problems"] == [] and outputs["backfill"]["problems"] == []

    # No duplicate, nothing missing: every (KOL, date, series) of the 60 days once, with the API's value now.
    with engine.connect() as conn:
        total, distinct = conn.execute(
            text("select count(*), count(distinct (kol_id, date_key, increase_type)) from pgy.kol_fans_trend")
        ).one()
        revisions = conn.execute(
            text("select kol_id, date_key, increase_type, old_num, new_num from pgy.kol_fans_trend_revision")
        ).all()
        spans = conn.execute(
            text("select min(fetched_at), max(fetched_at) from pgy.fetch_log where run_id in ('daily', 'backfill') "
                 "group by run_id")
        ).all()  # fmt: skip
    assert max(span[0] for span in spans) < min(span[1] for span in spans)  # the two runs really were at work at once
    assert total == distinct == 30 * 2 * 60
    after = stored(engine, DAY - timedelta(days=90), DAY)
    assert after == {
        (k, DAY - timedelta(days=i), s.value): sim.truth(k, s, DAY - timedelta(days=i))
        for k in kols
        for s in Series
        for i in range(60)
    }
    # No lost and no doubled revision: each changed stored value has exactly one, with the right old/new.
    changed = {key: (old, after[key]) for key, old in before.items() if after[key] != old}
    assert len(changed) >= 12 * 3
    assert sorted(revisions) == sorted((k, d, s, old, new) for (k, d, s), (old, new) in changed.items())
    assert outputs["daily"]["rows_updated"] + outputs["backfill"]["rows_updated"] == len(changed)
