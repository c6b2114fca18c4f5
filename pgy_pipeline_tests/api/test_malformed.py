"""Bodies that are not a valid envelope or trend: recorded as MALFORMED with the raw body, nothing loaded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pgy_pipeline.api.parse import parse_int
from pgy_pipeline.model import CallRequest, Outcome, Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.simulator import MakeClient, kol_id

KOL = kol_id(3)

HOSTILE = [
    "html",
    "truncated_json",
    "empty_body",
    "invalid_utf8",
    "not_an_object",
    "no_code",
    "data_null",
    "list_not_list",
    "num_bool",
    "num_null",
    "num_fraction",
    "num_float",
    "num_fraction_string",
    "num_too_big",
    "date_impossible",
    "date_bad_format",
    "date_missing",
    "date_future",
    "duplicate_conflict",
]


@pytest.mark.parametrize("fault", HOSTILE)
def test_malformed_bodies_load_nothing_and_keep_the_raw_body(
    sim_fixed_date: Simulator, make_client: MakeClient, fault: str
) -> None:
    sim_fixed_date.inject(KOL, fault)
    result = make_client().call(CallRequest(KOL, Series.TOTAL_FANS, 30))
    assert result.outcome is Outcome.MALFORMED
    (attempt,) = result.attempts  # never retried: a success body is billed, a retry would bill again
    assert attempt.outcome is Outcome.MALFORMED
    assert attempt.http_status == 200
    assert attempt.error is not None and attempt.error.startswith("malformed response:")
    assert attempt.raw_body is not None and (attempt.raw_body != b"" or fault == "empty_body")
    assert result.points == ()


def test_negative_total_fans_are_malformed_but_negative_new_fans_are_not(
    sim_fixed_date: Simulator, make_client: MakeClient
) -> None:
    sim_fixed_date.inject(KOL, "num_negative")
    client = make_client()
    assert client.call(CallRequest(KOL, Series.TOTAL_FANS, 30)).outcome is Outcome.MALFORMED
    new_fans = client.call(CallRequest(KOL, Series.NEW_FANS, 30))
    assert new_fans.outcome is Outcome.OK
    assert new_fans.points[-1].num == -5


@pytest.mark.parametrize("fault", ["code_as_string", "num_string", "duplicate_same", "unsorted", "extra_days"])
def test_tolerated_variations_are_normalised(sim_fixed_date: Simulator, make_client: MakeClient, fault: str) -> None:
    sim_fixed_date.inject(KOL, fault)
    result = make_client().call(CallRequest(KOL, Series.TOTAL_FANS, 30))
    assert result.outcome is Outcome.OK
    days = 40 if fault == "extra_days" else 30
    latest = sim_fixed_date.latest_date
    expected = [
        (latest - timedelta(days=n), sim_fixed_date.truth(KOL, Series.TOTAL_FANS, latest - timedelta(days=n)))
        for n in range(days - 1, -1, -1)
    ]
    assert [(p.date_key, p.num) for p in result.points] == expected
    assert result.attempts[0].api_code == 0


def test_dates_after_the_clients_today_are_malformed(sim_fixed_date: Simulator, make_client: MakeClient) -> None:
    client = make_client(today=lambda: sim_fixed_date.today - timedelta(days=5))
    result = client.call(CallRequest(KOL, Series.TOTAL_FANS, 30))
    assert result.outcome is Outcome.MALFORMED
    assert "after today" in (result.attempts[0].error or "")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (8430, 8430),
        ("8430", 8430),
        ("-11", -11),
        (8430.0, None),  # a JSON float is never trusted as an exact count
        (84.3, None),
        ("84.3", None),
        (" 8430", None),
        ("+8430", None),
        ("", None),
        (True, None),
        (None, None),
        ([8430], None),
    ],
)
def test_numeric_representation_decision(value: object, parsed: int | None) -> None:
    assert parse_int(value) == parsed


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("num_nan", "list[29].num None is not an integer"),  # NaN is not JSON: read as null
        ("num_minus_infinity", "list[29].num None is not an integer"),
        ("num_huge_digits", "body holds a number too long to read (Exceeds the limit (4300 digits)"),
        ("code_beyond_integer", "envelope code 2147483648 is out of the 32-bit integer range API codes use"),
        ("deep_nesting", "body nests arrays or objects too deeply to read"),
    ],
)
def test_bodies_that_exhaust_a_parser_are_malformed_with_the_reason(
    sim_fixed_date: Simulator, make_client: MakeClient, fault: str, says: str
) -> None:
    sim_fixed_date.inject(KOL, fault)
    result = make_client().call(CallRequest(KOL, Series.TOTAL_FANS, 30))
    (attempt,) = result.attempts
    assert (result.outcome, attempt.outcome, result.points) == (Outcome.MALFORMED, Outcome.MALFORMED, ())
    assert attempt.error is not None and attempt.error.startswith(f"malformed response: {says}"), attempt.error
    assert attempt.api_code is None or fault.startswith("num_")


@pytest.mark.parametrize(
    ("fault", "inc", "rate", "message"),
    [
        ("rate_nan", "truth", None, "success"),  # 0 fans at the window start: the platform has no rate to give
        ("rate_infinity", "truth", None, "success"),
        ("rate_exponent_huge", "truth", None, "success"),
        ("rate_huge_int", "truth", None, "success"),
        ("inc_beyond_bigint", None, "truth", "success"),
        ("message_nul_surrogate", "truth", "truth", "success\ufffd\ufffd"),
    ],
)
def test_unusable_summaries_and_text_keep_the_points(
    sim_fixed_date: Simulator, make_client: MakeClient, fault: str, inc: object, rate: object, message: str
) -> None:
    clean = make_client().call(CallRequest(KOL, Series.TOTAL_FANS, 30))
    assert clean.fans_num_inc is not None and clean.fans_num_inc_rate is not None
    sim_fixed_date.inject(KOL, fault)
    result = make_client().call(CallRequest(KOL, Series.TOTAL_FANS, 30))
    assert result.outcome is Outcome.OK and result.points == clean.points
    assert result.fans_num_inc == (clean.fans_num_inc if inc == "truth" else inc)
    assert result.fans_num_inc_rate == (clean.fans_num_inc_rate if rate == "truth" else rate)
    assert result.attempts[0].api_message == message
