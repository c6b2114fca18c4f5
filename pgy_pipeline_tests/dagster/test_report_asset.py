"""kol_fans_report run by Dagster for real: the partition's file, its path, URL and markdown in the metadata,
requested automatically after the anomalies (a backfill range in one run), linked from chat alerts, and new
suspicions sent to a local webhook receiver with the link to their report."""

from __future__ import annotations

from dataclasses import astuple
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    evaluate_automation_conditions,
    materialize,
)
from sqlalchemy import Engine, text

from pgy_pipeline.alerts import Alert
from pgy_pipeline.defs.alerts import AlertsResource, _report_link, check_and_freshness_alert
from pgy_pipeline.defs.anomaly import kol_fans_anomaly
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import range_tags
from pgy_pipeline.defs.report import kol_fans_report
from pgy_pipeline.demo import plant_bought_followers
from pgy_pipeline.report.data import load_report_data
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster import alert_tick, dagster_resources
from pgy_pipeline_tests.support.warehouse import track
from pgy_pipeline_tests.support.webhook import receiver

REPORT = AssetKey("kol_fans_report")
WECOM_PATH = "/cgi-bin/webhook/send?key=wecom-robot-key-0001"
UI = "http://127.0.0.1:3000"
BASE_URL = "http://127.0.0.1:8000/reports"  # a name in the metadata and messages; nothing is requested from it


@pytest.fixture
def report_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PGY_REPORT_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("PGY_REPORT_BASE_URL", BASE_URL)
    monkeypatch.setenv("PGY_DAILY_CALL_BUDGET", "7")
    return tmp_path / "reports"


def test_the_report_of_a_bought_batch_lands_after_the_anomalies_with_its_path_url_and_table(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    yesterday: date,
    report_env: Path,
) -> None:
    kols = track(engine, 3)
    plant_bought_followers(sim_today, kols[1])  # spike two days before yesterday, 70 % of it lost yesterday
    spike_day = yesterday - timedelta(days=2)
    result = materialize(
        [kol_fans_trend, kol_fans_anomaly, kol_fans_report],
        resources=dagster_resources(sim_today, database_url),
        instance=instance,
        tags=range_tags(spike_day, yesterday),
    )
    assert result.success
    mats = result.asset_materializations_for_node("kol_fans_report")
    assert sorted(str(m.partition) for m in mats) == [(spike_day + timedelta(days=i)).isoformat() for i in range(3)]
    md = {k: v.value for k, v in mats[0].metadata.items()}
    name = f"pgy-report-{yesterday}.html"
    path = Path(str(md["path"]))
    assert path == (report_env / name).resolve() and path.is_file()
    assert md["url"] == f"{BASE_URL}/{name}" and md["reports_written"] == 3
    assert sorted(p.name for p in report_env.iterdir()) == sorted(
        ["latest.html", *(f"pgy-report-{spike_day + timedelta(days=i)}.html" for i in range(3))]
    )
    summary = str(md["summary"])
    assert f"**Top 10 gainers on [{yesterday}]({BASE_URL}/{name})**" in summary
    assert f"| {kols[1]} | spike_then_drop | Suspected bought followers shed" in summary  # yesterday's suspicion
    gainers = summary.split("**New suspicions")[0]
    assert gainers.count("| 5f") == 2 and kols[1] not in gainers  # it lost followers yesterday: not a gainer
    page = path.read_text()
    assert f'datetime="{spike_day}"' in page and f'id="anomaly-{kols[1]}"' in page
    assert "of 7</td>" in page  # billed calls against the daily budget in the fetch health table
    shown = load_report_data(engine, spike_day, yesterday, oldest_reachable=spike_day).health
    with engine.connect() as conn:
        view = conn.execute(
            text("SELECT fetch_date, calls, calls_ok, calls_failed, billed_calls, codes FROM pgy.fetch_health")
        ).all()
    assert [astuple(h) for h in shown] == [tuple(row) for row in view] and shown  # the view's figures, that day


