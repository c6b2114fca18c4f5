"""One `run_range` in a process of its own, for tests that need two runs at once or a run to SIGKILL.

    python -m pgy_pipeline_tests.support.child_run --database-url URL --base-url URL --token T \\
        --start 2026-03-01 --end 2026-03-08 --today 2026-03-09 --run-id backfill [--chunk-calls N]

The last line of stdout is one JSON object summarising the RunReport (rows, calls, problems), so the
test can assert on what the child did. Exit code 0 whatever the report says; an exception exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.model import Endpoint
from pgy_pipeline.pipeline import DEFAULT_CHUNK_CALLS, run_range
from pgy_pipeline.verdict import RunReport
from pgy_pipeline.warehouse.engine import make_engine


def summary(report: RunReport) -> dict[str, object]:
    """The figures of a report a test compares (JSON-ready)."""
    return {
        "run_id": report.run_id,
        "calls_ok": report.calls_ok,
        "calls_failed": report.calls_failed,
        "rows_inserted": report.rows_inserted,
        "rows_updated": report.rows_updated,
        "rows_unchanged": report.rows_unchanged,
        "billed_calls": report.billed_calls,
        "problems": report.problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgy_pipeline_tests.support.child_run")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--end", type=date.fromisoformat, required=True)
    parser.add_argument("--today", type=date.fromisoformat, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--chunk-calls", type=int, default=DEFAULT_CHUNK_CALLS)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url)
    client = TrendClient(
        args.base_url,
        Secret(args.token),
        Endpoint.LEGACY_V1,
        concurrency=args.concurrency,
        max_attempts=3,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        today=lambda: args.today,
    )
    try:
        with client:
            report = run_range(
                engine, client, args.start, args.end, run_id=args.run_id, today=args.today, chunk_calls=args.chunk_calls
            )
    finally:
        engine.dispose()
    print(json.dumps(summary(report)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
