"""Healing follows the warehouse, not only Dagster's marks: the daily tick reaches back to a partition that
failed after being green and to a date a KOL lacks in the warehouse, and a failed new-KOL backfill is
requested again with backoff until it lands. The schedule and the sensor are evaluated as the daemon
evaluates them, against a real Dagster instance, the real warehouse and the simulator."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    RunRequest,
    SkipReason,
    materialize,
)
from sqlalchemy import Engine, create_engine, text

from pgy_pipeline.defs import sensors
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.defs.schedules import HEALING_FALLBACK_TAG
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.status import read_status
from pgy_pipeline.warehouse.completeness import oldest_lacking
from pgy_pipeline.warehouse.engine import normalize_url
from pgy_pipeline.warehouse.kols import remove_kols
from pgy_pipeline_tests.support.dagster import (
    dagster_resources,
    materialize_trend,
    new_kols_tick,
    partition_status,
    schedule_tick,
)
from pgy_pipeline_tests.support.warehouse import stored, track

# Nothing listens on port 1 of the loopback: the warehouse as the tick sees it when Postgres is down.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/pgy"


def tick_range(request: RunRequest) -> tuple[date, date]:
    if RANGE_START_TAG in request.tags:
        return date.fromisoformat(request.tags[RANGE_START_TAG]), date.fromisoformat(request.tags[RANGE_END_TAG])
    assert request.partition_key is not None
    return date.fromisoformat(request.partition_key), date.fromisoformat(request.partition_key)


def green_until_the_day_before_yesterday(
    instance: DagsterInstance, sim: Simulator, database_url: str, yesterday: date
) -> tuple[date, date]:
    """Every partition of the daily window but yesterday loaded and green, as after a month of good mornings."""
    start, end = yesterday - timedelta(days=29), yesterday - timedelta(days=1)
    sim.set_today(yesterday)  # the API's newest date was the day before yesterday
    assert materialize_trend(instance, sim, database_url, start=start.isoformat(), end=end.isoformat()).success
    sim.set_today(None)
    sim.reset_counters()
    assert set(partition_status(instance, start, end).values()) == {"MATERIALIZED"}
    return start, end


def test_a_partition_that_failed_after_being_green_is_healed_by_the_next_tick(
    local_instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    today: date,
    yesterday: date,
) -> None:
    kols = track(engine, 2)
    green_until_the_day_before_yesterday(local_instance, sim_today, database_url, yesterday)
    # One KOL's rows of a green day are gone, and an operator re-runs that partition (force: bill it again) while
    # the API fails that KOL's calls: the run fails and the partition turns Failed. (A forced rerun whose
    # failing KOL still has its rows marks the date materialised again: the warehouse has it.)
    failed_day = yesterday - timedelta(days=10)
    with engine.begin() as conn:
        conn.execute(
            text("delete from pgy.kol_fans_trend where kol_id = :k and date_key = :d"), {"k": kols[0], "d": failed_day}
        )
    sim_today.inject(kols[0], "code_500")
    force = {"ops": {"kol_fans_trend": {"config": {"force": True}}}}
    rerun = materialize_trend(local_instance, sim_today, database_url, start=failed_day.isoformat(), run_config=force)
    assert not rerun.success
    assert partition_status(local_instance, failed_day, failed_day) == {failed_day.isoformat(): "FAILED"}
    # Dagster still lists it among the materialised partitions; only its status says it failed since.
    assert failed_day.isoformat() in local_instance.get_materialized_partitions(kol_fans_trend.key)
    sim_today.clear_faults()
    sim_today.reset_counters()

    # Dagster's Failed mark alone reaches back to it (the warehouse unreadable), and so does the warehouse.
    assert tick_range(schedule_tick(local_instance, today, UNREACHABLE)) == (failed_day, yesterday)
    request = schedule_tick(local_instance, today, database_url)
    assert tick_range(request) == (failed_day, yesterday)
    assert HEALING_FALLBACK_TAG not in request.tags
    healed = materialize_trend(
        local_instance, sim_today, database_url, start=failed_day.isoformat(), end=yesterday.isoformat()
    )
    assert healed.success
    assert sim_today.billed_calls == 2  # the KOL whose calls failed; the forced run's window brought the other's days
    assert set(partition_status(local_instance, failed_day, yesterday).values()) == {"MATERIALIZED"}
    assert read_status(engine, days=11, today=today).ok
    assert tick_range(schedule_tick(local_instance, today, database_url)) == (yesterday, yesterday)


def test_a_date_a_kol_lacks_in_the_warehouse_is_healed_although_dagster_shows_it_green(
    local_instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    today: date,
    yesterday: date,
) -> None:
    kols = track(engine, 3)
    green_until_the_day_before_yesterday(local_instance, sim_today, database_url, yesterday)
    lost_day = yesterday - timedelta(days=7)
    with engine.begin() as conn:  # one KOL's day is gone from the warehouse; Dagster keeps the partition green
        conn.execute(
            text("delete from pgy.kol_fans_trend where kol_id = :k and date_key = :d"), {"k": kols[1], "d": lost_day}
        )
    assert partition_status(local_instance, lost_day, lost_day) == {lost_day.isoformat(): "MATERIALIZED"}
    assert oldest_lacking(engine, yesterday - timedelta(days=29), yesterday - timedelta(days=1)) == lost_day

    # With the warehouse down the tick still runs, on Dagster's marks alone, and says so.
    blind = schedule_tick(local_instance, today, UNREACHABLE)
    assert tick_range(blind) == (yesterday, yesterday)
    assert "warehouse could not be read" in blind.tags[HEALING_FALLBACK_TAG]
    assert "Dagster's partition marks alone" in blind.tags[HEALING_FALLBACK_TAG]

    request = schedule_tick(local_instance, today, database_url)
    assert tick_range(request) == (lost_day, yesterday)
    healed = materialize_trend(
        local_instance, sim_today, database_url, start=lost_day.isoformat(), end=yesterday.isoformat()
    )
    assert healed.success
    assert sim_today.billed_calls == 2 * len(kols)
    assert {(k, t) for k, d, t in stored(engine, lost_day, lost_day)} == {
        (k, t) for k in kols for t in ("total_fans", "new_fans")
    }
    assert read_status(engine, days=30, today=today).ok
    assert oldest_lacking(engine, yesterday - timedelta(days=29), yesterday) is None


def _launch(instance: DagsterInstance, sim: Simulator, database_url: str, request: RunRequest) -> Any:
    """Run what the sensor asked for, as the daemon would (same config and tags)."""
    return materialize(
        [kol_fans_trend], resources=dagster_resources(sim, database_url), run_config=request.run_config,
        tags=request.tags, instance=instance, raise_on_error=False,
    )  # fmt: skip


def test_a_failed_new_kol_backfill_is_retried_with_backoff_until_it_lands(
    instance: DagsterInstance,
    engine: Engine,
    sim_today: Simulator,
    database_url: str,
    yesterday: date,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The waits are 10 and 20 minutes: the test moves the sensor's clock instead of sleeping (the runs'
    # failure times are the real ones Dagster recorded).
    now = sensors._clock()
    monkeypatch.setattr(sensors, "_clock", lambda: now)
    kols = track(engine, 2)
    sim_today.inject(kols[1], "code_500")  # the API keeps failing one newcomer's calls for a while

    first = new_kols_tick(instance, sim_today, database_url, None)
    (request,) = first.run_requests
    assert (request.tags["pgy/kind"], request.tags["pgy/backfill_attempt"]) == ("new_kol_backfill", "1")
    failed = _launch(instance, sim_today, database_url, request)
    assert not failed.success
    failed_id = failed.dagster_run.run_id

    waiting = new_kols_tick(
        instance, sim_today, database_url, first.cursor
    )  # just failed: its 10 minutes have not passed
    assert isinstance(waiting, SkipReason)
    assert "1 failed new-KOL backfill(s) wait for their retry" in (waiting.skip_message or "")

    monkeypatch.setattr(sensors, "_clock", lambda: now + 11 * 60)
    (retry,) = new_kols_tick(instance, sim_today, database_url, first.cursor).run_requests
    assert retry.run_key == f"new-kols-retry:{failed_id}"
    assert (retry.tags["pgy/backfill_attempt"], retry.tags["pgy/retry_of"]) == ("2", failed_id)
    assert retry.run_config["ops"]["kol_fans_trend"]["config"]["kol_ids"] == kols
    assert (retry.tags[RANGE_START_TAG], retry.tags[RANGE_END_TAG]) == (
        (yesterday - timedelta(days=59)).isoformat(),
        yesterday.isoformat(),
    )  # the largest window as of the retry: nothing ages out while it waits
    again = _launch(instance, sim_today, database_url, retry)
    assert not again.success
    # Retried once: the first failure is done with; the second waits twice as long (20 minutes).
    assert isinstance(new_kols_tick(instance, sim_today, database_url, first.cursor), SkipReason)

    monkeypatch.setattr(sensors, "_clock", lambda: now + 11 * 60 + 21 * 60)
    (third,) = new_kols_tick(instance, sim_today, database_url, first.cursor).run_requests
    assert (third.tags["pgy/backfill_attempt"], third.tags["pgy/retry_of"]) == ("3", again.dagster_run.run_id)
    sim_today.clear_faults()
    sim_today.reset_counters()
    landed = _launch(instance, sim_today, database_url, third)
    assert landed.success
    assert sim_today.billed_calls == 2  # only the KOL still lacking its history; the other's is in hand
    start, end = yesterday - timedelta(days=59), yesterday
    assert {k for k, _, _ in stored(engine, start, end)} == set(kols)
    assert len(stored(engine, start, end)) == 2 * 2 * 60

    monkeypatch.setattr(sensors, "_clock", lambda: now + 24 * 3600)  # landed: nothing is requested again
    done = new_kols_tick(instance, sim_today, database_url, first.cursor)
    assert isinstance(done, SkipReason) and done.skip_message == "no newly tracked KOLs"


def test_the_wait_between_backfill_attempts_doubles_from_ten_minutes_to_six_hours() -> None:
    assert [sensors.retry_wait_s(a) // 60 for a in range(1, 9)] == [10, 20, 40, 80, 160, 320, 360, 360]
    assert sensors.retry_wait_s(1000) == 6 * 3600


def test_oldest_lacking_counts_stored_and_not_served_dates_of_served_kols_only_under_any_time_zone(
    engine: Engine, database_url: str
) -> None:
    served, young, flagged, removed = track(engine, 4)
    # In America/Santiago the clocks jump from 00:00 to 01:00 on 6 September 2026: a date series computed in
    # timestamptz there drops 7 September, the very date one KOL lacks.
    first, last = date(2026, 9, 1), date(2026, 9, 7)
    days = [first + timedelta(days=i) for i in range(7)]
    rows = [(k, d, s) for k in (served, young) for d in days for s in ("total_fans", "new_fans")]
    rows.remove((served, last, "new_fans"))  # one series of the newest date not in yet
    not_served = [(young, first + timedelta(days=2), s) for s in ("total_fans", "new_fans")]  # a hole the API left
    for row in not_served:
        rows.remove(row)
    with engine.begin() as conn:
        conn.execute(
            text("insert into pgy.kol_fans_trend (kol_id, date_key, increase_type, num) values (:k, :d, :s, 1)"),
            [{"k": k, "d": d, "s": s} for k, d, s in rows],
        )
        conn.execute(
            text("insert into pgy.kol_fans_not_served (kol_id, date_key, increase_type, fetch_log_id) "
                 "values (:k, :d, :s, 0)"),
            [{"k": k, "d": d, "s": s} for k, d, s in not_served],
        )  # fmt: skip
        # The API rejected one id (201): flagged, it is not expected to have any date.
        conn.execute(text("update pgy.tracked_kol set last_error_at = now() where kol_id = :k"), {"k": flagged})
    remove_kols(engine, [removed])  # no longer tracked: not expected either

    santiago = create_engine(normalize_url(database_url), connect_args={"options": "-c TimeZone=America/Santiago"})
    try:
        assert oldest_lacking(santiago, first, last) == last
        assert oldest_lacking(santiago, first, last - timedelta(days=1)) is None  # a not-served date is settled
        assert oldest_lacking(santiago, last, first) is None
        with santiago.begin() as conn:  # a hole inside the range is found, not only a missing tail
            conn.execute(
                text(
                    "delete from pgy.kol_fans_trend where kol_id = :k and date_key = :d and increase_type = 'new_fans'"
                ),
                {"k": young, "d": first + timedelta(days=4)},
            )
        assert oldest_lacking(santiago, first, last) == first + timedelta(days=4)
    finally:
        santiago.dispose()
