"""Concurrent fetching: request order, billing, a prompt stop, NOT_ATTEMPTED calls, client-wide slow-down."""

from __future__ import annotations

import time

from pgy_pipeline.fetch import fetch_iter
from pgy_pipeline.model import CallRequest, Outcome, Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.simulator import MakeClient, fetch_all, kol_ids


def _requests(count: int) -> list[CallRequest]:
    return [CallRequest(k, s, 30) for k in kol_ids(count) for s in Series]


def test_results_come_back_in_request_order_and_bill_once_each(
    sim_fixed_date: Simulator, make_client: MakeClient
) -> None:
    requests = _requests(30)
    client = make_client(concurrency=8)
    report = fetch_all(client, requests)
    assert client.gate.waits == 0  # no rate limit, no 302: nobody waits at the gate
    assert [(r.kol_id, r.series) for r in report.results] == [(q.kol_id, q.series) for q in requests]
    assert all(r.outcome is Outcome.OK and len(r.points) == 30 for r in report.results)
    assert report.stop is None
    assert report.counts == {Outcome.OK: 60}
    assert sim_fixed_date.billed_calls == report.billed_calls == 60


def test_a_quota_stop_leaves_the_rest_not_attempted_and_unbilled(
    sim_fixed_date: Simulator, make_client: MakeClient
) -> None:
    requests = _requests(100)
    quota_kol = requests[20].kol_id
    sim_fixed_date.inject(quota_kol, "code_303", series=Series.TOTAL_FANS)
    report = fetch_all(make_client(concurrency=4), requests)

    assert report.stop is not None and report.stop.api_code == 303
    assert "rerun tomorrow" in report.stop.reason
    outcomes = [r.outcome for r in report.results]
    assert outcomes[20] is Outcome.STOPPED
    assert set(outcomes) <= {Outcome.OK, Outcome.STOPPED, Outcome.NOT_ATTEMPTED}
    not_attempted = [r for r in report.results if r.outcome is Outcome.NOT_ATTEMPTED]
    assert len(not_attempted) >= 150  # stopped promptly: at most a queue's worth went out after it
    assert all(r.attempts == () for r in not_attempted)
    sent = {(c.kol_id, c.series) for c in sim_fixed_date.calls}
    assert not sent & {(r.kol_id, r.series) for r in not_attempted}  # never sent, so never billed
    assert sim_fixed_date.billed_calls == outcomes.count(Outcome.OK) == report.billed_calls


def test_streaming_yields_every_result_and_reports_the_stop(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    requests = _requests(20)
    sim_fixed_date.inject(requests[5].kol_id, "code_601", series=requests[5].series)
    stream = fetch_iter(make_client(concurrency=3), iter(requests))  # a one-shot generator is fine
    seen = list(stream)
    assert len(seen) == len(requests)
    assert stream.stop is not None and stream.stop.api_code == 601
    assert sum(r.outcome is Outcome.STOPPED for r in seen) == 1


def test_a_stopped_client_sends_nothing_more(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    requests = _requests(5)
    sim_fixed_date.inject(requests[0].kol_id, "code_100")
    client = make_client(concurrency=1)
    first = fetch_all(client, requests)
    assert first.stop is not None
    sim_fixed_date.reset_counters()
    again = fetch_all(client, requests)
    assert again.stop is first.stop
    assert {r.outcome for r in again.results} == {Outcome.NOT_ATTEMPTED}
    assert sim_fixed_date.calls == []


def test_rate_limiting_slows_the_whole_client(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    requests = _requests(20)
    limited = requests[0]
    sim_fixed_date.config.retry_after_s = 0  # no pause: what remains visible is the lowered pace
    sim_fixed_date.inject(limited.kol_id, "code_302", times=1, series=limited.series)
    client = make_client(concurrency=4, backoff_max_s=1.0)  # the slowest pace is capped at backoff_max_s
    report = fetch_all(client, requests)
    assert {r.outcome for r in report.results} == {Outcome.OK}
    assert [a.outcome for a in report.results[0].attempts] == [Outcome.RATE_LIMITED, Outcome.OK]
    assert client.gate.slowdowns == 1
    # Not only the limited call waited: after the 302 the other threads queued at the shared gate.
    assert client.gate.waits >= 10


def test_a_configured_rate_limit_paces_requests(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    client = make_client(concurrency=4, rate_limit_per_s=50)
    started = time.monotonic()
    fetch_all(client, _requests(5))
    assert len(sim_fixed_date.calls) == 10
    assert time.monotonic() - started >= 9 / 50  # 10 send slots, 1/50 s apart


def test_abandoning_the_stream_sends_no_queued_calls(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.latency_s = 0.05
    requests = _requests(50)
    stream = fetch_iter(make_client(concurrency=2), requests)
    for _ in stream:
        break  # e.g. the loader failed on the first result
    assert len(sim_fixed_date.calls) <= 2 * 2  # what was already running, never the other ~100 calls
