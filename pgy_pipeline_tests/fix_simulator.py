"""Fixtures: simulators and the China dates tests run on (helpers in `support/simulator.py`).

* `sim_fixed_date`: a Simulator on 127.0.0.1 on a FIXED date, today = SIM_TODAY (2026-03-09), no latency: for
  the API client's own tests, whose expected windows are dates.
* `sim_today`: a Simulator on the wall-clock China date, as Dagster's partitions are (pipeline and Dagster
  tests); `today` / `yesterday` are that date and the daily partition, read when the test starts.
* `make_client(endpoint=Endpoint.LEGACY_V1, **TrendClient kwargs)`: a fast-retrying TrendClient for
  `sim_fixed_date`; every client is closed after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.china_time import china_today
from pgy_pipeline.model import Endpoint
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.simulator import SIM_TODAY, MakeClient, fast_client


@pytest.fixture
def sim_fixed_date() -> Iterator[Simulator]:
    """A simulator whose today is SIM_TODAY (2026-03-09), whatever the wall clock says."""
    with Simulator(today=SIM_TODAY, slow_s=1.5) as sim:
        yield sim


@pytest.fixture
def make_client(sim_fixed_date: Simulator) -> Iterator[MakeClient]:
    clients: list[TrendClient] = []

    def make(endpoint: Endpoint = Endpoint.LEGACY_V1, **overrides: Any) -> TrendClient:
        client = fast_client(sim_fixed_date, endpoint, **overrides)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def sim_today() -> Iterator[Simulator]:
    """A simulator on the wall-clock China date, the date Dagster's partitions follow."""
    with Simulator() as s:
        yield s


@pytest.fixture
def today() -> date:
    """China's date, read when the test starts (never at import): the wall clock decides Dagster's partitions and
    the default simulator follows it, so a session crossing China midnight (16:00 UTC) keeps each test consistent."""
    return china_today()


@pytest.fixture
def yesterday(today: date) -> date:
    """The newest date the API serves on `today`: the daily partition."""
    return today - timedelta(days=1)
