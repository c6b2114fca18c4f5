"""The daily schedule and the new-KOL sensor, evaluated the way the Dagster daemon evaluates them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from dagster import (
    DagsterInstance,
    RunRequest,
    SensorResult,
    SkipReason,
    build_schedule_context,
    materialize,
)
from sqlalchemy import Engine

from pgy_pipeline.china_time import CHINA_TZ
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline_tests.support.dagster import dagster_resources, disposed_after, new_kols_tick
from pgy_pipeline_tests.support.simulator import kol_id
from pgy_pipeline_tests.support.warehouse import stored, track


def test_schedule_tick_targets_yesterday_in_china(tmp_path: Path) -> None:
    from pgy_pipeline.definitions import defs

    schedule = defs.resolve_schedule_def("kol_fans_trend_daily")
    assert schedule.execution_timezone == "Asia/Shanghai"
    assert schedule.cron_schedule == "30 6 * * *"  # PGY_SCHEDULE_TIME default 06:30
    # 06:30 in Shanghai on 10 March is still 9 March in UTC: the partition must follow China's calendar.
    tick = datetime(2026, 3, 10, 6, 30, tzinfo=CHINA_TZ)
    # A persistent instance: the tick reads partition status from it. No warehouse answers (nothing listens on
    # port 1 of the loopback): the tick still runs, on Dagster's marks alone, and says so in a tag.
    warehouse = WarehouseResource(database_url="postgresql://postgres@127.0.0.1:1/pgy")
    with disposed_after(DagsterInstance.local_temp(str(tmp_path))) as instance, build_schedule_context(
        instance=instance, scheduled_execution_time=tick,
        resources={"trend_api": TrendApiResource(), "warehouse": warehouse},
        repository_def=defs.get_repository_def(),
    ) as context:  # fmt: skip
        (request,) = schedule.evaluate_tick(context).run_requests or []
    assert "the warehouse could not be read" in request.tags["pgy/healing_fallback"]
    # Nothing is materialised in this fresh instance: yesterday and every day of its 30-day window.
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        "2026-02-08",
        "2026-03-09",
    )


def test_sensor_backfills_only_the_newly_tracked_kol(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    first = track(engine, 2)
    initial = new_kols_tick(
        instance, sim_today, database_url, None
    )  # first tick: the initial load of everything tracked
    assert isinstance(initial, SensorResult)
    (req,) = initial.run_requests or []
    assert req.run_config["ops"]["kol_fans_trend"]["config"]["kol_ids"] == first

    assert isinstance(new_kols_tick(instance, sim_today, database_url, initial.cursor), SkipReason)  # nothing new

    newcomer = kol_id(99)
    add_kols(engine, [newcomer])
    later = new_kols_tick(instance, sim_today, database_url, initial.cursor)
    assert isinstance(later, SensorResult)
    (request,) = later.run_requests or []
    assert isinstance(request, RunRequest)
    assert request.run_config["ops"]["kol_fans_trend"]["config"]["kol_ids"] == [newcomer]
    start = date.fromisoformat(request.tags[RANGE_START_TAG])
    end = date.fromisoformat(request.tags[RANGE_END_TAG])
    assert (start, end) == (yesterday - timedelta(days=59), yesterday)  # legacy_v1's largest window

    # Launch what the sensor asked for: only the newcomer is fetched, over the whole window.
    result = materialize(
        [kol_fans_trend],
        resources=dagster_resources(sim_today, database_url),
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
    )
    assert result.success
    assert sim_today.billed_calls == 2
    rows = stored(engine, start, end)
    assert {k for k, _, _ in rows} == {newcomer}
    assert len(rows) == 2 * 60
