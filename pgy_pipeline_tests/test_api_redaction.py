"""The token never appears in logs, exception texts, reprs, attempt records or stored raw bodies."""

from __future__ import annotations

import logging
import socket

import pytest

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import Secret
from pgy_pipeline.fetch import fetch_all
from pgy_pipeline.model import CallRequest, CallResult, Series, StopRun
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.sim import FAST_CLIENT, SIM_TODAY, kol_ids

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
