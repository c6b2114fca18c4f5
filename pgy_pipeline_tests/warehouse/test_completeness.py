"""The first month in production, in-process: young accounts, holes, publish lag, missed days and backfills
across the API's horizon. Each scenario checks the warehouse rows, the billed calls, Dagster's partition
status, the asset checks and `pgy-pipeline status` together, so they are seen to agree."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from typing import Any

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    ExecuteInProcessResult,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
)
from sqlalchemy import Engine, text

from pgy_pipeline.china_time import china_today
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.defs.sensors import checks_followup_sensor
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.status import read_status
from pgy_pipeline_tests.support.dagster import (
    materialize_trend,
    partition_keys,
    partition_status,
    schedule_tick,
    step_failure,
)
from pgy_pipeline_tests.support.warehouse import stored, track


def _checks(result: Any) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _not_served(engine: Engine) -> dict[tuple[str, str], list[date]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("select kol_id, reason, date_key from pgy.kol_not_served where increase_type = 'total_fans' "
                 "order by kol_id, date_key")
        )  # fmt: skip
        out: dict[tuple[str, str], list[date]] = {}
        for kol_id, reason, day in rows:
            out.setdefault((kol_id, reason), []).append(day)
        return out


def _followup(instance: DagsterInstance, failed: ExecuteInProcessResult) -> object:
    """What the follow-up sensor makes of a failed in-process run (its RUN_FAILURE event, as the daemon passes it)."""
    (run_failure,) = [e for e in failed.all_events if e.event_type == DagsterEventType.RUN_FAILURE]
    context = build_run_status_sensor_context(
        sensor_name="kol_fans_trend_checks_followup", dagster_event=run_failure, dagster_instance=instance,
        dagster_run=failed.dagster_run,
    ).for_run_failure()  # fmt: skip
    return checks_followup_sensor(context)


def test_young_account_and_a_hole_are_not_served_not_missing(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    old, young = track(engine, 2)
    sim_today.start_history(young, yesterday - timedelta(days=9))  # ten days of history
    hole = yesterday - timedelta(days=20)
    sim_today.punch_hole(old, hole)
    start = yesterday - timedelta(days=59)  # what the new-KOL sensor asks for: the largest window

    result = materialize_trend(instance, sim_today, database_url, start=start.isoformat(), end=yesterday.isoformat())
    assert result.success
    assert sim_today.billed_calls == 4
    assert _checks(result) == dict.fromkeys(
        ["partition_completeness", "no_gaps_60_days", "total_vs_new_consistency", "freshness"], True
    )
    assert set(partition_status(instance, start, yesterday).values()) == {"MATERIALIZED"}
    assert _not_served(engine) == {
        (young, "before_history"): [start + timedelta(days=i) for i in range(50)],
        (old, "hole"): [hole],
    }
    (mat, *_) = result.asset_materializations_for_node("kol_fans_trend")
    assert mat.metadata["kol_dates_not_served"].value == 51
    assert young in str(mat.metadata["dates_not_served"].value)
    status = read_status(engine, days=30, today=china_today())
    assert status.ok and all(p.complete for p in status.partitions)
    assert next(p for p in status.partitions if p.date == hole).not_served == [old, young]

    # Reruns bill nothing for dates the API does not serve: they are settled.
    again = materialize_trend(instance, sim_today, database_url, start=start.isoformat(), end=yesterday.isoformat())
    assert again.success and sim_today.billed_calls == 4

    # The platform fills the hole later: the next window stores it and it stops being "not served".
    with Simulator() as healed:
        fixed = materialize_trend(
            instance, healed, database_url, start=yesterday.isoformat(), api={"concurrency": 1}, run_config={
                "ops": {"kol_fans_trend": {"config": {"force": True, "kol_ids": [old]}}}
            },
        )  # fmt: skip
    assert fixed.success
    assert (old, hole, "total_fans") in stored(engine, hole, hole)
    assert (old, "hole") not in _not_served(engine)


def test_publish_lag_is_retried_billing_only_the_kols_still_lacking_the_date(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    kols = track(engine, 3)
    sim_today.delay_publication(kols[1], 1)  # yesterday not published yet for this one account

    def publish_after_first_attempt() -> None:
        while len(sim_today.calls) < 6:  # the first attempt's six calls are in
            time.sleep(0.02)
        sim_today.delay_publication(kols[1], 0)

    publisher = threading.Thread(target=publish_after_first_attempt, daemon=True)
    publisher.start()
    config = {"publish_lag_retries": 3, "publish_lag_wait_s": 2}
    result = materialize_trend(
        instance, sim_today, database_url, start=yesterday.isoformat(),
        run_config={"ops": {"kol_fans_trend": {"config": config}}},
    )  # fmt: skip
    publisher.join(timeout=5)
    assert result.success
    assert sim_today.billed_calls == 6 + 2  # the retry calls only the KOL that lacked yesterday
    assert [c.kol_id for c in sim_today.calls[6:]] == [kols[1], kols[1]]
    assert len(stored(engine, yesterday, yesterday)) == 6
    assert partition_status(instance, yesterday, yesterday) == {yesterday.isoformat(): "MATERIALIZED"}
    assert all(_checks(result).values())
    assert read_status(engine, days=1, today=china_today()).ok


def test_publish_lag_that_never_ends_fails_in_one_sentence(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    kols = track(engine, 2)
    sim_today.publish_lag_days = 1
    config = {"publish_lag_retries": 1, "publish_lag_wait_s": 0}
    result = materialize_trend(
        instance, sim_today, database_url, start=(yesterday - timedelta(days=1)).isoformat(), end=yesterday.isoformat(),
        run_config={"ops": {"kol_fans_trend": {"config": config}}},
    )  # fmt: skip
    assert not result.success
    description, _ = step_failure(result)
    assert description == (
        f"Still not published after 1 retries 0 s apart: 1 date(s) {yesterday} not published by the API yet for "
        "2 KOL(s) (see missing_dates); a later run fetches them, billing only the KOLs that lack them."
    )
    # The first attempt's probe (2 calls) finds yesterday unpublished and fetches nothing more; the final
    # attempt probes again and fetches everyone's published days: 2N + 2R billed calls for N KOLs, R retries.
    assert sim_today.billed_calls == 2 + 4
    # The day before was complete: it is green, only yesterday is failed; status and Dagster agree.
    day_before = yesterday - timedelta(days=1)
    assert partition_status(instance, day_before, yesterday) == {
        day_before.isoformat(): "MATERIALIZED",
        yesterday.isoformat(): "FAILED",
    }
    status = read_status(engine, days=2, today=china_today())
    assert [p.complete for p in status.partitions] == [False, True]
    assert status.partitions[0].missing == kols
    assert status.last_run is not None and status.last_run.outcome.startswith("incomplete (2 KOL(s)")


def test_mixed_backfill_materialises_the_reachable_partitions_and_marks_the_rest_lost(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    track(engine, 2)
    oldest = yesterday - timedelta(days=59)  # the oldest date legacy_v1's 60-day window reaches
    start, end = oldest - timedelta(days=5), oldest + timedelta(days=4)
    result = materialize_trend(instance, sim_today, database_url, start=start.isoformat(), end=end.isoformat())
    assert not result.success
    description, md = step_failure(result)
    assert description == (
        f"5 date(s) {start}..{oldest - timedelta(days=1)} are older than the 60 days the legacy_v1 endpoint serves "
        "and cannot be fetched any more (lost for good); everything newer was loaded."
    )
    assert sim_today.billed_calls == 4
    assert len(stored(engine, start, end)) == 2 * 2 * 5
    assert md["dagster/row_count"] == 20
    status = partition_status(instance, start, end)
    assert status == {k: ("FAILED" if k < oldest.isoformat() else "MATERIALIZED") for k in partition_keys(start, end)}
    last_run = read_status(engine, today=china_today()).last_run
    assert last_run is not None and last_run.outcome.startswith("failed (5 date(s) lost for good")

    # The follow-up sensor sees a run that failed for lost dates alone and asks for the reachable part,
    # whose run bills nothing and runs the checks the failed run had to skip.
    request = _followup(instance, result)
    assert isinstance(request, RunRequest)
    followup = (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG])
    assert followup == (oldest.isoformat(), end.isoformat())
    again = materialize_trend(instance, sim_today, database_url, start=followup[0], end=followup[1])
    assert again.success and sim_today.billed_calls == 4
    assert all(_checks(again).values()) and len(_checks(again)) == 4
    assert partition_status(instance, start, end) == status  # lost dates stay failed, the rest green


def test_follow_up_of_a_run_scoped_to_some_kols_fetches_no_other_kol(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    kols = track(engine, 2)
    start, end = yesterday - timedelta(days=61), yesterday - timedelta(days=50)
    only_first = {"ops": {"kol_fans_trend": {"config": {"kol_ids": [kols[0]]}}}}
    result = materialize_trend(
        instance, sim_today, database_url, start=start.isoformat(), end=end.isoformat(), run_config=only_first
    )
    assert not result.success and sim_today.billed_calls == 2
    request = _followup(instance, result)
    assert isinstance(request, RunRequest)
    followup_config = request.run_config["ops"]["kol_fans_trend"]["config"]
    assert (followup_config["kol_ids"], followup_config["force"]) == ([kols[0]], False)
    followup = materialize_trend(
        instance, sim_today, database_url, start=request.tags[RANGE_START_TAG], end=request.tags[RANGE_END_TAG],
        run_config=request.run_config,
    )  # fmt: skip
    assert followup.success and sim_today.billed_calls == 2  # the other KOL was not in the backfill: not fetched now


def test_no_follow_up_when_a_run_failed_for_more_than_lost_dates(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    kols = track(engine, 2)
    sim_today.inject(kols[0], "code_500")
    start = yesterday - timedelta(days=61)
    result = materialize_trend(instance, sim_today, database_url, start=start.isoformat(), end=yesterday.isoformat())
    assert not result.success
    assert isinstance(_followup(instance, result), SkipReason)
    # Failed calls leave every partition of the range failed: which dates they would have brought is unknown.
    assert set(partition_status(instance, start, yesterday).values()) == {"FAILED"}


def test_one_tick_after_three_missed_days_heals_all_four_partitions(
    local_instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    today = china_today()
    yesterday = today - timedelta(days=1)
    kols = track(engine, 3)
    done_until = yesterday - timedelta(days=4)  # the daemon was down for the three days after this one
    initial_load = (yesterday - timedelta(days=59)).isoformat()  # as the new-KOL sensor does
    sim_today.set_today(done_until + timedelta(days=1))  # back then, the API's newest date was done_until
    first = materialize_trend(local_instance, sim_today, database_url, start=initial_load, end=done_until.isoformat())
    assert first.success
    sim_today.set_today(None)
    sim_today.reset_counters()

    request = schedule_tick(local_instance, today, database_url)
    start = date.fromisoformat(request.tags[RANGE_START_TAG])
    end = date.fromisoformat(request.tags[RANGE_END_TAG])
    assert (start, end) == (yesterday - timedelta(days=3), yesterday)  # yesterday and the three missed days
    healed = materialize_trend(local_instance, sim_today, database_url, start=start.isoformat(), end=end.isoformat())
    assert healed.success
    assert sim_today.billed_calls == 2 * len(kols)  # one 30-day window per KOL and series covers all four
    assert set(partition_status(local_instance, start, end).values()) == {"MATERIALIZED"}
    assert read_status(engine, days=10, today=today).ok

    # Healed: the same morning's tick evaluated again asks for yesterday alone.
    assert schedule_tick(local_instance, today, database_url).partition_key == yesterday.isoformat()


def test_schedule_heals_a_failed_partition_inside_its_window(
    local_instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    today = china_today()
    yesterday = today - timedelta(days=1)
    kols = track(engine, 2)
    failed_day = yesterday - timedelta(days=10)
    sim_today.set_today(failed_day)  # the initial load, ten days ago
    initial = (yesterday - timedelta(days=59)).isoformat(), (failed_day - timedelta(days=1)).isoformat()
    assert materialize_trend(local_instance, sim_today, database_url, start=initial[0], end=initial[1]).success
    sim_today.set_today(None)
    sim_today.inject(kols[0], "code_500")  # that morning's run fails for one KOL
    assert not materialize_trend(local_instance, sim_today, database_url, start=failed_day.isoformat()).success
    assert partition_status(local_instance, failed_day, failed_day) == {failed_day.isoformat(): "FAILED"}
    sim_today.clear_faults()
    sim_today.reset_counters()

    request = schedule_tick(local_instance, today, database_url)  # and the daemon was down since: one tick catches up
    assert request.tags[RANGE_START_TAG] == failed_day.isoformat()
    assert request.tags[RANGE_END_TAG] == yesterday.isoformat()
    result = materialize_trend(
        local_instance, sim_today, database_url, start=failed_day.isoformat(), end=yesterday.isoformat()
    )
    assert result.success
    assert sim_today.billed_calls == 2  # only the KOL whose calls failed; the other's window already covered the range
    assert set(partition_status(local_instance, failed_day, yesterday).values()) == {"MATERIALIZED"}
    assert read_status(engine, days=11, today=today).ok


@pytest.mark.subprocess
@pytest.mark.parametrize(("endpoint", "days"), [("legacy_v1", 60), ("current", 90)])
def test_a_newcomer_sees_only_partitions_the_api_can_still_fill(endpoint: str, days: int) -> None:
    """Without PGY_PARTITIONS_START the first partition is the oldest date the endpoint's largest window reaches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGY_")}
    env["PGY_TREND_ENDPOINT"] = endpoint
    code = "from pgy_pipeline.defs.partitions import partitions_def as p; print(p.get_first_partition_key())"
    before = china_today()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    # yesterday and the days - 1 before it (either side of China midnight, should the call straddle it)
    assert out.strip() in {(today - timedelta(days=days)).isoformat() for today in (before, china_today())}
