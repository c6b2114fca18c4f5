"""Alerts driven by a real `dagster-daemon` on the production dagster.yaml (Postgres storage, freshness daemon
on): a failed daily run and a missed freshness deadline each reach a local DingTalk robot exactly once,
signed, with the partition, the reason, the billed calls and a link, and without the API token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import AssetMaterialization, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.instance.utils import RUNLESS_JOB_NAME, RUNLESS_RUN_ID
from dagster._core.scheduler.instigation import InstigatorType, TickStatus
from sqlalchemy import Engine

from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster_procs import BIN, REPO, TARGET, pgy_env, process_group, start_daemon
from pgy_pipeline_tests.support.warehouse import track
from pgy_pipeline_tests.support.webhook import receiver

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

SECRET = "SECding-signing-0001"
REVOKED = "revoked-token-0001"
RUN_SENSOR, EVENT_SENSOR = "pgy_alert_on_run_failure", "pgy_alert_on_check_or_freshness"


def _ticks(instance: DagsterInstance, sensor_name: str) -> int:
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == sensor_name:
            done = [TickStatus.SKIPPED, TickStatus.SUCCESS, TickStatus.FAILURE]  # evaluated, cursor stored
            return len(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=100, statuses=done))
    return 0


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    pytest.fail(f"{what} within {timeout_s:.0f}s; daemon log:\n{log.read_text()[-4000:]}")


@pytest.mark.timeout(600)  # a real daemon; most of the time goes waiting for sensor intervals (30 s)
def test_a_real_daemon_sends_one_message_per_failed_run_and_missed_freshness(
    engine: Engine,
    sim_today: Simulator,
    dagster_home: Path,
    dagster_storage_url: str,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    yesterday: date,
) -> None:
    track(engine, 2)
    log = tmp_path / "daemon.log"
    with (
        receiver("dingtalk") as chat,
        process_group() as processes,
    ):
        env = pgy_env(
            dagster_home, database_url, sim_today.base_url, sim_today.token,
            DAGSTER_PG_URL=dagster_storage_url,
            PGY_ALERT_WEBHOOK_URL=f"{chat.base_url}/robot/send?access_token=ding-access-0001",
            PGY_ALERT_WEBHOOK_KIND="dingtalk",
            PGY_ALERT_WEBHOOK_SECRET=SECRET,
            PGY_UI_BASE_URL="http://127.0.0.1:3000",
            FRESHNESS_DAEMON_INTERVAL_SECONDS="5",
        )  # fmt: skip
        start_daemon(env, log, processes)
        monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url)
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            # Both alert sensors run by default because a webhook is configured; their first tick starts them.
            _wait(
                lambda: min(_ticks(instance, RUN_SENSOR), _ticks(instance, EVENT_SENSOR)) > 0,
                120,
                "no sensor ticks",
                log,
            )

            # The trend last landed three days ago, so today's deadline passed without it: the real
            # freshness daemon evaluates the policy and records the FAIL state change.
            old = yesterday - timedelta(days=3)
            instance.report_dagster_event(
                DagsterEvent(
                    event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value,
                    job_name=RUNLESS_JOB_NAME,
                    event_specific_data=StepMaterializationData(
                        AssetMaterialization(asset_key="kol_fans_trend", partition=old.isoformat())
                    ),
                ),
                run_id=RUNLESS_RUN_ID,
                timestamp=time.time() - 3 * 86_400,
            )
            # The daily run, with a token the API no longer accepts, fails.
            daily = subprocess.run(
                [str(BIN / "dagster"), "asset", "materialize", *TARGET,
                 "--select", "kol_fans_trend", "--partition", yesterday.isoformat()],
                env={**env, "PGY_API_TOKEN": REVOKED}, cwd=REPO, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert daily.returncode != 0, daily.stdout[-2000:]
            (failed,) = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))

            _wait(lambda: len(chat.messages()) >= 2, 180, "two alerts did not arrive", log)
            ticks = (_ticks(instance, RUN_SENSOR), _ticks(instance, EVENT_SENSOR))
            _wait(  # one more tick of each sensor: nothing is sent twice
                lambda: _ticks(instance, RUN_SENSOR) > ticks[0] and _ticks(instance, EVENT_SENSOR) > ticks[1],
                120, "no further sensor ticks", log,
            )  # fmt: skip
    messages = chat.messages()
    assert len(messages) == 2, [m.body for m in messages]
    by_title = {m.body["markdown"]["title"]: m for m in messages}
    run_alert = by_title["[pgy-pipeline] Run failed: kol_fans_trend"]  # what it materialised, not __ASSET_JOB
    text = run_alert.body["markdown"]["text"]
    assert f"Partitions: {yesterday}" in text and "Billed calls: 0" in text
    assert "token" in text.lower()  # the asset's own sentence about the rejected token
    assert f"http://127.0.0.1:3000/runs/{failed.run_id}" in text
    fresh = by_title["[pgy-pipeline] Freshness deadline missed: kol_fans_trend"]
    assert "http://127.0.0.1:3000/assets/kol_fans_trend" in fresh.body["markdown"]["text"]
    for message in messages:
        assert REVOKED not in message.raw and sim_today.token not in message.raw
        stamp = message.query["timestamp"]
        digest = hmac.new(SECRET.encode(), f"{stamp}\n{SECRET}".encode(), hashlib.sha256).digest()
        assert base64.b64decode(message.query["sign"]) == digest  # signed as DingTalk verifies it
