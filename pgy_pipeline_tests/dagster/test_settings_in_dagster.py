"""A malformed setting fails only what uses it, in one sentence naming it, and reaches the alert channel; the code
location always loads (a setting Dagster needs at load time falls back to its default, and says so)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance, build_run_status_sensor_context, build_sensor_context
from sqlalchemy import Engine

from pgy_pipeline.defs.alerts import AlertsResource, check_and_freshness_alert, run_failure_alert
from pgy_pipeline.defs.resources import WarehouseResource
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster import materialize_trend, step_failure
from pgy_pipeline_tests.support.warehouse import track
from pgy_pipeline_tests.support.webhook import PATHS, receiver

ROOT = Path(__file__).parents[2]
BAD_AT_LOAD = {"PGY_PUBLISH_LAG_RETRIES": "-1", "PGY_SCHEDULE_TIME": "6 ", "PGY_ANOMALY_DROP_SHARE": "half"}


def _env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PGY_")} | extra


@pytest.mark.subprocess
def test_bad_settings_leave_the_code_location_loadable_and_say_so_where_it_shows() -> None:
    done = subprocess.run([str(Path(sys.executable).parent / "dg"), "check", "defs"], cwd=ROOT,
                          env=_env(**BAD_AT_LOAD), capture_output=True, text=True, timeout=540)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shown = (
        "from pgy_pipeline.definitions import defs; import json\n"
        "s = defs.resolve_schedule_def('kol_fans_trend_daily')\n"
        "print(json.dumps([s.cron_schedule, s.description]))"
    )
    out = subprocess.run([sys.executable, "-c", shown], env=_env(**BAD_AT_LOAD), capture_output=True, text=True,
                         check=True, timeout=300).stdout  # fmt: skip
    cron, description = json.loads(out.strip().splitlines()[-1])
    assert cron == "30 6 * * *"  # the default time, not a code location that fails to load
    assert "WARNING: PGY_SCHEDULE_TIME='6 ' is not a time of day" in description


def test_a_bad_publish_lag_setting_fails_the_run_naming_it_and_sends_one_alert(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    yesterday: date,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    track(engine, 2)
    monkeypatch.setenv("PGY_PUBLISH_LAG_RETRIES", "-1")
    failed = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat())
    assert not failed.success
    description, _ = step_failure(failed)
    assert description.startswith("PGY_PUBLISH_LAG_RETRIES='-1' is not a whole number")
    assert sim_today.billed_calls == 0  # refused before any call
    (run_failure,) = [e for e in failed.all_events if e.event_type == DagsterEventType.RUN_FAILURE]
    with receiver("wecom") as r:
        alerts = AlertsResource(webhook_url=r.base_url + PATHS["wecom"], kind="wecom")
        context = build_run_status_sensor_context(
            sensor_name="pgy_alert_on_run_failure", dagster_event=run_failure, dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"alerts": alerts, "warehouse": WarehouseResource(database_url=database_url)},
        ).for_run_failure()  # fmt: skip
        run_failure_alert(context)
        (message,) = r.messages()
    assert "PGY_PUBLISH_LAG_RETRIES='-1' is not a whole number" in message.body["markdown"]["content"]


def test_a_setting_ignored_at_load_is_alerted_once(
    instance: DagsterInstance, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGY_FRESHNESS_DEADLINE", "9am")
    with receiver("wecom") as r:
        resources = {"alerts": AlertsResource(webhook_url=r.base_url + PATHS["wecom"], kind="wecom"),
                     "warehouse": WarehouseResource(database_url=database_url)}  # fmt: skip
        cursor = None
        for _ in range(3):  # the first tick only sets the cursor; the second alerts; the third repeats nothing
            with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
                check_and_freshness_alert(context)
                cursor = context.cursor
        (message,) = r.messages()
    content = message.body["markdown"]["content"]
    assert "Setting ignored" in content and "PGY_FRESHNESS_DEADLINE='9am' is not a time of day" in content
    assert "the default (09:00)" in content
