"""Each asset check seen failing for a cause met in production, then passing once the cause is remedied."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from dagster import AssetSelection, DagsterInstance, materialize
from sqlalchemy import Engine, text

from pgy_pipeline.china_time import china_today
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.checks import asset_checks
from pgy_pipeline.model import Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.dagster import dagster_resources, materialize_trend
from pgy_pipeline_tests.support.warehouse import track


def _run_checks(instance: DagsterInstance, sim: Simulator, database_url: str) -> dict[str, Any]:
    """The four checks alone, as the UI's "Execute checks" runs them (over the last 7 days)."""
    result = materialize(
        [kol_fans_trend, *asset_checks],
        selection=AssetSelection.all_asset_checks(),
        resources=dagster_resources(sim, database_url),
        instance=instance,
        raise_on_error=False,
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture
def loaded(instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str) -> Iterator[list[str]]:
    """Two KOLs with the 60 days the API serves, every check passing."""
    yesterday = china_today() - timedelta(days=1)
    kols = track(engine, 2)
    start = (yesterday - timedelta(days=59)).isoformat()
    assert materialize_trend(instance, sim_today, database_url, start=start, end=yesterday.isoformat()).success
    assert all(e.passed for e in _run_checks(instance, sim_today, database_url).values())
    yield kols


def _delete(engine: Engine, kol_id: str, day: date, series: str | None = None) -> None:
    sql = "delete from pgy.kol_fans_trend where kol_id = :k and date_key = :d"
    with engine.begin() as conn:
        conn.execute(text(sql + (" and increase_type = :s" if series else "")), {"k": kol_id, "d": day, "s": series})


def test_completeness_fails_for_a_deleted_row_and_a_rerun_restores_it(
    loaded: list[str], instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    day = china_today() - timedelta(days=3)
    _delete(engine, loaded[0], day, "total_fans")
    checks = _run_checks(instance, sim_today, database_url)
    assert not checks["partition_completeness"].passed
    assert checks["partition_completeness"].metadata["incomplete"].value == {loaded[0]: [str(day)]}
    billed = sim_today.billed_calls
    assert materialize_trend(instance, sim_today, database_url, start=day.isoformat()).success  # the remedy
    assert sim_today.billed_calls == billed + 1  # just the series that lost its row
    assert all(e.passed for e in _run_checks(instance, sim_today, database_url).values())


def test_freshness_fails_for_a_kol_the_daily_run_stopped_landing(
    loaded: list[str], instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    yesterday = china_today() - timedelta(days=1)
    (late,) = track(engine, 1, first=10)
    sim_today.set_today(yesterday - timedelta(days=4))  # its last successful fetch was five days ago
    start, end = (yesterday - timedelta(days=30)).isoformat(), (yesterday - timedelta(days=5)).isoformat()
    only_late = {"ops": {"kol_fans_trend": {"config": {"kol_ids": [late]}}}}
    assert materialize_trend(instance, sim_today, database_url, start=start, end=end, run_config=only_late).success
    sim_today.set_today(None)
    checks = _run_checks(instance, sim_today, database_url)
    assert not checks["freshness"].passed
    assert checks["freshness"].metadata["stale"].value == [f"{late}: newest {yesterday - timedelta(days=5)}"]


def test_gaps_fail_for_a_hole_older_than_the_daily_window(
    loaded: list[str], instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    day = china_today() - timedelta(days=45)  # inside the 60 days checked, beyond the daily run's 30-day window
    _delete(engine, loaded[1], day)
    checks = _run_checks(instance, sim_today, database_url)
    assert not checks["no_gaps_60_days"].passed
    assert checks["no_gaps_60_days"].metadata["dates_missing"].value == 2
    assert checks["partition_completeness"].passed  # the last 7 days are fine


def test_consistency_fails_when_the_api_restates_new_fans_alone(
    loaded: list[str], instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str
) -> None:
    day = china_today() - timedelta(days=4)
    new = sim_today.truth(loaded[0], Series.NEW_FANS, day)
    assert new is not None
    sim_today.restate(loaded[0], Series.NEW_FANS, day, new + 7)
    forced = {"ops": {"kol_fans_trend": {"config": {"force": True}}}}
    assert materialize_trend(instance, sim_today, database_url, start=day.isoformat(), run_config=forced).success
    checks = _run_checks(instance, sim_today, database_url)
    assert not checks["total_vs_new_consistency"].passed
    assert checks["total_vs_new_consistency"].metadata["dates_inconsistent"].value == 1
