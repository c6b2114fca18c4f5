"""Partial failure as the normal day, through Dagster where Dagster decides: a few broken KOLs are quarantined and
come back by themselves, a gateway that rejects everyone fails the run without flagging anyone, a late morning
bills a probe per retry, a daily budget is never exceeded, a run limited to some KOLs claims no partition others
lack, and the completeness queries count dates under any server time zone."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, Definitions, evaluate_automation_conditions
from dagster import materialize as dagster_materialize
from sqlalchemy import Engine, create_engine, text

from pgy_pipeline.china_time import china_today
from pgy_pipeline.defs.alerts import AlertsResource, quarantine_alert
from pgy_pipeline.defs.anomaly import kol_fans_anomaly
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.model import Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.status import format_table, read_status
from pgy_pipeline.warehouse.completeness import complete_dates, lacking, oldest_lacking
from pgy_pipeline.warehouse.health import quarantined
from pgy_pipeline.warehouse.kols import flagged_kols
from pgy_pipeline_tests.support.dagster import (
    alert_tick,
    dagster_resources,
    materialize_trend,
    partition_status,
    step_failure,
)
from pgy_pipeline_tests.support.simulator import client_for
from pgy_pipeline_tests.support.warehouse import stored, track
from pgy_pipeline_tests.support.webhook import receiver

WECOM = "/cgi-bin/webhook/send?key=wecom-robot-key-0001"


def _calls_per_kol(sim: Simulator, since: int) -> Counter[str | None]:
    return Counter(c.kol_id for c in sim.calls[since:])


def _config(**values: Any) -> dict[str, Any]:
    return {"ops": {"kol_fans_trend": {"config": values}}}


def test_two_stuck_kols_of_eight_are_quarantined_within_three_days_and_come_back_by_themselves(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    kols = track(engine, 8)
    stuck = kols[:2]
    sim_today.inject(stuck[0], "code_999")  # an undocumented code, every time
    sim_today.inject(stuck[1], "empty")  # successes with no data at all: not publish lag
    days = [yesterday - timedelta(days=3 - i) for i in range(3)]  # three consecutive partition dates
    with receiver("wecom") as chat:
        resources = {
            **dagster_resources(sim_today, database_url),
            "alerts": AlertsResource(webhook_url=chat.base_url + WECOM, kind="wecom"),
        }
        cursor = alert_tick(quarantine_alert, instance, None, resources)
        defs = Definitions(
            assets=[kol_fans_trend, kol_fans_anomaly], resources=dagster_resources(sim_today, database_url)
        )
        automation = evaluate_automation_conditions(defs=defs, instance=instance)  # history is not replayed
        results = []
        for day in days:
            seen = len(sim_today.calls)
            lag = _config(publish_lag_retries=6, publish_lag_wait_s=0)
            results.append(materialize_trend(instance, sim_today, database_url, start=day.isoformat(), run_config=lag))
            assert _calls_per_kol(sim_today, seen)[stuck[1]] == 2  # empty answers are not retried as lag
        first, second, third = results
        for result, behind in ((first, 1), (second, 2)):
            assert not result.success
            description, md = step_failure(result)
            assert f"2 KOL(s) failed after retries (see failed_kols), up to {behind} partition date(s)" in description
            assert md["kols_failing"] == 2 and md["kols_quarantined"] == 0
        # The third partition date reaches the threshold: that run already succeeds without them.
        assert third.success
        (mat,) = third.asset_materializations_for_node("kol_fans_trend")
        assert mat.metadata["kols_quarantined"].value == 2
        assert mat.metadata["kols_entered_quarantine"].value == stuck
        assert "code 999" in mat.metadata["quarantine"].value
        assert partition_status(instance, days[0], days[2])[days[2].isoformat()] == "MATERIALIZED"

        # The earlier partitions heal: the quarantined KOLs hold nothing back and are not tried again for them.
        seen = len(sim_today.calls)
        healed = materialize_trend(
            instance, sim_today, database_url, start=days[0].isoformat(), end=days[1].isoformat()
        )
        assert healed.success and not (_calls_per_kol(sim_today, seen).keys() & set(stuck))
        assert set(partition_status(instance, days[0], days[2]).values()) == {"MATERIALIZED"}

        # The anomaly asset follows the partitions that landed, for everyone else.
        requested = evaluate_automation_conditions(defs=defs, instance=instance, cursor=automation.cursor)
        assert {d.isoformat() for d in days} <= requested.get_requested_partitions(AssetKey("kol_fans_anomaly"))
        anomalies = dagster_materialize([kol_fans_anomaly], resources=dagster_resources(sim_today, database_url),
                                        instance=instance, tags={RANGE_START_TAG: days[0].isoformat(),
                                                                 RANGE_END_TAG: days[2].isoformat()})  # fmt: skip
        assert anomalies.success

        # status names both, with their last answer and since when; the chat heard it once.
        status = read_status(engine, today=china_today())
        assert [(q.kol_id, q.since, q.last_code) for q in status.quarantined] == [
            (stuck[0], days[2], 999),
            (stuck[1], days[2], 0),
        ]
        table = format_table(status)
        assert f"QUARANTINED {stuck[0]} since {days[2]}: failed code 999" in table and "Something New" in table
        assert f"QUARANTINED {stuck[1]} since {days[2]}: empty" in table
        cursor = alert_tick(quarantine_alert, instance, cursor, resources)
        cursor = alert_tick(quarantine_alert, instance, cursor, resources)
        (entered,) = chat.messages()
        assert "KOL quarantined" in entered.body["markdown"]["content"]
        assert all(k in entered.body["markdown"]["content"] for k in stuck)

        # The next day they answer again: tried once, they leave quarantine and their gap is filled.
        sim_today.clear_faults()
        seen = len(sim_today.calls)
        back = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat())
        assert back.success
        calls = _calls_per_kol(sim_today, seen)
        assert calls[stuck[0]] == calls[stuck[1]] == 2
        (mat,) = back.asset_materializations_for_node("kol_fans_trend")
        assert mat.metadata["kols_left_quarantine"].value == stuck
        assert quarantined(engine) == {}
        window = yesterday - timedelta(days=59)  # they asked for the largest window: 60 days on legacy_v1
        assert len([k for k, _, _ in stored(engine, window, yesterday) if k in stuck]) == 2 * 2 * 60
        alert_tick(quarantine_alert, instance, cursor, resources)
        assert len(chat.messages()) == 2 and "out of quarantine" in chat.messages()[1].body["markdown"]["content"]


@pytest.mark.parametrize("fault", ["code_400", "code_201", "http_400"])
def test_a_morning_that_rejects_everyone_fails_the_run_flags_nobody_and_the_next_run_heals(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date, fault: str
) -> None:
    kols = track(engine, 8)
    sim_today.inject_everyone(fault)
    result = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat())
    assert not result.success
    description, md = step_failure(result)
    code = f"code {fault[-3:]}"  # HTTP 400 carries code 400 in its body
    assert description.startswith(f"The API rejected the run, not the KOLs: {code} (")
    assert "came back for 8 of the 8 KOL(s) tried" in description
    assert md["systemic_rejection"] == description
    assert flagged_kols(engine, kols) == {} and quarantined(engine) == {}
    assert not read_status(engine, today=china_today()).ok  # status says yesterday is incomplete

    sim_today.clear_faults()
    again = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat())
    assert again.success
    assert len(stored(engine, yesterday, yesterday)) == 8 * 2  # everyone fetched again: nothing was settled


def test_a_lagging_morning_with_three_retries_bills_at_most_2n_plus_6(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    track(engine, 8)
    sim_today.publish_lag_days = 1  # the newest date is never published this morning
    result = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat(),
                               run_config=_config(publish_lag_retries=3, publish_lag_wait_s=0))  # fmt: skip
    assert not result.success
    description, md = step_failure(result)
    assert description.startswith("Still not published after 3 retries")
    assert sim_today.billed_calls <= 2 * 8 + 2 * 3
    assert md["lag_probe"] == "not published"
    # The final attempt still landed everything published: the day before yesterday is stored for everyone.
    assert len(stored(engine, yesterday - timedelta(days=1), yesterday - timedelta(days=1))) == 8 * 2


def test_a_budget_of_10_for_8_kols_bills_at_most_10_and_says_budget(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    track(engine, 8)
    result = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat(),
                               run_config=_config(daily_call_budget=10))  # fmt: skip
    assert not result.success
    assert sim_today.billed_calls <= 10
    description, md = step_failure(result)
    assert "The daily call budget of 10 billed call(s) is spent: 10 billed today" in description
    assert "6 call(s) still needed were not made" in description
    assert md["billed_today"] == 10 and md["daily_call_budget"] == 10
    assert len(stored(engine, yesterday, yesterday)) == 10  # what was fetched is loaded
    status = read_status(engine, today=china_today(), daily_call_budget=10)
    assert status.billed_today == 10
    assert "billed today (China time): 10 call(s), budget 10" in format_table(status)
    # Spent is spent: the next run today makes no call at all.
    again = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat(),
                              run_config=_config(daily_call_budget=10))  # fmt: skip
    assert not again.success and sim_today.billed_calls <= 10


def test_a_run_limited_to_some_kols_never_marks_a_partition_other_kols_lack(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    kols = track(engine, 3)
    only_first = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat(),
                                   run_config=_config(kol_ids=[kols[0]]))  # fmt: skip
    assert only_first.success  # its own KOL is done...
    assert partition_status(instance, yesterday, yesterday) == {yesterday.isoformat(): "MISSING"}  # ...not the date
    everyone = materialize_trend(instance, sim_today, database_url, start=yesterday.isoformat())
    assert everyone.success
    assert partition_status(instance, yesterday, yesterday) == {yesterday.isoformat(): "MATERIALIZED"}


def test_a_backfill_quarantines_a_kol_as_far_behind_as_the_days_it_stands_for(
    engine: Engine, sim_today: Simulator, yesterday: date
) -> None:
    kols = track(engine, 6)
    early = yesterday - timedelta(days=10)
    sim_today.set_today(early + timedelta(days=1))  # ten days ago: the KOLs' data ends there
    with client_for(sim_today) as client:
        run_range(engine, client, early, early, run_id="history", today=early + timedelta(days=1))
    sim_today.set_today(None)
    sim_today.inject(kols[0], "truncated_json")  # malformed bodies from now on
    with client_for(sim_today) as client:
        report = run_range(engine, client, early + timedelta(days=1), yesterday, run_id="backfill")
    # Its newest settled date is 10 partition dates behind the date the backfill stands for: quarantined at once.
    assert report.health.entered == [kols[0]]
    assert report.problems == []
    assert quarantined(engine)[kols[0]].since == yesterday


def test_completeness_counts_dates_not_timestamps_under_a_time_zone_whose_clocks_change_at_midnight(
    engine: Engine, database_url: str
) -> None:
    kols = track(engine, 2)
    # America/Santiago moves its clocks at midnight: 2026-04-05 starts twice, 2026-09-06 at 01:00.
    start, end = date(2026, 4, 1), date(2026, 9, 10)
    gap = date(2026, 9, 6)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO pgy.kol_fans_trend (kol_id, date_key, increase_type, num) "
                "SELECT k, CAST(:start AS date) + i, s, 1 FROM unnest(CAST(:kols AS text[])) k, "
                "generate_series(0, CAST(:end AS date) - CAST(:start AS date)) i, unnest(CAST(:series AS text[])) s"
            ),
            {"start": start, "end": end, "kols": kols, "series": [s.value for s in Series]},
        )
        conn.execute(text("DELETE FROM pgy.kol_fans_trend WHERE kol_id = :k AND date_key = :d"),
                     {"k": kols[1], "d": gap})  # fmt: skip
    santiago = create_engine(database_url, connect_args={"options": "-c TimeZone=America/Santiago"})
    try:
        with santiago.connect() as conn:
            assert conn.scalar(text("SHOW TimeZone")) == "America/Santiago"
        assert lacking(santiago, start, end) == {kols[1]: [gap]}
        done = complete_dates(santiago, start, end)
        assert len(done) == (end - start).days and gap not in done
        assert date(2026, 4, 5) in done and date(2026, 4, 4) in done
        assert oldest_lacking(santiago, start, end) == gap
        status = read_status(santiago, days=7, today=date(2026, 9, 11))
        assert [p.date for p in status.partitions] == [end - timedelta(days=i) for i in range(7)]
        assert {p.date: p.kols_missing for p in status.partitions}[gap] == 1
    finally:
        santiago.dispose()


def test_a_rejection_of_everyone_stops_the_run_early_instead_of_billing_every_kol(
    engine: Engine, sim_today: Simulator, yesterday: date
) -> None:
    kols = track(engine, 300)
    sim_today.inject_everyone("code_201")  # billed: every call of a 10,000-KOL morning would cost money
    with client_for(sim_today) as client:
        report = run_range(engine, client, yesterday, yesterday, run_id="rejected")
    assert report.breaker and report.systemic is not None
    assert sim_today.billed_calls < 300  # stopped once 90 % of the first 100 KOLs got it, not after all 600 calls
    (sentence,) = report.problems
    assert sentence.startswith("The API rejected the run, not the KOLs: code 201 (No Content)")
    assert "The run stopped calling after" in sentence
    assert flagged_kols(engine, kols) == {}
