"""Pipeline run benchmark: one daily partition for N tracked KOLs, end to end, and the run's peak memory.

    python -m pgy_pipeline_tests.benchmarks.run [--kols 10000 --concurrency 16 --endpoint legacy_v1]

Plans, fetches (from a simulator in a child process, so its memory is not counted), records every call
in pgy.fetch_log and loads every 30-day window, through `pipeline.run_range` exactly as the Dagster asset
does, then reruns the same partition. Targets: peak RSS of a 10,000-KOL run ≤ 300 MB;
steady state bills 2 calls per KOL; the rerun of a complete partition bills 0.
Uses PGY_TEST_DATABASE_URL when set (a fresh database, dropped afterwards), else the embedded Postgres.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.model import Endpoint
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import DEFAULT_TOKEN
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.benchmarks.fetch import simulator_url
from pgy_pipeline_tests.support.db import fresh_database, server_url
from pgy_pipeline_tests.support.simulator import SIM_TODAY, kol_ids


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(kols: int, concurrency: int, endpoint: Endpoint, admin_url: str) -> dict[str, Any]:
    yesterday = SIM_TODAY - timedelta(days=1)
    with fresh_database(admin_url, "pgy_bench") as url:
        engine = create_engine(url)
        upgrade(engine)
        add_kols(engine, kol_ids(kols))
        rss_before = _peak_rss_mb()
        with simulator_url("subprocess", 0.0, SIM_TODAY) as base_url:
            client = TrendClient(
                base_url, Secret(DEFAULT_TOKEN), endpoint, concurrency=concurrency, today=lambda: SIM_TODAY
            )
            with client:
                started = time.perf_counter()
                report = run_range(engine, client, yesterday, yesterday, run_id="bench", today=SIM_TODAY)
                wall = time.perf_counter() - started
                started = time.perf_counter()
                rerun = run_range(engine, client, yesterday, yesterday, run_id="bench-rerun", today=SIM_TODAY)
                rerun_wall = time.perf_counter() - started
        engine.dispose()
    return {
        "benchmark": "run",
        "kols": kols,
        "endpoint": endpoint.value,
        "concurrency": concurrency,
        "calls_ok": report.calls_ok,
        "calls_failed": report.calls_failed,
        "billed_calls": report.billed_calls,
        "billed_per_kol": round(report.billed_calls / kols, 3) if kols else None,
        "rows_inserted": report.rows_inserted,
        "kols_complete": report.kols_complete,
        "wall_s": round(wall, 2),
        "calls_per_s": round(report.calls_ok / wall, 1) if wall else None,
        "rerun_billed_calls": rerun.billed_calls,
        "rerun_calls_skipped": rerun.plan.skipped,
        "rerun_wall_s": round(rerun_wall, 2),
        "peak_rss_mb_before_run": rss_before,
        "peak_rss_mb": _peak_rss_mb(),
        "target_peak_rss_mb": 300,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kols", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--endpoint", choices=[e.value for e in Endpoint], default=Endpoint.LEGACY_V1.value)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        result = run(args.kols, args.concurrency, Endpoint(args.endpoint), server_url(Path(home)))
    print(
        f"{result['kols']} KOLs: {result['calls_ok']} calls, {result['rows_inserted']} rows in {result['wall_s']} s, "
        f"peak RSS {result['peak_rss_mb']} MB"
    )
    print(json.dumps(result))
    return 0 if result["kols_complete"] == args.kols else 1


if __name__ == "__main__":
    sys.exit(main())
