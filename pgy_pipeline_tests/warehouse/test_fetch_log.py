"""The fetch log and raw-body archive: every attempt recorded, bodies kept in the most useful form."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine

from pgy_pipeline.model import Attempt, CallResult, Endpoint, Outcome, Series, TrendPoint
from pgy_pipeline.warehouse.fetch_log import record_calls
from pgy_pipeline.warehouse.load import LoadRejected, load_points
from pgy_pipeline_tests.support.warehouse import query_rows


def _attempt(n: int, outcome: Outcome, code: int | None, body: bytes | None, *, http: int = 200, **kw: Any) -> Attempt:
    return Attempt(
        attempt=n, outcome=outcome, http_status=http, api_code=code, api_message=kw.get("message"),
        request_id=kw.get("request_id"), record_time=None, duration_s=0.0123, error=kw.get("error"),
        raw_body=body, billed=code in (0, 201),
    )  # fmt: skip


def _call(kol: str, series: Series, outcome: Outcome, attempts: tuple[Attempt, ...], points=()) -> CallResult:
    return CallResult(kol, series, Endpoint.LEGACY_V1, 10, 30, outcome, attempts, tuple(points), 2, 0.01)


def test_every_attempt_is_a_row_and_ok_calls_return_their_final_id(engine: Engine) -> None:
    ok_body = b'{"code":0,"message":"ok","data":{"list":[]}}'
    points = [TrendPoint("k1", date(2026, 3, d), "total_fans", 100 + d) for d in (7, 8)]
    results = [
        _call(
            "k1",
            Series.TOTAL_FANS,
            Outcome.OK,
            (_attempt(1, Outcome.RETRY, 301, b'{"code":301}'), _attempt(2, Outcome.OK, 0, ok_body)),
            points,
        ),
        _call(
            "k1",
            Series.NEW_FANS,
            Outcome.FAILED,
            tuple(_attempt(i, Outcome.RETRY, None, None, http=503, error="HTTP 503") for i in (1, 2)),
        ),
        _call("k2", Series.TOTAL_FANS, Outcome.STOPPED, (_attempt(1, Outcome.STOPPED, 303, b'{"code":303}'),)),
        _call("k2", Series.NEW_FANS, Outcome.NOT_ATTEMPTED, ()),
    ]
    ids = record_calls(engine, results, run_id="r1", partition_start=date(2026, 3, 1), partition_end=date(2026, 3, 8))
    rows = query_rows(engine, "SELECT * FROM pgy.fetch_log ORDER BY id")
    assert [(r["kol_id"], r["increase_type"], r["attempt"], r["outcome"], r["is_final"]) for r in rows] == [
        ("k1", "total_fans", 1, "retry", False),
        ("k1", "total_fans", 2, "ok", True),
        ("k1", "new_fans", 1, "retry", False),
        ("k1", "new_fans", 2, "failed", True),
        ("k2", "total_fans", 1, "stopped", True),
        ("k2", "new_fans", 0, "not_attempted", True),
    ]
    assert ids == {("k1", "total_fans"): rows[1]["id"]}
    ok = rows[1]
    assert (ok["rows_received"], ok["first_date_key"], ok["last_date_key"]) == (2, date(2026, 3, 7), date(2026, 3, 8))
    assert (ok["api_code"], ok["billed"], ok["duration_ms"], ok["run_id"]) == (0, True, 12, "r1")
    assert (ok["fans_num_inc"], ok["fans_num_inc_rate"], ok["window_days"], ok["days_wanted"]) == (2, 0.01, 30, 10)
    assert rows[0]["rows_received"] is None and rows[0]["billed"] is False
    assert rows[3]["http_status"] == 503 and rows[3]["error"] == "HTTP 503"
    assert all(r["partition_start"] == date(2026, 3, 1) for r in rows)


def test_raw_bodies_are_kept_as_json_text_or_bytes(engine: Engine) -> None:
    bodies = {
        "json": b'{"code":0,"data":null}',
        "html": b"<html><body>502 Bad Gateway</body></html>",
        "latin1": b'{"code":0,"message":"caf\xe9"}',
        "nul_escape": b'{"code":0,"message":"a\\u0000b"}',
    }
    results = [
        _call(f"k{i}", Series.TOTAL_FANS, Outcome.MALFORMED, (_attempt(1, Outcome.MALFORMED, 0, body),))
        for i, body in enumerate(bodies.values())
    ]
    record_calls(engine, results, run_id=None, partition_start=None, partition_end=None)
    rows = query_rows(engine, "SELECT f.kol_id, r.body, r.body_text, r.body_bytes FROM pgy.raw_response r "
                              "JOIN pgy.fetch_log f ON f.id = r.fetch_log_id ORDER BY f.kol_id")  # fmt: skip
    assert rows[0]["body"] == {"code": 0, "data": None}
    assert rows[1]["body_text"] == bodies["html"].decode()
    assert bytes(rows[2]["body_bytes"]) == bodies["latin1"]
    assert rows[3]["body_text"] == bodies["nul_escape"].decode()  # jsonb cannot hold \u0000: kept verbatim as text


def test_a_nul_in_a_message_does_not_lose_the_attempt(engine: Engine) -> None:
    attempt = _attempt(1, Outcome.FAILED, 404, b'{"code":404}', message="bad\x00message")
    record_calls(engine, [_call("k1", Series.NEW_FANS, Outcome.FAILED, (attempt,))], run_id="r",
                 partition_start=None, partition_end=None)  # fmt: skip
    assert query_rows(engine, "SELECT api_message FROM pgy.fetch_log")[0]["api_message"] == "bad\ufffdmessage"


def test_nothing_to_record_touches_nothing(engine: Engine) -> None:
    assert record_calls(engine, [], run_id="r", partition_start=None, partition_end=None) == {}


def test_a_call_is_marked_loaded_only_by_the_transaction_that_stores_itsquery_rows(engine: Engine) -> None:
    good = [TrendPoint("k1", date(2026, 3, d), "total_fans", 100 + d) for d in (7, 8)]
    bad = [TrendPoint("k2", date(2026, 3, 7), "total_fans", 5), TrendPoint("k2", date(2026, 3, 7), "total_fans", 6)]
    ok = (_attempt(1, Outcome.OK, 0, b'{"code":0}'),)
    results = [
        _call("k1", Series.TOTAL_FANS, Outcome.OK, ok, good),
        _call("k2", Series.TOTAL_FANS, Outcome.OK, ok, bad),
        _call("k3", Series.TOTAL_FANS, Outcome.OK, ok),  # an empty list: nothing to load, in hand at once
    ]
    ids = record_calls(engine, results, run_id="r", partition_start=None, partition_end=None)
    load_points(engine, good, fetch_ids={("k1", "total_fans"): ids[("k1", "total_fans")]})
    with pytest.raises(LoadRejected):  # the same key twice with different nums: nothing written, nothing marked
        load_points(engine, bad, fetch_ids={("k2", "total_fans"): ids[("k2", "total_fans")]})
    assert _loaded(engine) == {"k1": True, "k2": False, "k3": True}
    load_points(engine, good, fetch_ids={("k1", "total_fans"): ids[("k1", "total_fans")]})  # the same calls again
    assert _loaded(engine) == {"k1": True, "k2": False, "k3": True}
    assert query_rows(engine, "SELECT count(*) AS n FROM pgy.fetch_log_loaded") == [{"n": 2}]


def _loaded(engine: Engine) -> dict[str, bool]:
    """kol_id -> whether its call is marked loaded (its rows committed)."""
    sql = (
        "SELECT f.kol_id, l.fetch_log_id IS NOT NULL AS loaded FROM pgy.fetch_log f "
        "LEFT JOIN pgy.fetch_log_loaded l ON l.fetch_log_id = f.id"
    )
    return {r["kol_id"]: r["loaded"] for r in query_rows(engine, sql)}


def _envelope(rate: bytes) -> bytes:
    return b'{"code":0,"message":"success","data":{"fansNumIncRate":' + rate + b',"list":[]}}'


# Bodies Python's json reads (or nearly) that jsonb may refuse, with the column each must land in. The whole
# set is recorded as ONE chunk with a good call: a single refusal would fail the COPY and lose them all.
EDGE_BODIES: dict[str, tuple[bytes, str]] = {
    "nan": (_envelope(b"NaN"), "body_text"),
    "infinity": (_envelope(b"Infinity"), "body_text"),
    "minus_infinity": (_envelope(b"-Infinity"), "body_text"),
    "exponent_overflow": (_envelope(b"1e999999"), "body_text"),
    "exponent_underflow": (_envelope(b"1e-999999"), "body_text"),
    "zero_scale_overflow": (_envelope(b"0.0e-20000"), "body_text"),
    "long_fraction": (_envelope(b"1." + b"1" * 20_000), "body_text"),
    "long_integer": (_envelope(b"9" * 200_000), "body_text"),
    "deep_100000": (_envelope(b"[" * 100_000 + b"]" * 100_000), "body_text"),
    "deep_500": (_envelope(b"[" * 500 + b"]" * 500), "body"),
    "big_but_fine": (_envelope(b"1" + b"0" * 400 + b".5e-900"), "body"),
    "lone_surrogate": (b'{"code":0,"message":"\\udc00"}', "body_text"),
    "nul_escape": (b'{"code":0,"message":"\\u0000"}', "body_text"),
    "bom": (b"\xef\xbb\xbf" + _envelope(b"1"), "body_text"),
    "raw_nul": (b'{"code":0,"message":"\x00"}', "body_bytes"),
    "code_beyond_integer": (b'{"code":2147483648}', "body"),
}


def test_no_body_fails_the_chunk_it_arrives_in(engine: Engine) -> None:
    good = [TrendPoint("good", date(2026, 3, 7), "total_fans", 107)]
    results = [_call("good", Series.TOTAL_FANS, Outcome.OK, (_attempt(1, Outcome.OK, 0, b'{"code":0}'),), good)]
    results += [
        _call(name, Series.TOTAL_FANS, Outcome.MALFORMED, (_attempt(1, Outcome.MALFORMED, 0, body),))
        for name, (body, _) in EDGE_BODIES.items()
    ]
    ids = record_calls(engine, results, run_id="r", partition_start=None, partition_end=None)
    assert set(ids) == {("good", "total_fans")}  # the good call's result is recorded, ready to load
    rows = query_rows(engine, "SELECT f.kol_id, r.body::text AS body, r.body_text, r.body_bytes "
                              "FROM pgy.raw_response r JOIN pgy.fetch_log f ON f.id = r.fetch_log_id")  # fmt: skip
    kept = {r["kol_id"]: next((c, v) for c, v in r.items() if c != "kol_id" and v is not None) for r in rows}
    for name, (body, column) in EDGE_BODIES.items():
        stored_in, value = kept[name]
        assert stored_in == column, name
        if column == "body_text":
            assert value.encode("utf-8") == body, name  # verbatim
        elif column == "body_bytes":
            assert bytes(value) == body, name
