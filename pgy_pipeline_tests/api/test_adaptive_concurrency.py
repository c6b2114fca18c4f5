"""Adaptive concurrency: the client finds how many calls the API allows in flight, within its bounds.

The API's limit is hidden from the client; the simulator enforces one (requests in flight, requests per
second) and refuses the excess with 302 or HTTP 429 + Retry-After. The first tests drive the
ConcurrencyLimit itself answer by answer (its rules, without any timing); the others run real calls
through a real HTTP simulator with a hidden limit.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from dagster import DagsterInstance, materialize
from sqlalchemy import Engine

from pgy_pipeline.api.concurrency import FIRST_PROBE_ROUNDS, ConcurrencyLimit, Slot
from pgy_pipeline.china_time import china_today
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.model import CallRequest, Outcome, Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.simulator.limiter import HiddenLimit
from pgy_pipeline_tests.support.dagster import dagster_resources
from pgy_pipeline_tests.support.simulator import SIM_TODAY, fast_client, fetch_all, kol_ids
from pgy_pipeline_tests.support.warehouse import stored, track

RANGE = (RANGE_START_TAG, RANGE_END_TAG)


def _fill(flow: ConcurrencyLimit) -> list[Slot]:
    """Take every slot the current level allows (nothing else is in flight)."""
    slots = []
    while flow.in_flight < flow.limit:
        slot = flow.acquire()
        assert slot is not None
        slots.append(slot)
    return slots


def _clean_round(flow: ConcurrencyLimit) -> None:
    """One full round at the current level: every slot used, every answer clean."""
    for slot in _fill(flow):
        flow.release(slot, clean=True)


def _limited_round(flow: ConcurrencyLimit) -> None:
    """Every slot used; the first answer is a rate-limit refusal, the others neither clean nor limited."""
    first, *rest = _fill(flow)
    flow.release(first, limited=True)
    for slot in rest:
        flow.release(slot)


def test_the_level_doubles_per_clean_round_until_limited_then_rises_by_one() -> None:
    flow = ConcurrencyLimit(2, 1, 40)
    _clean_round(flow)
    assert flow.limit == 4
    _clean_round(flow)
    assert flow.limit == 8
    _limited_round(flow)
    assert flow.limit == 4  # the first refusal halves: the last doubling overshot by up to 2x
    _clean_round(flow)
    assert flow.limit == 5
    _clean_round(flow)
    assert flow.limit == 6
    assert flow.peak == 8


def test_slow_start_stops_at_the_maximum() -> None:
    flow = ConcurrencyLimit(4, 1, 10)
    for _ in range(3):
        _clean_round(flow)
    assert flow.limit == flow.peak == 10


def test_a_level_nobody_fills_is_not_raised() -> None:
    flow = ConcurrencyLimit(4, 1, 10)
    for _ in range(20):  # one call at a time: clean, but the level of 4 is never used
        slot = flow.acquire()
        assert slot is not None
        flow.release(slot, clean=True)
    assert flow.limit == 4


def test_a_rate_limit_answer_cuts_once_per_episode() -> None:
    flow = ConcurrencyLimit(16, 1, 20)
    _limited_round(flow)  # the end of slow start: 16 -> 8
    slots = _fill(flow)
    flow.release(slots[0], limited=True)
    assert flow.limit == 6  # later refusals: a quarter off
    for slot in slots[1:4]:  # sent at the old level: the same episode, no further cut
        flow.release(slot, limited=True)
    assert (flow.limit, flow.cuts) == (6, 2)
    for slot in slots[4:]:
        flow.release(slot, clean=True)
    again = flow.acquire()
    assert again is not None
    flow.release(again, limited=True)  # sent after the cut: a new episode
    assert (flow.limit, flow.cuts) == (5, 3)


def test_just_below_a_limited_level_it_waits_before_probing_again() -> None:
    flow = ConcurrencyLimit(16, 1, 20)
    _limited_round(flow)  # the end of slow start: 16 -> 8
    _limited_round(flow)  # limited at 8: down to 6
    assert flow.limit == 6
    _clean_round(flow)
    assert flow.limit == 7  # 6 -> 7 at once; 8 was limited
    for _ in range(FIRST_PROBE_ROUNDS - 1):
        _clean_round(flow)
        assert flow.limit == 7
    _clean_round(flow)
    assert flow.limit == 8  # probing the limited level again after FIRST_PROBE_ROUNDS clean rounds


def test_bounds_hold_both_ways() -> None:
    flow = ConcurrencyLimit(2, 2, 3)
    for _ in range(10):
        _clean_round(flow)
    assert flow.limit == flow.peak == 3
    for _ in range(5):
        _limited_round(flow)
    assert flow.limit == 2 and flow.in_flight == 0


def test_a_cancelled_wait_returns_no_slot() -> None:
    flow = ConcurrencyLimit(1, 1, 1)
    assert flow.acquire() is not None
    cancel = threading.Event()
    cancel.set()
    assert flow.acquire(cancel) is None
    assert flow.in_flight == 1


def _requests(calls: int) -> list[CallRequest]:
    return [CallRequest(k, s, 30) for k in kol_ids((calls + 1) // 2) for s in Series][:calls]


def test_client_finds_a_hidden_in_flight_limit_and_bills_each_call_once() -> None:
    limit = HiddenLimit(max_in_flight=6)
    with Simulator(today=SIM_TODAY, latency_s=0.03, hidden_limit=limit) as sim:
        with fast_client(sim, concurrency=2, min_concurrency=1, max_concurrency=32, max_attempts=8) as client:
            report = fetch_all(client, _requests(600))
        assert sim.limiter is not None
        refused = sim.limiter.refused
        assert report.counts == {Outcome.OK: 600}
        assert sim.billed_calls == report.billed_calls == 600  # refusals are free, nothing bills twice
        assert client.flow.peak > 6  # it rose past the hidden limit from 2 while answers were clean ...
        assert client.flow.cuts >= 1 and refused >= 1  # ... was refused, and backed off
        limited = [a for r in report.results for a in r.attempts if a.outcome is Outcome.RATE_LIMITED]
        assert len(limited) == refused and all(a.api_code == 302 for a in limited)
        assert refused < 60  # settled below the limit instead of bouncing off it


def test_client_stays_within_its_configured_maximum() -> None:
    with Simulator(today=SIM_TODAY, latency_s=0.02, hidden_limit=HiddenLimit(max_in_flight=6)) as sim:
        with fast_client(sim, concurrency=1, min_concurrency=1, max_concurrency=3) as client:
            report = fetch_all(client, _requests(200))
        assert report.counts == {Outcome.OK: 200}
        assert client.flow.peak == 3  # clean answers all the way, but never past the maximum
        assert sim.limiter is not None and sim.limiter.refused == 0


def test_http_429_retry_after_holds_every_thread() -> None:
    # In flight at most 1; the client starts at 2, so its second request is refused with Retry-After: 1.
    limit = HiddenLimit(max_in_flight=1, reply="http_429")
    with Simulator(today=SIM_TODAY, latency_s=0.2, retry_after_s=1, hidden_limit=limit) as sim:
        with fast_client(sim, concurrency=2, min_concurrency=1, max_concurrency=2, backoff_max_s=5.0) as client:
            report = fetch_all(client, _requests(6))
        calls = sim.calls
    assert report.counts == {Outcome.OK: 6}
    refusals = [c.at for c in calls if c.status == 429]
    assert refusals and client.flow.cuts >= 1 and client.gate.slowdowns >= 1
    for refused_at in refusals:
        # Within Retry-After, at most the one request the other thread may have sent before the 429 arrived;
        # without the pause that thread would send one every 0.2 s.
        soon = [c for c in calls if refused_at < c.at < refused_at + 0.9]
        assert len(soon) <= 1, [(round(c.at - refused_at, 3), c.status) for c in soon]


def test_the_run_metadata_shows_the_concurrency_reached(
    instance: DagsterInstance, engine: Engine, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    track(engine, 20)
    with Simulator(latency_s=0.02, hidden_limit=HiddenLimit(max_in_flight=5)) as sim:
        api = {"concurrency": 2, "min_concurrency": 1, "max_concurrency": 16, "max_attempts": 8}
        result = materialize(
            [kol_fans_trend],
            resources=dagster_resources(sim, database_url, **api),
            instance=instance,
            tags=dict.fromkeys(RANGE, yesterday.isoformat()),
        )
    assert result.success
    (mat,) = result.asset_materializations_for_node("kol_fans_trend")
    reached, final = (mat.metadata[key].value for key in ("concurrency_reached", "concurrency_final"))
    assert isinstance(reached, int) and isinstance(final, int)
    assert 2 < reached <= 16
    assert 1 <= final <= reached
    assert len(stored(engine, yesterday, yesterday)) == 40


def test_bounds_that_cannot_hold_fail_with_the_fix_named() -> None:
    with pytest.raises(ValueError, match=r"min_concurrency \(8\) must be at least 1 and at most max_concurrency \(4\)"):
        ConcurrencyLimit(4, 8, 4)
