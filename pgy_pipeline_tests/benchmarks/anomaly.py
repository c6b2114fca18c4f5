"""Anomaly benchmark: how long `kol_fans_anomaly` takes for the daily partition and for a backfill range.

    python -m pgy_pipeline_tests.benchmarks.anomaly [--kols 10000] [--days 60]

Uses PGY_TEST_DATABASE_URL when set, else the embedded Postgres under PGY_HOME; creates and drops a database
of its own. Every KOL gets `--days` days of both series (new fans drawn around its own level, totals that
agree with them); every 100th KOL gets a bought batch on the last day. Then the rules run for the last day
(what the daily run's automation does) and for the whole range (what a backfill does), each `--repeat`
times (fastest kept). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

from pgy_pipeline.model import TrendPoint
from pgy_pipeline.warehouse.anomaly import AnomalyRules, refresh_anomalies
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.support.db import fresh_database, server_url

LAST_DAY = date(2026, 11, 26)
PLANT_EVERY = 100


def generate(kols: int, days: int) -> Iterator[TrendPoint]:
    """Both series per KOL, in the order a run delivers them; every PLANT_EVERY-th KOL spikes on the last day."""
    rng = random.Random(7)
    first = LAST_DAY - timedelta(days=days - 1)
    for k in range(kols):
        kol_id = f"5f{k:022x}"
        level = 10 ** rng.uniform(1, 3.5)
        new = [round(rng.gauss(level, level * 0.2)) for _ in range(days)]
        if k % PLANT_EVERY == 0:
            new[-1] = round(level * 50) + 1_000
        totals, total = [], 100_000
        for n in new:
            total += n
            totals.append(total)
        for series, values in (("new_fans", new), ("total_fans", totals)):
            for i, num in enumerate(values):
                yield TrendPoint(kol_id, first + timedelta(days=i), series, num)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kols", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    admin = server_url(Path(".pgy"))
    with fresh_database(admin, prefix="pgy_bench_anomaly") as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            load_points(engine, generate(args.kols, args.days))
            rules = AnomalyRules()
            first = LAST_DAY - timedelta(days=args.days - 1)
            timings: dict[str, float] = {}
            found: dict[str, int] = {}
            for name, start in (("daily", LAST_DAY), ("backfill", first)):
                best = float("inf")
                for _ in range(args.repeat):
                    began = time.perf_counter()
                    rows = refresh_anomalies(engine, start, LAST_DAY, rules=rules, run_id="bench")
                    best = min(best, time.perf_counter() - began)
                timings[name] = best
                found[name] = len(rows)
        finally:
            engine.dispose()
    figures = {
        "kols": args.kols,
        "days": args.days,
        "rows": args.kols * args.days * 2,
        "planted_spikes": len(range(0, args.kols, PLANT_EVERY)),
        "daily_anomalies": found["daily"],
        "daily_seconds": round(timings["daily"], 3),
        "backfill_days": args.days,
        "backfill_anomalies": found["backfill"],
        "backfill_seconds": round(timings["backfill"], 3),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
