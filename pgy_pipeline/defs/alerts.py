"""Alert sensors: a failed run, a failed ERROR-severity asset check, a missed freshness deadline, new suspicions,
or KOLs entering or leaving quarantine → one chat message.

Three sensors, run by the daemon while PGY_ALERT_WEBHOOK_URL is set where the definitions load (stopped
otherwise); each starts at the newest event on its first tick, so history is never replayed. Sending never
raises: a failed webhook is logged in the tick and the sensor carries on, so no run fails because the chat is
down. See docs/anomalies-and-alerts.md (chat alerts, sensors).
"""

import json
import logging

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    ConfigurableResource,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    Definitions,
    EventLogRecord,
    EventRecordsFilter,
    RunFailureSensorContext,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)

# The events the freshness daemon writes; dagster 1.13 does not export them at the top level.
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from pydantic import Field

from pgy_pipeline.alerts import Alert, AlertSettings, send_alert
from pgy_pipeline.config import ConfigError, Settings
from pgy_pipeline.defs.freshness import TREND_FRESHNESS
from pgy_pipeline.defs.partitions import partitions_def, tagged_range
from pgy_pipeline.defs.resources import WarehouseResource
from pgy_pipeline.report.build import LATEST, report_url
from pgy_pipeline.warehouse.errors import WarehouseUnavailable
from pgy_pipeline.warehouse.fetch_log import billed_calls_of_run
from pgy_pipeline.warehouse.health import QuarantineEvent, events_after, newest_event_id

log = logging.getLogger(__name__)

OFF = "alerts are off: set PGY_ALERT_WEBHOOK_URL and PGY_ALERT_WEBHOOK_KIND where Dagster runs"
_ON = Settings.from_env().is_set("PGY_ALERT_WEBHOOK_URL")
_STATUS = DefaultSensorStatus.RUNNING if _ON else DefaultSensorStatus.STOPPED
EVENTS_PER_TICK = 200
QUARANTINE_NAMED = 10  # KOL ids named in one quarantine message; the count is always complete
REPORT_ASSET = AssetKey("kol_fans_report")  # a name, not an import: the report's module imports nothing from here


class AlertsResource(ConfigurableResource):  # type: ignore[type-arg]
    """The chat webhook; every field defaults to its PGY_* environment variable."""

    webhook_url: str | None = Field(default=None, description="Webhook URL (default: PGY_ALERT_WEBHOOK_URL).")
    kind: str | None = Field(default=None, description="wecom, feishu, dingtalk or slack (PGY_ALERT_WEBHOOK_KIND).")
    secret: str | None = Field(default=None, description="Signing secret, feishu/dingtalk (PGY_ALERT_WEBHOOK_SECRET).")
    ui_base_url: str | None = Field(default=None, description="Dagster UI address for links (PGY_UI_BASE_URL).")

    def settings(self) -> AlertSettings | None:
        """The webhook to use, None when alerts are off; raises ConfigError naming what to fix."""
        env = Settings.from_env()
        url, secret = env.alert_webhook_url, env.alert_webhook_secret
        return AlertSettings.from_values(
            self.webhook_url or (url.reveal() if url else None),
            self.kind or env.alert_webhook_kind,
            self.secret or (secret.reveal() if secret else None),
            self.ui_base_url or env.ui_base_url,
        )


def _send(settings: AlertSettings, alert: Alert) -> bool:
    token = Settings.from_env().api_token  # scrubbed from the message, should a reason quote it
    return send_alert(settings, alert, api_token=token.reveal() if token else None)


def _billed(warehouse: WarehouseResource, run_id: str) -> int | None:
    """Billed calls of the run, or None when the warehouse cannot say (it may be why the run failed)."""
    try:
        with warehouse.engine() as engine:
            return billed_calls_of_run(engine, run_id)
    except WarehouseUnavailable as exc:  # its sentence says what to do
        log.warning("billed calls of run %s unknown: %s", run_id, exc)
    except Exception as exc:  # an alert with "n/a" beats no alert
        log.warning("billed calls of run %s unknown: %s", run_id, type(exc).__name__)
    return None


def _report_link() -> str | None:
    """The newest follower report (latest.html) when PGY_REPORT_BASE_URL says where reports are published."""
    try:
        return report_url(Settings.from_env().report_base_url, LATEST)
    except ConfigError as exc:  # an alert without the link beats no alert
        log.warning("no report link: %s", exc)
        return None


def _subject(run: DagsterRun) -> str:
    """What the run materialised (UI backfills and CLI runs all share the job name __ASSET_JOB), else its job."""
    if run.asset_selection:
        return ", ".join(sorted(key.to_user_string() for key in run.asset_selection))
    return run.job_name


def _failure_reason(context: RunFailureSensorContext) -> str:
    """The failed step's own sentence (the asset's Failure description), else Dagster's failure message."""
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return data.user_failure_data.description
        if data.error is not None:
            return data.error.message.strip().splitlines()[-1]
    return context.failure_event.message or "the run failed before any step ran; open it in the Dagster UI"


