"""Talking to the simulator: a fixed China 'today', KOL ids, fast clients and fetching a batch of calls.

Fixtures built on these live in `pgy_pipeline_tests/fix_simulator.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.fetch import fetch_iter
from pgy_pipeline.model import CallRequest, CallResult, Endpoint, Outcome, StopRun
from pgy_pipeline.simulator import Simulator

MakeClient = Callable[..., TrendClient]  # the `make_client` fixture

SIM_TODAY = date(2026, 3, 9)  # the seed page's example ends on 2026-03-08: "yesterday"

# Test-friendly client settings: retries without waiting. The read timeout is long enough that a busy machine
# (the whole suite keeps both cores saturated) never turns a slow answer into a retried, twice-billed call;
# tests of the "slow" faults set a short one of their own (below Simulator.config.slow_s).
FAST_CLIENT: dict[str, Any] = {
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.02,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 5.0,
}


# For whole runs (pipeline and Dagster tests): two attempts with quick retries, and the client's own timeouts,
# since such tests may hold calls in the simulator for seconds on purpose.
RUN_CLIENT: dict[str, Any] = {
    "max_attempts": 2,
    "backoff_base_s": 0.01,
    "backoff_max_s": 0.05,
    "connect_timeout_s": 5.0,
    "read_timeout_s": 60.0,
}


def kol_id(n: int) -> str:
    """A valid 24-hex id, shaped like a Xiaohongshu user id, distinct per `n` and sorted like `n`."""
    return f"5f{n:022x}"


def kol_ids(count: int, start: int = 0) -> list[str]:
    return [kol_id(n) for n in range(start, start + count)]


def fast_client(sim: Simulator, endpoint: Endpoint = Endpoint.LEGACY_V1, **overrides: Any) -> TrendClient:
    """A TrendClient for `sim` with FAST_CLIENT settings and the simulator's today."""
    settings = {**FAST_CLIENT, **overrides}
    settings.setdefault("today", lambda: sim.today)
    return TrendClient(sim.base_url, Secret(sim.token), endpoint, **settings)


def client_for(sim: Simulator, endpoint: Endpoint = Endpoint.LEGACY_V1, concurrency: int = 4) -> TrendClient:
    """`fast_client` with RUN_CLIENT settings, for tests that run whole partitions."""
    return fast_client(sim, endpoint, concurrency=concurrency, **RUN_CLIENT)


@dataclass
class FetchReport:
    """Every request's result in request order, and the stop condition that ended the run early, if any."""

    results: list[CallResult]
    stop: StopRun | None = None
    counts: dict[Outcome, int] = field(default_factory=dict)

    @property
    def billed_calls(self) -> int:
        return sum(attempt.billed for result in self.results for attempt in result.attempts)


def fetch_all(client: TrendClient, requests: Iterable[CallRequest]) -> FetchReport:
    """Run all `requests` concurrently and return their results in request order (tests read them by position)."""
    stream = fetch_iter(client, requests)
    by_index = dict(stream.indexed())
    results = [by_index[index] for index in range(len(by_index))]
    counts: dict[Outcome, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    return FetchReport(results=results, stop=stream.stop, counts=counts)
