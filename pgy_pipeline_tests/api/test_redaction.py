"""The token never appears in logs, exception texts, reprs, attempt records or stored raw bodies."""

from __future__ import annotations

import json
import logging
import socket
from datetime import timedelta
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.api.redact import redact, redact_bytes
from pgy_pipeline.config import Secret
from pgy_pipeline.model import CallRequest, CallResult, Series, StopRun
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline_tests.support.simulator import FAST_CLIENT, SIM_TODAY, fetch_all, kol_ids

TOKEN = "tok-S3CRET-0123456789abcdef"  # a test token; the point is that it never leaks
WRONG = "wrong-S3CRET-fedcba9876543210"

FAULTS = ["slow", "drop", "reset_mid_body", "http_500", "http_502_html", "html_echo", "html", "code_301", "code_400"]


def _texts(results: list[CallResult]) -> str:
    parts: list[str] = []
    for result in results:
        parts.append(repr(result))
        for attempt in result.attempts:
            parts += [
                attempt.error or "",
                attempt.api_message or "",
                (attempt.raw_body or b"").decode("utf-8", "replace"),
            ]
    return "\n".join(parts)


def test_the_token_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line (URL and query) at DEBUG
    leaked: list[str] = []
    with Simulator(token=TOKEN, today=SIM_TODAY, slow_s=1.0) as sim:
        ids = kol_ids(len(FAULTS))
        for kol, fault in zip(ids, FAULTS, strict=True):
            sim.inject(kol, fault)
        settings = {**FAST_CLIENT, "read_timeout_s": 0.2, "max_attempts": 2}
        with TrendClient(sim.base_url, Secret(TOKEN), today=lambda: SIM_TODAY, **settings) as client:
            report = fetch_all(client, [CallRequest(k, Series.TOTAL_FANS, 30) for k in ids])
            leaked += [_texts(report.results), repr(client)]
            html_echo = report.results[FAULTS.index("html_echo")].attempts[0].raw_body or b""
            assert b"Upstream failed for /api/" in html_echo and b"token=***" in html_echo  # token masked
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            closed_port = sock.getsockname()[1]
        with TrendClient(f"http://127.0.0.1:{closed_port}", Secret(TOKEN), **settings) as refused:
            leaked.append(_texts([refused.call(CallRequest(ids[0], Series.NEW_FANS, 30))]))
        with TrendClient(sim.base_url, Secret(WRONG), today=lambda: SIM_TODAY, **settings) as wrong:
            with pytest.raises(StopRun) as caught:
                wrong.call(CallRequest(ids[0], Series.NEW_FANS, 30))
            leaked += [
                str(caught.value),
                repr(caught.value),
                _texts([caught.value.result] if caught.value.result else []),
            ]
    leaked.append(caplog.text)
    everything = "\n".join(leaked)
    assert "token=***" in caplog.text  # urllib3's request lines were logged, with the token masked
    assert "timed out" in everything and "ConnectionError" in everything  # the failures really happened
    assert TOKEN not in everything
    assert WRONG not in everything


# A token with every character base64 adds ('+', '/', '='), which go out percent-encoded. Its letter-digit
# runs survive every encoding a server may echo, so finding none of them anywhere proves nothing leaked.
ENCODABLE = "Zq9Rt+Kx2Lp/Wm3Nc=Pt7Sd+Vb8Qf/Hn5Jg=="
RUNS = ("Zq9Rt", "Kx2Lp", "Wm3Nc", "Pt7Sd", "Vb8Qf", "Hn5Jg")


def test_a_token_echoed_encoded_is_masked_in_raw_bodies_and_the_fetch_log(engine: Engine) -> None:
    echo_json, echo_html, clean = kol_ids(3)
    add_kols(engine, [echo_json, echo_html, clean])
    day = SIM_TODAY - timedelta(days=1)
    with Simulator(token=ENCODABLE, today=SIM_TODAY) as sim:
        sim.inject(echo_json, "echo_token_encoded")  # percent-encoded, decoded, '+' as space, JSON, HTML, twice
        sim.inject(echo_html, "html_echo")  # the request target as received: percent-encoded
        settings = {**FAST_CLIENT, "max_attempts": 1}
        with TrendClient(sim.base_url, Secret(ENCODABLE), today=lambda: SIM_TODAY, **settings) as client:
            run_range(engine, client, day, day, run_id="echo", today=SIM_TODAY)
        echoed = [c for c in sim.calls if c.fault in ("echo_token_encoded", "html_echo")]
    assert len(echoed) == 4  # both series of both KOLs really got an echoing answer
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "select coalesce(r.body::text, r.body_text, encode(r.body_bytes, 'escape')) as raw,"
                "       f.error, f.api_message"
                "  from pgy.fetch_log f left join pgy.raw_response r on r.fetch_log_id = f.id"
                " where f.kol_id in (:a, :b)"
            ),
            {"a": echo_json, "b": echo_html},
        ).all()
    everything = "\n".join(str(value) for row in stored for value in row)
    assert everything.count("***") >= 4 * 6 + 2  # every echoed form was there, and was masked
    assert [run for run in RUNS if run.lower() in everything.lower()] == []


ECHOES = {
    "literal": ENCODABLE,
    "percent-encoded": quote(ENCODABLE, safe=""),
    "percent-encoded, lower-case hex": quote(ENCODABLE, safe="").lower(),
    "percent-encoded but '/'": quote(ENCODABLE),
    "form-encoded": quote_plus(ENCODABLE),
    "'+' decoded as a space": ENCODABLE.replace("+", " "),
    "every character percent-encoded": "".join(f"%{ord(c):02X}" for c in ENCODABLE),
    "percent-encoded twice": quote(quote(ENCODABLE, safe=""), safe=""),
    "JSON with \\/": json.dumps(ENCODABLE)[1:-1].replace("/", "\\/"),
    "JSON \\u escapes": "".join(f"\\u{ord(c):04x}" for c in ENCODABLE),
    "HTML hex entities": "".join(c if c.isalnum() else f"&#x{ord(c):X};" for c in ENCODABLE),
    "HTML decimal entities": "".join(f"&#{ord(c)};" for c in ENCODABLE),
}


@pytest.mark.parametrize("form", ECHOES.values(), ids=ECHOES.keys())
def test_every_echoed_form_of_the_token_is_masked(form: str) -> None:
    assert redact_bytes(f"<p>for {form}.</p>".encode(), ENCODABLE) == b"<p>for ***.</p>"
    assert redact(f"rejected {form}", ENCODABLE) == "rejected ***"