@run_failure_sensor(
    name="pgy_alert_on_run_failure",
    default_status=_STATUS,
    # Runs started outside the daemon and webserver (`dagster asset materialize` from cron or a shell) carry
    # no code-location origin, and Dagster matches those only when monitoring every location.
    monitor_all_code_locations=True,
    minimum_interval_seconds=30,
    description="One chat message per failed run (daily, backfill, sensor or anomaly run) when alerts are configured.",
)
def run_failure_alert(
    context: RunFailureSensorContext, alerts: AlertsResource, warehouse: WarehouseResource
) -> SkipReason | None:
    settings = alerts.settings()
    if settings is None:
        return SkipReason(OFF)
    run = context.dagster_run
    alert = Alert(
        event="Run failed",
        subject=_subject(run),
        partitions=tagged_range(dict(run.tags)),
        reason=_failure_reason(context),
        billed_calls=_billed(warehouse, run.run_id),
        link=settings.run_url(run.run_id),
        report=_report_link(),
    )
    _send(settings, alert)
    return None


def _check_alert(
    settings: AlertSettings, record: EventLogRecord, instance: DagsterInstance, wh: WarehouseResource
) -> Alert | None:
    event = record.event_log_entry.dagster_event
    evaluation = event.event_specific_data if event else None
    if not isinstance(evaluation, AssetCheckEvaluation):
        return None
    if evaluation.passed or evaluation.severity != AssetCheckSeverity.ERROR:
        return None
    run_id = record.event_log_entry.run_id
    run = instance.get_run_by_id(run_id) if run_id else None
    return Alert(
        event="Asset check failed",
        subject=f"{evaluation.asset_key.to_user_string()} / {evaluation.check_name}",
        partitions=tagged_range(dict(run.tags)) if run else evaluation.partition,
        reason=evaluation.description or f"check {evaluation.check_name} failed; open the run for its metadata",
        billed_calls=_billed(wh, run_id) if run_id else None,
        link=settings.run_url(run_id) if run_id else settings.asset_url(evaluation.asset_key.to_user_string()),
        report=_report_link(),
    )


def _freshness_alert(settings: AlertSettings, record: EventLogRecord) -> Alert | None:
    event = record.event_log_entry.dagster_event
    change = event.event_specific_data if event else None
    if not isinstance(change, FreshnessStateChange) or change.new_state != FreshnessState.FAIL:
        return None
    asset = change.key.to_user_string()
    due = partitions_def.get_last_partition_key()
    deadline = getattr(TREND_FRESHNESS, "deadline_cron", "")
    return Alert(
        event="Freshness deadline missed",
        subject=asset,
        partitions=due,
        reason=(
            f"{asset} did not materialise between 00:00 and its deadline (cron '{deadline}', China time): "
            "check the daily schedule's last run, or launch the missing partition"
        ),
        billed_calls=None,
        link=settings.asset_url(asset),
    )


def _settings_alerts(cursor: dict[str, object]) -> list[Alert]:
    """One alert per setting that fell back to its default when the code loaded, once per distinct value."""
    warnings = Settings.from_env().load_time_warnings()
    sent = cursor.get("settings")
    cursor["settings"] = warnings
    return [
        Alert(event="Setting ignored", subject="code location settings", partitions=None, reason=warning,
              billed_calls=None, link=None)
        for warning in warnings if not isinstance(sent, list) or warning not in sent
    ]  # fmt: skip


def _suspicion_alert(settings: AlertSettings, record: EventLogRecord) -> Alert | None:
    """New suspicions on the newest partition of a kol_fans_report run, with the link to that partition's report."""
    materialization = record.asset_materialization
    if materialization is None:
        return None
    metadata = {key: value.value for key, value in materialization.metadata.items()}
    count = metadata.get("new_suspicions")
    if not isinstance(count, int) or count == 0:
        return None
    run_id = record.event_log_entry.run_id
    url = metadata.get("url")
    return Alert(
        event="Suspected anomalies",
        subject="kol_fans_anomaly",
        partitions=str(metadata.get("partition_range") or materialization.partition),
        reason=f"{count} new suspicion(s) on the newest date (not proof): {metadata.get('new_suspicions_named')}",
        billed_calls=None,
        link=settings.run_url(run_id) if run_id else None,
        report=url if isinstance(url, str) else None,
    )


def _records(
    instance: DagsterInstance, event_type: DagsterEventType, after: int, asset_key: AssetKey | None = None
) -> list[EventLogRecord]:
    return list(
        instance.get_event_records(
            EventRecordsFilter(event_type=event_type, asset_key=asset_key, after_cursor=after),
            limit=EVENTS_PER_TICK,
            ascending=True,
        )
    )


