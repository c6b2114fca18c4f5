"""The token never goes over plain HTTP off this machine unless the operator opted in.

Every check here only builds clients, never calls them: building one opens no connection (requests connects
lazily, on the first request), so even if the refusal were missing no packet could leave this machine. The
non-loopback URLs are prod-cn's published address and names under `.invalid`, which never resolve.
"""

from __future__ import annotations

import pytest
from dagster import Failure

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.config import PROD_CN_BASE_URL, ConfigError, Secret, resolve_base_url
from pgy_pipeline.defs.resources import TrendApiResource

TOKEN = Secret("tok-CLEARTEXT-1b2c")
OFF_MACHINE = [
    PROD_CN_BASE_URL,
    "http://pgy.invalid",
    "HTTP://pgy.invalid:8080/",
    "http://localhost.invalid",
    "http://127.0.0.1@pgy.invalid",  # the host is after the '@'
]
LOOPBACK = ["http://127.0.0.1:9", "http://127.8.9.10:9", "http://localhost:9", "http://LOCALHOST:9", "http://[::1]:9"]
REFUSAL = r"refusing to send the API token in cleartext to http://.*PGY_ALLOW_PLAINTEXT_HTTP=1"


@pytest.fixture(autouse=True)
def no_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGY_ALLOW_PLAINTEXT_HTTP", raising=False)


@pytest.mark.parametrize("url", OFF_MACHINE)
def test_plain_http_off_this_machine_is_refused_when_the_client_is_built(url: str) -> None:
    with pytest.raises(ConfigError, match=REFUSAL) as refused:
        TrendClient(url, TOKEN)
    assert TOKEN.reveal() not in str(refused.value)


def test_prod_cn_alias_is_refused_in_one_sentence_naming_the_opt_in() -> None:
    with pytest.raises(ConfigError) as refused:
        TrendClient(resolve_base_url("prod-cn"), TOKEN)
    message = str(refused.value)
    assert message.startswith("refusing to send the API token in cleartext to http://47.117.133.51:30015: ")
    assert message.count(". ") == 0 and message.endswith(".")


@pytest.mark.parametrize("url", [*LOOPBACK, "https://api.justoneapi.com", "https://pgy.invalid"])
def test_loopback_http_and_any_https_are_allowed(url: str) -> None:
    TrendClient(url, TOKEN).close()


def test_the_operator_can_opt_in_by_environment_or_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    TrendClient(PROD_CN_BASE_URL, TOKEN, allow_plaintext_http=True).close()
    monkeypatch.setenv("PGY_ALLOW_PLAINTEXT_HTTP", "1")
    TrendClient(PROD_CN_BASE_URL, TOKEN).close()
    with pytest.raises(ConfigError, match=REFUSAL):  # an explicit False wins over the environment
        TrendClient(PROD_CN_BASE_URL, TOKEN, allow_plaintext_http=False)
    monkeypatch.setenv("PGY_ALLOW_PLAINTEXT_HTTP", "maybe")
    with pytest.raises(ConfigError, match=r"PGY_ALLOW_PLAINTEXT_HTTP='maybe' is not a yes/no value; set it to 1"):
        TrendClient(PROD_CN_BASE_URL, TOKEN)


def test_dagster_resource_fails_the_run_with_the_sentence_and_honours_its_field() -> None:
    with pytest.raises(Failure, match=REFUSAL):
        TrendApiResource(token="tok-CLEARTEXT-1b2c", base_url="prod-cn").make_client()
    TrendApiResource(token="tok-CLEARTEXT-1b2c", base_url="prod-cn", allow_plaintext_http=True).make_client().close()
