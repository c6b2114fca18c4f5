"""Rate-limit benchmark: how close adaptive concurrency gets to an API limit it is never told.

    python -m pgy_pipeline_tests.benchmarks.ratelimit [--calls 3000 --limit-rps 40 --latency-ms 200]

A simulator on loopback enforces a hidden limit (requests per second, optionally requests in flight) and
refuses what exceeds it with `--reply` (302 in the body, or HTTP 429 with Retry-After). The same calls run
twice, each against a fresh simulator: with the production client settings (adaptive concurrency within
its default bounds) and with a fixed concurrency (default 8) for comparison. Figures:

* allowed_rps: the best sustainable rate, min(limit-rps, limit-in-flight / latency);
* achieved_rps: calls answered with data per second of wall time, ramp-up included;
* ratio_to_allowed = achieved / allowed (target >= 0.85); fixed_ratio_to_allowed for the fixed client;
* limited_fraction: refused requests / all requests sent (target <= 0.03);
* billed_calls: what the platform charged (refusals are free; every call bills once).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.api.concurrency import DEFAULT_MAX, DEFAULT_MIN, DEFAULT_START
from pgy_pipeline.config import Secret
from pgy_pipeline.model import CallRequest, Outcome, Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.simulator.limiter import LIMIT_REPLIES, HiddenLimit
from pgy_pipeline_tests.support.simulator import SIM_TODAY, fetch_all, kol_ids


def measure(calls: int, limit: HiddenLimit, latency_s: float, **client_settings: Any) -> dict[str, Any]:
    """One run of `calls` calls through a fresh simulator with `limit`; the client built from `client_settings`."""
    ids = kol_ids((calls + 1) // 2)
    requests = [CallRequest(k, s, 30) for k in ids for s in Series][:calls]
    with Simulator(latency_s=latency_s, today=SIM_TODAY, hidden_limit=limit) as sim:
        client = TrendClient(sim.base_url, Secret(sim.token), today=lambda: SIM_TODAY, **client_settings)
        with client:
            started = time.perf_counter()
            report = fetch_all(client, requests)
            wall = time.perf_counter() - started
        assert sim.limiter is not None
        refused, sent = sim.limiter.refused, sim.limiter.refused + sim.limiter.admitted
        billed = sim.billed_calls
    ok = sum(r.outcome is Outcome.OK for r in report.results)
    return {
        "ok": ok,
        "wall_s": round(wall, 2),
        "achieved_rps": round(ok / wall, 2),
        "requests_sent": sent,
        "limited": refused,
        "limited_fraction": round(refused / sent, 4) if sent else 0.0,
        "billed_calls": billed,
        "concurrency_start": client.concurrency,
        "concurrency_reached": client.flow.peak,
        "concurrency_final": client.flow.limit,
        "concurrency_cuts": client.flow.cuts,
    }


def run(
    calls: int, limit_rps: float | None, limit_in_flight: int | None, latency_ms: float, reply: str, fixed: int
) -> dict[str, Any]:
    limit = HiddenLimit(limit_rps, limit_in_flight, reply)
    latency_s = latency_ms / 1000
    allowed = limit.allowed_rps(latency_s)
    if allowed is None:
        raise SystemExit("give --limit-rps and/or --limit-in-flight: without a limit there is nothing to find")
    adaptive = measure(
        calls,
        limit,
        latency_s,
        concurrency=DEFAULT_START,
        min_concurrency=DEFAULT_MIN,
        max_concurrency=DEFAULT_MAX,
    )
    steady = measure(calls, limit, latency_s, concurrency=fixed)
    return {
        "benchmark": "ratelimit",
        "calls": calls,
        "latency_ms": latency_ms,
        "limit_rps": limit_rps,
        "limit_in_flight": limit_in_flight,
        "limit_reply": reply,
        "allowed_rps": round(allowed, 2),
        **{key: value for key, value in adaptive.items()},
        "ratio_to_allowed": round(adaptive["achieved_rps"] / allowed, 3),
        "concurrency_bounds": [DEFAULT_MIN, DEFAULT_MAX],
        "fixed_concurrency": fixed,
        "fixed_ok": steady["ok"],
        "fixed_wall_s": steady["wall_s"],
        "fixed_achieved_rps": steady["achieved_rps"],
        "fixed_ratio_to_allowed": round(steady["achieved_rps"] / allowed, 3),
        "fixed_limited_fraction": steady["limited_fraction"],
        "fixed_billed_calls": steady["billed_calls"],
        "target_ratio_to_allowed": 0.85,
        "target_limited_fraction": 0.03,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--limit-rps", type=float, default=40.0, help="hidden limit: requests per second")
    parser.add_argument("--limit-in-flight", type=int, default=None, help="hidden limit: requests in flight")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--reply", choices=LIMIT_REPLIES, default="code_302", help="how the limit refuses")
    parser.add_argument("--fixed", type=int, default=8, help="the fixed concurrency measured for comparison")
    args = parser.parse_args(argv)
    result = run(args.calls, args.limit_rps, args.limit_in_flight, args.latency_ms, args.reply, args.fixed)
    print(
        f"allowed {result['allowed_rps']} req/s: adaptive {result['achieved_rps']} "
        f"({result['ratio_to_allowed']}x, {result['limited_fraction']:.1%} limited, "
        f"concurrency up to {result['concurrency_reached']}); "
        f"fixed {args.fixed}: {result['fixed_achieved_rps']} ({result['fixed_ratio_to_allowed']}x)"
    )
    print(json.dumps(result))
    return 0 if result["ok"] == result["fixed_ok"] == args.calls else 1


if __name__ == "__main__":
    sys.exit(main())
