"""Sending an Alert to a WeCom, Feishu, DingTalk or Slack webhook: payload shape, signing, acknowledgement.

Sending never raises: a chat outage must not fail a run or a sensor tick, so every failure is logged (with the
webhook's host only: its path and query carry the credential) and reported as False. Each kind's payload,
signature and expected answer: see docs/anomalies-and-alerts.md (setting up each kind).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from dataclasses import replace
from typing import Any
from urllib.parse import quote_plus, urlsplit

import requests

from pgy_pipeline.alerts.message import Alert, scrub
from pgy_pipeline.alerts.settings import AlertSettings, WebhookKind

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign` query value for a request made at `timestamp_ms` (already URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """Feishu's `sign` body field for a request made at `timestamp_s`."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _markdown(alert: Alert) -> str:
    return "\n".join([f"**{alert.title}**", *(f"> {label}: {value}" for label, value in alert.lines())])


def _plain(alert: Alert) -> str:
    return "\n".join([alert.title, *(f"{label}: {value}" for label, value in alert.lines())])


def _slack(alert: Alert) -> str:
    body = [
        f"*{label}:* {f'<{value}|open in Dagster>' if label == 'Dagster' else value}" for label, value in alert.lines()
    ]
    return "\n".join([f"*{alert.title}*", *body])


def build_request(settings: AlertSettings, alert: Alert, now: float | None = None) -> tuple[str, dict[str, Any]]:
    """(URL, JSON body) of the webhook call for `alert`, signed when the kind signs and a secret is set."""
    now = time.time() if now is None else now
    url = settings.url.reveal()
    secret = settings.secret.reveal() if settings.secret else None
    kind = settings.kind
    if kind is WebhookKind.WECOM:
        return url, {"msgtype": "markdown", "markdown": {"content": _markdown(alert)}}
    if kind is WebhookKind.FEISHU:
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": _plain(alert)}}
        if secret:
            timestamp_s = int(now)
            body.update(timestamp=str(timestamp_s), sign=feishu_sign(secret, timestamp_s))
        return url, body
    if kind is WebhookKind.DINGTALK:
        if secret:
            timestamp_ms = int(now * 1000)
            url += f"{'&' if '?' in url else '?'}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"
        return url, {"msgtype": "markdown", "markdown": {"title": alert.title, "text": _markdown(alert)}}
    return url, {"text": _slack(alert)}


def _acknowledged(kind: WebhookKind, reply: requests.Response) -> str | None:
    """None when the chat accepted the message, else what it said (chat robots answer errors with HTTP 200)."""
    if not reply.ok:
        return f"HTTP {reply.status_code}: {reply.text[:200]}"
    if kind is WebhookKind.SLACK:
        return None if reply.text.strip() == "ok" else f"answered {reply.text[:200]!r}"
    try:
        doc = reply.json()
    except ValueError:
        return f"answered a body that is not JSON: {reply.text[:200]!r}"
    code = doc.get("code", doc.get("StatusCode")) if kind is WebhookKind.FEISHU else doc.get("errcode")
    return None if code == 0 else f"answered code {code}: {doc.get('msg') or doc.get('errmsg')}"


def send_alert(settings: AlertSettings, alert: Alert, *, api_token: str | None = None) -> bool:
    """Post `alert` to the webhook; True when the chat acknowledged it. Logs and returns False otherwise."""
    url_parts = urlsplit(settings.url.reveal())  # errors quote the path (Slack's, Feishu's secret) without the host
    secrets = (
        api_token,
        settings.secret.reveal() if settings.secret else None,
        settings.url.reveal(),
        url_parts.path if len(url_parts.path) > 1 else None,
        url_parts.query,
    )
    safe = replace(alert, subject=scrub(alert.subject, *secrets), reason=scrub(alert.reason, *secrets))
    url, body = build_request(settings, safe)
    host = url_parts.netloc
    try:
        reply = requests.post(url, json=body, timeout=TIMEOUT_S)
        problem = _acknowledged(settings.kind, reply)
    except requests.RequestException as exc:
        problem = scrub(f"{type(exc).__name__}: {exc}", *secrets)
    if problem:
        problem = scrub(problem, *secrets)
        log.warning(
            "alert %r not delivered to the %s webhook at %s: %s", safe.title, settings.kind.value, host, problem
        )
        return False
    log.info("alert %r delivered to the %s webhook at %s", safe.title, settings.kind.value, host)
    return True
