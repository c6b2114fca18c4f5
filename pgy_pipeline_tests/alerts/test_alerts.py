"""Chat alerts against a local webhook receiver for every kind: payload shape, signing, acknowledgement,
failures that are logged and never raised, and no secret in any message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import date, timedelta

import pytest
from dagster import DagsterInstance, materialize
from sqlalchemy import Engine, text

from pgy_pipeline.alerts import Alert, AlertSettings, WebhookKind, send_alert
from pgy_pipeline.config import ConfigError
from pgy_pipeline.defs.alerts import AlertsResource, check_and_freshness_alert
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.checks import asset_checks
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster import alert_tick, dagster_resources
from pgy_pipeline_tests.support.dagster_procs import free_port
from pgy_pipeline_tests.support.warehouse import track
from pgy_pipeline_tests.support.webhook import PATHS, REFUSAL, Receiver, receiver

SECRETS = {"dingtalk": "SECdingtalk-signing-0001", "feishu": "feishu-signing-0001"}
API_TOKEN = "api-token-must-never-leak-7f3a"


def _alert(reason: str = "code 303: daily quota exceeded; the run resumes tomorrow.") -> Alert:
    return Alert(
        event="Run failed",
        subject="kol_fans_trend_job",
        partitions="2026-03-01..2026-03-08",
        reason=reason,
        billed_calls=42,
        link="http://127.0.0.1:3000/runs/abc-123",
    )


def _settings(r: Receiver, secret: str | None = None) -> AlertSettings:
    settings = AlertSettings.from_values(r.base_url + PATHS[r.kind], r.kind, secret, "http://127.0.0.1:3000")
    assert settings is not None
    return settings


@pytest.mark.parametrize("kind", [k.value for k in WebhookKind])
def test_every_kind_gets_one_message_in_its_own_shape(kind: str) -> None:
    with receiver(kind) as r:
        assert send_alert(_settings(r, SECRETS.get(kind)), _alert(), api_token=API_TOKEN) is True
        (got,) = r.messages()
    text = {
        "wecom": lambda b: b["markdown"]["content"],
        "dingtalk": lambda b: b["markdown"]["text"],
        "feishu": lambda b: b["content"]["text"],
        "slack": lambda b: b["text"],
    }[kind](got.body)
    for expected in ("Run failed", "kol_fans_trend_job", "2026-03-01..2026-03-08", "daily quota exceeded", "42",
                     "http://127.0.0.1:3000/runs/abc-123"):  # fmt: skip
        assert expected in text, (kind, text)
    assert got.body.get("msgtype", got.body.get("msg_type", "text")) in {"markdown", "text"}
    if kind == "dingtalk":
        assert got.body["markdown"]["title"] == "[pgy-pipeline] Run failed: kol_fans_trend_job"


def test_dingtalk_signs_the_url_with_its_secret() -> None:
    secret = SECRETS["dingtalk"]
    with receiver("dingtalk") as r:
        assert send_alert(_settings(r, secret), _alert())
        (got,) = r.messages()
    assert got.query["access_token"] == "dingtalk-access-0001"
    timestamp = got.query["timestamp"]  # milliseconds, as DingTalk requires
    expected = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    # parse_qs already URL-decoded it once: the value is the plain base64 signature
    assert base64.b64decode(got.query["sign"]) == expected
    assert len(timestamp) == 13


def test_feishu_signs_the_body_with_its_secret() -> None:
    secret = SECRETS["feishu"]
    with receiver("feishu") as r:
        assert send_alert(_settings(r, secret), _alert())
        (got,) = r.messages()
    timestamp = got.body["timestamp"]  # seconds
    expected = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    assert base64.b64decode(got.body["sign"]) == expected and len(timestamp) == 10


def test_unsigned_feishu_sends_no_signature() -> None:
    with receiver("feishu") as r:
        assert send_alert(_settings(r), _alert())
        (got,) = r.messages()
    assert "sign" not in got.body and "timestamp" not in got.body


def test_no_token_or_webhook_credential_ever_appears_in_a_message() -> None:
    leaky = f"request to http://api?token={API_TOKEN}&kolId=1 failed; key=wecom-robot-key-0001 was {API_TOKEN}"
    for kind in ("wecom", "dingtalk"):
        with receiver(kind) as r:
            assert send_alert(_settings(r, SECRETS.get(kind)), _alert(leaky), api_token=API_TOKEN)
            (got,) = r.messages()
        assert API_TOKEN not in got.raw and "wecom-robot-key-0001" not in got.raw and SECRETS["dingtalk"] not in got.raw
        assert "token=***" in got.raw


@pytest.mark.parametrize("kind", [k.value for k in WebhookKind])
def test_a_refused_message_is_logged_without_credentials_and_never_raises(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with receiver(kind) as r:
        r.reply = REFUSAL[kind]
        with caplog.at_level(logging.WARNING, logger="pgy_pipeline.alerts.webhooks"):
            assert send_alert(_settings(r, SECRETS.get(kind)), _alert()) is False
        assert len(r.messages()) == 1
        host = r.base_url.removeprefix("http://")
    (record,) = caplog.records
    assert f"not delivered to the {kind} webhook at {host}" in record.getMessage()
    secret_part = PATHS[kind].rsplit("/", 1)[-1].split("=")[-1]
    assert secret_part not in record.getMessage()


def test_an_unreachable_webhook_is_logged_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{free_port()}" + PATHS["wecom"]  # a loopback port nobody listens on: connection refused
    settings = AlertSettings.from_values(url, "wecom")
    assert settings is not None
    with caplog.at_level(logging.WARNING, logger="pgy_pipeline.alerts.webhooks"):
        assert send_alert(settings, _alert()) is False
    (record,) = caplog.records
    assert "ConnectionError" in record.getMessage() and "wecom-robot-key-0001" not in record.getMessage()
    slack = AlertSettings.from_values(f"http://127.0.0.1:{free_port()}" + PATHS["slack"], "slack")
    assert slack is not None
    with caplog.at_level(logging.WARNING, logger="pgy_pipeline.alerts.webhooks"):
        assert send_alert(slack, _alert()) is False
    assert "slack-path-secret-0001" not in caplog.text  # requests quotes the path, Slack's credential


def test_settings_are_off_unless_configured_and_misconfiguration_names_the_variable() -> None:
    assert AlertSettings.from_env({}) is None
    assert AlertSettings.from_env({"PGY_ALERT_WEBHOOK_KIND": "wecom"}) is None
    with pytest.raises(ConfigError, match="PGY_ALERT_WEBHOOK_KIND"):
        AlertSettings.from_env({"PGY_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook", "PGY_ALERT_WEBHOOK_KIND": "teams"})
    with pytest.raises(ConfigError, match="PGY_ALERT_WEBHOOK_SECRET"):
        AlertSettings.from_values("http://127.0.0.1:9/hook", "slack", "s3cret")
    with pytest.raises(ConfigError, match=r"cleartext to http://chat\.internal"):  # parsed only, never contacted
        AlertSettings.from_values("http://chat.internal/cgi-bin/webhook/send?key=k", "wecom")
    with pytest.raises(ConfigError, match="PGY_UI_BASE_URL"):
        AlertSettings.from_values("http://127.0.0.1:9/hook", "slack", None, "dagster:3000")
    settings = AlertSettings.from_values("http://127.0.0.1:9/hook?key=abc", "WeCom", None, "http://ui:3000/")
    assert settings is not None and settings.kind is WebhookKind.WECOM
    assert "abc" not in repr(settings)  # the URL carries the chat's credential: kept as a Secret
    assert settings.run_url("r1") == "http://ui:3000/runs/r1"


def test_a_failed_error_check_sends_one_message_and_passing_checks_send_none(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    kols = track(engine, 2)
    with receiver("wecom") as r:
        resources = {
            **dagster_resources(sim_today, database_url),
            "alerts": AlertsResource(
                webhook_url=r.base_url + PATHS["wecom"], kind="wecom", ui_base_url="http://127.0.0.1:3000"
            ),
        }
        cursor = alert_tick(
            check_and_freshness_alert, instance, None, resources
        )  # first tick: starts after the newest event
        start = (yesterday - timedelta(days=59)).isoformat()
        ok = materialize([kol_fans_trend, *asset_checks], resources=resources, instance=instance,
                         tags={RANGE_START_TAG: start, RANGE_END_TAG: yesterday.isoformat()})  # fmt: skip
        assert ok.success and all(c.passed for c in ok.get_asset_check_evaluations() if c.severity.value == "ERROR")
        cursor = alert_tick(check_and_freshness_alert, instance, cursor, resources)
        assert r.messages() == []  # nothing failed, nothing sent

        hole = yesterday - timedelta(days=40)  # outside the daily 30-day window: only a backfill could refill it
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM pgy.kol_fans_trend WHERE kol_id = :k AND date_key = :d"), {"k": kols[0], "d": hole}
            )
        day = yesterday.isoformat()
        daily = materialize([kol_fans_trend, *asset_checks], resources=resources, instance=instance,
                            tags={RANGE_START_TAG: day, RANGE_END_TAG: day})  # fmt: skip
        assert daily.success
        failed = {c.check_name for c in daily.get_asset_check_evaluations() if not c.passed}
        assert "no_gaps_60_days" in failed
        cursor = alert_tick(check_and_freshness_alert, instance, cursor, resources)
        (got,) = r.messages()
        alert_tick(check_and_freshness_alert, instance, cursor, resources)
        assert len(r.messages()) == 1  # one message per event, never repeated
    content = got.body["markdown"]["content"]
    assert "Asset check failed: kol_fans_trend / no_gaps_60_days" in content
    assert f"Partitions: {day}" in content and "Billed calls: 0" in content
    assert f"http://127.0.0.1:3000/runs/{daily.run_id}" in content
    assert "2 series with holes" in content  # total and new fans of the KOL that lost a date
