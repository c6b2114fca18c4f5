"""HTTP-level failures: error statuses, Retry-After, timeouts, dropped and reset connections."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.model import CallRequest, CallResult, Outcome, Series, StopRun
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.simulator import FAST_CLIENT, MakeClient, kol_id

KOL = kol_id(7)
REQUEST = CallRequest(KOL, Series.NEW_FANS, 30)


@pytest.mark.parametrize("fault", ["http_500", "http_503", "http_502_html", "drop", "reset_mid_body", "slow"])
def test_transient_failures_are_retried(sim_fixed_date: Simulator, make_client: MakeClient, fault: str) -> None:
    sim_fixed_date.inject(KOL, fault, times=1)
    result = make_client(read_timeout_s=0.3).call(REQUEST)
    assert result.outcome is Outcome.OK
    assert [a.outcome for a in result.attempts] == [Outcome.RETRY, Outcome.OK]
    assert result.attempts[0].error
    assert len(result.points) == 30


def test_a_timeout_is_recorded_and_bounded(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "slow")
    result = make_client(read_timeout_s=0.2, max_attempts=2).call(REQUEST)
    assert result.outcome is Outcome.FAILED
    for attempt in result.attempts:
        assert attempt.http_status is None and attempt.raw_body is None
        assert attempt.error is not None and "timed out" in attempt.error
    # The platform still answered (and billed) both: why the production read timeout is 60 s.
    assert sim_fixed_date.billed_calls == 2


def test_dropped_connections_exhaust_retries(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "drop")
    result = make_client(max_attempts=3).call(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert [a.outcome for a in result.attempts] == [Outcome.RETRY] * 3
    assert all("Connection" in (a.error or "") for a in result.attempts)


def test_connection_refused_is_retried_then_failed() -> None:
    with socket.socket() as sock:  # a port nobody listens on once this socket closes
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with TrendClient(f"http://127.0.0.1:{port}", Secret("x"), max_attempts=2, **FAST_CLIENT) as client:
        result = client.call(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert [a.outcome for a in result.attempts] == [Outcome.RETRY, Outcome.RETRY]
    assert all("ConnectionError" in (a.error or "") for a in result.attempts)


def test_http_429_honours_retry_after(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.config.retry_after_s = 1
    sim_fixed_date.inject(KOL, "http_429", times=1)
    client = make_client(backoff_max_s=5.0)
    result = client.call(REQUEST)
    assert [(a.outcome, a.http_status) for a in result.attempts] == [(Outcome.RATE_LIMITED, 429), (Outcome.OK, 200)]
    assert client.gate.slowdowns == 1
    first, second = sim_fixed_date.calls
    assert second.at - first.at >= 0.9  # the retry waited for Retry-After: 1


def test_http_429_with_quota_code_stops(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "http_429_quota")
    with pytest.raises(StopRun, match="code 303") as caught:
        make_client().call(REQUEST)
    assert caught.value.http_status == 429


@pytest.mark.parametrize("fault", ["http_401", "http_403"])
def test_http_401_403_stop_the_run(sim_fixed_date: Simulator, make_client: MakeClient, fault: str) -> None:
    sim_fixed_date.inject(KOL, fault)
    with pytest.raises(StopRun) as caught:
        make_client().call(REQUEST)
    assert caught.value.http_status == int(fault[-3:])
    assert caught.value.result is not None
    assert caught.value.result.outcome is Outcome.STOPPED


def test_http_400_is_invalid_params(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "http_400")
    result = make_client().call(REQUEST)
    assert result.outcome is Outcome.INVALID_PARAMS
    assert len(result.attempts) == 1


def test_a_stop_elsewhere_ends_retries_in_flight(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "code_301")
    sim_fixed_date.inject(kol_id(8), "code_600")
    client = make_client(max_attempts=50, backoff_base_s=0.2, backoff_max_s=0.2)
    retrying: list[CallResult] = []
    worker = threading.Thread(target=lambda: retrying.append(client.call(REQUEST)))
    worker.start()
    while not sim_fixed_date.calls:  # KOL's first attempt has been answered with 301: it is backing off
        time.sleep(0.01)
    with pytest.raises(StopRun):
        client.call(CallRequest(kol_id(8), Series.NEW_FANS, 30))
    worker.join(timeout=10)
    (result,) = retrying
    assert result.outcome is Outcome.FAILED
    assert len(result.attempts) < 50  # the stop cut its retries short
    later = client.call(CallRequest(kol_id(9), Series.NEW_FANS, 30))
    assert later.outcome is Outcome.NOT_ATTEMPTED
    assert kol_id(9) not in {c.kol_id for c in sim_fixed_date.calls}
