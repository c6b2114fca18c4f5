"""Chat alerts for on-call: message building, webhook signing and sending (no Dagster here)."""

from pgy_pipeline.alerts.message import Alert, scrub
from pgy_pipeline.alerts.settings import AlertSettings, WebhookKind
from pgy_pipeline.alerts.webhooks import build_request, send_alert

__all__ = ["Alert", "AlertSettings", "WebhookKind", "build_request", "scrub", "send_alert"]
