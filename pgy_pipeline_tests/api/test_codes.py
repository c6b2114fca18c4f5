"""Every business code's action, end to end through the simulator's real HTTP."""

from __future__ import annotations

import pytest

from pgy_pipeline.config import Secret
from pgy_pipeline.model import CallRequest, Outcome, Series, StopRun
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.simulator import MakeClient, kol_id

KOL = kol_id(1)
REQUEST = CallRequest(KOL, Series.TOTAL_FANS, 30)


def test_code_0_loads_the_rows(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    result = make_client().call(REQUEST)
    assert result.outcome is Outcome.OK
    assert len(result.points) == 30
    assert [a.api_code for a in result.attempts] == [0]
    assert result.attempts[0].billed
    assert sim_fixed_date.billed_calls == 1


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(201, Outcome.NO_CONTENT), (400, Outcome.INVALID_PARAMS)],
)
def test_per_kol_final_codes_are_not_retried(
    sim_fixed_date: Simulator, make_client: MakeClient, code: int, outcome: Outcome
) -> None:
    sim_fixed_date.inject(KOL, f"code_{code}")
    result = make_client().call(REQUEST)
    assert result.outcome is outcome
    assert [a.api_code for a in result.attempts] == [code]
    assert result.points == ()
    assert len(sim_fixed_date.calls) == 1
    assert sim_fixed_date.billed_calls == (1 if code == 201 else 0)
    assert result.attempts[0].billed is (code == 201)


@pytest.mark.parametrize("code", [101, 202, 300, 404, 602])
def test_undocumented_codes_are_recorded_verbatim_and_not_retried(
    sim_fixed_date: Simulator, make_client: MakeClient, code: int
) -> None:
    sim_fixed_date.inject(KOL, f"code_{code}")
    result = make_client().call(REQUEST)
    assert result.outcome is Outcome.FAILED
    (attempt,) = result.attempts
    assert attempt.api_code == code
    assert attempt.api_message  # the platform's message, kept for the fetch log
    assert attempt.request_id
    assert len(sim_fixed_date.calls) == 1


@pytest.mark.parametrize("code", [301, 500, 503])
def test_retryable_codes_are_retried_until_success(
    sim_fixed_date: Simulator, make_client: MakeClient, code: int
) -> None:
    sim_fixed_date.inject(KOL, f"code_{code}", times=2)
    result = make_client(max_attempts=4).call(REQUEST)
    assert result.outcome is Outcome.OK
    assert [a.outcome for a in result.attempts] == [Outcome.RETRY, Outcome.RETRY, Outcome.OK]
    assert [a.api_code for a in result.attempts] == [code, code, 0]
    assert len(result.points) == 30


@pytest.mark.parametrize("code", [301, 500, 503])
def test_retries_are_bounded(sim_fixed_date: Simulator, make_client: MakeClient, code: int) -> None:
    sim_fixed_date.inject(KOL, f"code_{code}")
    result = make_client(max_attempts=3).call(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert [a.attempt for a in result.attempts] == [1, 2, 3]
    assert len(sim_fixed_date.calls) == 3
    assert sim_fixed_date.billed_calls == 0


def test_code_302_slows_the_whole_client_then_retries(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "code_302", times=1)
    client = make_client()
    result = client.call(REQUEST)
    assert result.outcome is Outcome.OK
    assert [a.outcome for a in result.attempts] == [Outcome.RATE_LIMITED, Outcome.OK]
    assert client.gate.slowdowns == 1
    assert client.gate.interval_s > 0  # every later request from this client is paced


def test_code_302_retries_are_bounded(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    sim_fixed_date.inject(KOL, "code_302")
    result = make_client(max_attempts=2).call(REQUEST)
    assert result.outcome is Outcome.FAILED
    assert [a.outcome for a in result.attempts] == [Outcome.RATE_LIMITED, Outcome.RATE_LIMITED]


@pytest.mark.parametrize(
    ("code", "advice"),
    [(100, "PGY_API_TOKEN"), (303, "rerun tomorrow"), (600, "Permission denied"), (601, "top up")],
)
def test_stop_codes_stop_the_run(sim_fixed_date: Simulator, make_client: MakeClient, code: int, advice: str) -> None:
    sim_fixed_date.inject(KOL, f"code_{code}")
    client = make_client()
    with pytest.raises(StopRun) as caught:
        client.call(REQUEST)
    stop = caught.value
    assert stop.api_code == code
    assert f"code {code}" in stop.reason and advice in stop.reason
    assert stop.result is not None and stop.result.outcome is Outcome.STOPPED
    assert [a.api_code for a in stop.result.attempts] == [code]
    assert client.stopped is stop
    # Sticky: nothing else leaves this client.
    later = client.call(CallRequest(kol_id(2), Series.NEW_FANS, 30))
    assert later.outcome is Outcome.NOT_ATTEMPTED and later.attempts == ()
    assert len(sim_fixed_date.calls) == 1


def test_a_wrong_token_stops_the_run_with_advice(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    client = make_client()
    client._token = Secret("not-the-token")  # a real wrong token, answered by the simulator with code 100
    with pytest.raises(StopRun, match="check PGY_API_TOKEN") as caught:
        client.call(REQUEST)
    assert caught.value.api_code == 100
    assert sim_fixed_date.billed_calls == 0
