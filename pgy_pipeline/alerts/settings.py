"""Where alerts go: one chat webhook, picked by PGY_ALERT_WEBHOOK_URL / _KIND / _SECRET and PGY_UI_BASE_URL.

Alerts are off unless PGY_ALERT_WEBHOOK_URL is set. The webhook URL carries the chat's own credential
(WeCom `key=`, DingTalk `access_token=`, Slack's secret path), so it is kept as a Secret like the API
token: never in a repr, a log line or a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pgy_pipeline.config import PLAINTEXT_OPT_IN, ConfigError, Secret, Settings, WebhookKind, _is_loopback

__all__ = ["SIGNING_KINDS", "AlertSettings", "WebhookKind"]


SIGNING_KINDS = frozenset({WebhookKind.FEISHU, WebhookKind.DINGTALK})


@dataclass(frozen=True)
class AlertSettings:
    """A configured webhook; `from_values` returns None when alerts are off."""

    url: Secret
    kind: WebhookKind
    secret: Secret | None = None
    ui_base_url: str | None = None

    @classmethod
    def from_values(
        cls, url: str | None, kind: str | None, secret: str | None = None, ui_base_url: str | None = None
    ) -> AlertSettings | None:
        """Validated settings, None when no URL is set, or a ConfigError that names the variable to fix."""
        if not url:
            return None
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                "PGY_ALERT_WEBHOOK_URL is not an http(s) URL; paste the webhook address the chat gave you"
            )
        parts = urlsplit(url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname) and not Settings.from_env().allow_plaintext_http:
            raise ConfigError(
                f"refusing to send the chat's webhook credential in cleartext to http://{parts.hostname}: use the "
                f"https:// address the chat gave you, or set {PLAINTEXT_OPT_IN}=1 to accept that risk"
            )
        try:
            webhook_kind = WebhookKind((kind or "").strip().lower())
        except ValueError:
            raise ConfigError(
                f"PGY_ALERT_WEBHOOK_KIND={kind!r} is not one of {[k.value for k in WebhookKind]}; "
                "set it to the chat tool the webhook belongs to"
            ) from None
        if secret and webhook_kind not in SIGNING_KINDS:
            raise ConfigError(
                f"PGY_ALERT_WEBHOOK_SECRET is set but {webhook_kind.value} webhooks are not signed; unset it"
            )
        if ui_base_url and not ui_base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"PGY_UI_BASE_URL={ui_base_url!r} is not an http(s) URL, e.g. http://dagster.internal:3000"
            )
        return cls(
            Secret(url), webhook_kind, Secret(secret) if secret else None, (ui_base_url or "").rstrip("/") or None
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AlertSettings | None:
        settings = Settings.from_env(environ)
        url, kind, secret = settings.alert_webhook_url, settings.alert_webhook_kind, settings.alert_webhook_secret
        return cls.from_values(
            url.reveal() if url else None, kind, secret.reveal() if secret else None, settings.ui_base_url
        )

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the Dagster UI, when PGY_UI_BASE_URL says where the UI is."""
        return f"{self.ui_base_url}/runs/{run_id}" if self.ui_base_url else None

    def asset_url(self, asset_key: str) -> str | None:
        return f"{self.ui_base_url}/assets/{asset_key}" if self.ui_base_url else None
