"""Helpers for tests that talk to the simulator: a fixed China 'today', KOL ids and a fast client.

Fixtures built on these live in `pgy_pipeline_tests/fixtures_sim.py`.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.model import Endpoint
from pgy_pipeline.simulator import Simulator

SIM_TODAY = date(2026, 3, 9)  # the seed page's example ends on 2026-03-08: "yesterday"

# Test-friendly client settings: retries without waiting, a short read timeout (the "slow" fault
# answers after Simulator.config.slow_s, longer than this).
FAST_CLIENT: dict[str, Any] = {
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.02,
    "connect_timeout_s": 2.0,
    "read_timeout_s": 0.5,
}


def kol_id(n: int) -> str:
    """A stable 24-hex id, shaped like a Xiaohongshu user id."""
    return hashlib.sha1(f"kol-{n}".encode()).hexdigest()[:24]


def kol_ids(count: int, start: int = 0) -> list[str]:
    return [kol_id(n) for n in range(start, start + count)]


def fast_client(sim: Simulator, endpoint: Endpoint = Endpoint.LEGACY_V1, **overrides: Any) -> TrendClient:
    """A TrendClient for `sim` with FAST_CLIENT settings and the simulator's today."""
    settings = {**FAST_CLIENT, **overrides}
    settings.setdefault("today", lambda: sim.today)
    return TrendClient(sim.base_url, Secret(sim.token), endpoint, **settings)
