"""Pytest plugin with simulator fixtures (loaded from conftest via `pytest_plugins`).

* `simulator`: a running Simulator on 127.0.0.1 on a FIXED date, today = SIM_TODAY (2026-03-09), no latency:
  for the API client's own tests, whose expected windows are dates. (The pipeline and Dagster tests use
  `sim` from pipeline_support.py instead, on the wall-clock China date that Dagster's partitions follow.)
* `make_client`: factory `make_client(endpoint=Endpoint.LEGACY_V1, **TrendClient kwargs)` returning a
  fast-retrying TrendClient for that simulator; every client is closed after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.model import Endpoint
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.sim import SIM_TODAY, fast_client

MakeClient = Callable[..., TrendClient]


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    with Simulator(today=SIM_TODAY, slow_s=1.5) as sim:
        yield sim


@pytest.fixture
def make_client(simulator: Simulator) -> Iterator[MakeClient]:
    clients: list[TrendClient] = []

    def make(endpoint: Endpoint = Endpoint.LEGACY_V1, **overrides: Any) -> TrendClient:
        client = fast_client(simulator, endpoint, **overrides)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