@sensor(
    name="pgy_alert_on_check_or_freshness",
    default_status=_STATUS,
    minimum_interval_seconds=30,
    description=(
        "One chat message per failed ERROR asset check, per missed freshness deadline, and per kol_fans_report run "
        "whose newest date has new suspected anomalies."
    ),
)
def check_and_freshness_alert(
    context: SensorEvaluationContext, alerts: AlertsResource, warehouse: WarehouseResource
) -> SkipReason:
    settings = alerts.settings()
    if settings is None:
        return SkipReason(OFF)
    instance = context.instance
    if context.cursor is None:  # first tick: start at the newest event, as Dagster's run-status sensors do
        newest = instance.event_log_storage.get_maximum_record_id() or 0
        context.update_cursor(json.dumps({"check": newest, "freshness": newest, "report": newest}))
        return SkipReason(f"starting after event {newest}")
    cursor = json.loads(context.cursor)
    if "report" not in cursor:  # a cursor from before suspicion alerts: they start now, like a first tick
        cursor["report"] = instance.event_log_storage.get_maximum_record_id() or 0
    alerts_due = _settings_alerts(cursor)
    for record in _records(instance, DagsterEventType.ASSET_CHECK_EVALUATION, cursor["check"]):
        cursor["check"] = record.storage_id
        alert = _check_alert(settings, record, instance, warehouse)
        if alert:
            alerts_due.append(alert)
    for record in _records(instance, DagsterEventType.FRESHNESS_STATE_CHANGE, cursor["freshness"]):
        cursor["freshness"] = record.storage_id
        alert = _freshness_alert(settings, record)
        if alert:
            alerts_due.append(alert)
    runs_seen: set[str] = set()  # a run over several partitions materialises each; one message per run
    for record in _records(instance, DagsterEventType.ASSET_MATERIALIZATION, cursor["report"], REPORT_ASSET):
        cursor["report"] = record.storage_id
        alert = None if record.event_log_entry.run_id in runs_seen else _suspicion_alert(settings, record)
        runs_seen.add(record.event_log_entry.run_id)
        if alert:
            alerts_due.append(alert)
    context.update_cursor(json.dumps(cursor))  # advance first: a chat outage must not replay events forever
    delivered = sum(_send(settings, alert) for alert in alerts_due)
    return SkipReason(f"{len(alerts_due)} alert(s), {delivered} delivered")


def _quarantine_alert(settings: AlertSettings, kind: str, events: list[QuarantineEvent]) -> Alert:
    named = ", ".join(e.kol_id for e in events[:QUARANTINE_NAMED]) + (" …" if len(events) > QUARANTINE_NAMED else "")
    days = sorted({e.on_date for e in events})
    span = str(days[0]) if len(days) == 1 else f"{days[0]}..{days[-1]}"
    if kind == "entered":
        why = "; ".join(sorted({f"code {e.code}: {e.message}" if e.code is not None else str(e.message)
                                for e in events}))[:300]  # fmt: skip
        reason = (
            f"{len(events)} KOL(s) quarantined after failing on consecutive partition dates: {named} ({why}). They "
            "no longer hold back partitions, checks or anomalies; each daily run tries them once. "
            "`pgy-pipeline status` lists them."
        )
    else:
        reason = f"{len(events)} KOL(s) answered with data again and left quarantine: {named}; their gap is fetched."
    return Alert(
        event="KOL quarantined" if kind == "entered" else "KOL out of quarantine",
        subject="kol_fans_trend",
        partitions=span,
        reason=reason,
        billed_calls=None,
        link=settings.asset_url("kol_fans_trend"),
    )


@sensor(
    name="pgy_alert_on_quarantine",
    default_status=_STATUS,
    minimum_interval_seconds=60,
    description="One chat message when KOLs enter quarantine and one when they leave it (pgy.kol_quarantine_event).",
)
def quarantine_alert(
    context: SensorEvaluationContext, alerts: AlertsResource, warehouse: WarehouseResource
) -> SkipReason:
    settings = alerts.settings()
    if settings is None:
        return SkipReason(OFF)
    with warehouse.engine() as engine:
        if context.cursor is None:  # first tick: start after the newest event, history is not replayed
            context.update_cursor(str(newest_event_id(engine)))
            return SkipReason("starting after the newest quarantine event")
        events = events_after(engine, int(context.cursor))
    if not events:
        return SkipReason("no KOL entered or left quarantine")
    context.update_cursor(str(events[-1].id))  # advance first: a chat outage must not replay events forever
    due = [
        _quarantine_alert(settings, kind, [e for e in events if e.event == kind])
        for kind in ("entered", "left")
        if any(e.event == kind for e in events)
    ]
    delivered = sum(_send(settings, alert) for alert in due)
    return SkipReason(f"{len(events)} quarantine event(s) in {len(due)} alert(s), {delivered} delivered")


alert_sensors = [run_failure_alert, check_and_freshness_alert, quarantine_alert]

# What the defs folder loader takes from this module: the sensors, and the resource they need bound.
defs = Definitions(sensors=alert_sensors, resources={"alerts": AlertsResource()})