def test_the_report_is_requested_for_exactly_the_anomaly_partitions_that_landed(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    yesterday: date,
    report_env: Path,
) -> None:
    track(engine, 2)
    assets = [kol_fans_trend, kol_fans_anomaly, kol_fans_report]
    defs = Definitions(assets=assets, resources=dagster_resources(sim_today, database_url))
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.get_num_requested(REPORT) == 0
    start = yesterday - timedelta(days=4)
    result = materialize(  # a 5-day backfill of the trend and the anomalies, in one run
        [kol_fans_trend, kol_fans_anomaly],
        resources=dagster_resources(sim_today, database_url),
        instance=instance,
        tags=range_tags(start, yesterday),
    )
    assert result.success
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after.get_requested_partitions(REPORT) == {(start + timedelta(days=i)).isoformat() for i in range(5)}


def test_failure_alerts_link_the_newest_report_when_its_address_is_set(
    report_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = _report_link()
    assert link == f"{BASE_URL}/latest.html"
    alert = Alert("Run failed", "kol_fans_trend", "2026-03-08", "the API stopped", 3, None, report=link)
    assert ("Report", f"{BASE_URL}/latest.html") in alert.lines()
    monkeypatch.delenv("PGY_REPORT_BASE_URL")
    assert _report_link() is None


def test_new_suspicions_send_one_message_linking_the_partitions_report(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    yesterday: date,
    report_env: Path,
) -> None:
    kols = track(engine, 3)
    plant_bought_followers(sim_today, kols[1])  # yesterday: the spike's loss crosses half of it (spike_then_drop)
    with receiver("wecom") as r:
        resources = {
            **dagster_resources(sim_today, database_url),
            "alerts": AlertsResource(webhook_url=r.base_url + WECOM_PATH, kind="wecom", ui_base_url=UI),
        }

        def tick(cursor: str | None) -> str | None:
            return alert_tick(check_and_freshness_alert, instance, cursor, resources)

        cursor = tick(None)
        start = yesterday - timedelta(days=2)
        result = materialize(  # three partitions in one run: three materialisations, one message
            [kol_fans_trend, kol_fans_anomaly, kol_fans_report],
            resources=resources,
            instance=instance,
            tags=range_tags(start, yesterday),
        )
        assert result.success
        cursor = tick(cursor)
        (got,) = r.messages()
        tick(cursor)
        assert len(r.messages()) == 1  # never repeated
    content = got.body["markdown"]["content"]
    assert "Suspected anomalies: kol_fans_anomaly" in content and f"Partitions: {start}..{yesterday}" in content
    assert f"1 new suspicion(s) on the newest date (not proof): {kols[1]} (spike_then_drop)" in content
    assert f"Report: {BASE_URL}/pgy-report-{yesterday}.html" in content
    assert f"{UI}/runs/{result.run_id}" in content


def test_one_automation_tick_requests_the_anomalies_and_the_report_together(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    from pgy_pipeline.defs.anomaly import anomaly_automation_sensor

    track(engine, 2)
    assets = [kol_fans_trend, kol_fans_anomaly, kol_fans_report]
    defs = Definitions(
        assets=assets, sensors=[anomaly_automation_sensor], resources=dagster_resources(sim_today, database_url)
    )
    selected = anomaly_automation_sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert selected == {AssetKey("kol_fans_anomaly"), REPORT}  # the anomaly sensor evaluates the report too
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    start = yesterday - timedelta(days=2)
    assert materialize(
        [kol_fans_trend],
        resources=dagster_resources(sim_today, database_url),
        instance=instance,
        tags=range_tags(start, yesterday),
    ).success
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    wanted = {(start + timedelta(days=i)).isoformat() for i in range(3)}
    assert after.get_requested_partitions(AssetKey("kol_fans_anomaly")) == wanted
    assert after.get_requested_partitions(REPORT) == wanted  # in the same tick: one backfill, anomalies first
