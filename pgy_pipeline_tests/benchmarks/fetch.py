"""Fetch benchmark: N calls at a simulated latency through fetch_all at a given concurrency.

    python -m pgy_pipeline_tests.benchmarks.fetch [--calls 2000 --latency-ms 100 --concurrency 16]

Target: wall time within 1.15x of the ideal calls x latency / concurrency. The last
line printed is one JSON object. `--simulator subprocess` serves from a separate process, so the
client and the server do not share one GIL (the default, `inprocess`, is the harsher test).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.model import CallRequest, Outcome, Series
from pgy_pipeline.simulator import DEFAULT_TOKEN, Simulator
from pgy_pipeline_tests.support.simulator import SIM_TODAY, fetch_all, kol_ids


@contextmanager
def simulator_url(mode: str, latency_ms: float, today: date, extra_args: Sequence[str] = ()) -> Iterator[str]:
    """The base URL of a simulator running in this process ("inprocess") or a child process ("subprocess",
    given `extra_args` of `python -m pgy_pipeline.simulator`, e.g. a restate rate)."""
    if mode == "inprocess":
        with Simulator(latency_s=latency_ms / 1000, today=today) as sim:
            yield sim.base_url
        return
    cmd = [sys.executable, "-m", "pgy_pipeline.simulator", "--port", "0", "--latency-ms", str(latency_ms)]
    child = subprocess.Popen([*cmd, "--today", today.isoformat(), *extra_args], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        yield first.split(" listening on ")[1].split()[0]
    finally:
        child.terminate()
        child.wait(timeout=10)


_simulator = simulator_url  # the name other benchmarks first imported


def run(calls: int, latency_ms: float, concurrency: int, mode: str) -> dict[str, Any]:
    ids = kol_ids((calls + 1) // 2)
    requests = [CallRequest(k, s, 30) for k in ids for s in Series][:calls]
    with simulator_url(mode, latency_ms, SIM_TODAY) as base_url:
        client = TrendClient(base_url, Secret(DEFAULT_TOKEN), concurrency=concurrency, today=lambda: SIM_TODAY)
        with client:
            started = time.perf_counter()
            report = fetch_all(client, requests)
            wall = time.perf_counter() - started
    ok = sum(r.outcome is Outcome.OK for r in report.results)
    ideal = calls * latency_ms / 1000 / concurrency
    return {
        "benchmark": "fetch",
        "simulator": mode,
        "calls": calls,
        "ok": ok,
        "latency_ms": latency_ms,
        "concurrency": concurrency,
        "wall_s": round(wall, 3),
        "ideal_s": round(ideal, 3),
        "ratio_to_ideal": round(wall / ideal, 3) if ideal else None,
        "target_ratio": 1.15,
        "calls_per_s": round(calls / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--simulator", choices=("inprocess", "subprocess"), default="inprocess")
    args = parser.parse_args(argv)
    result = run(args.calls, args.latency_ms, args.concurrency, args.simulator)
    print(
        f"{result['calls']} calls in {result['wall_s']} s, {result['ratio_to_ideal']}x the ideal {result['ideal_s']} s"
    )
    print(json.dumps(result))
    return 0 if result["ok"] == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
