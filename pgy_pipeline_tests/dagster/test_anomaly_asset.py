"""kol_fans_anomaly run by Dagster for real: after the trend in one run, and requested automatically by its
automation condition for exactly the partitions of the trend that landed (a backfill range in one run)."""

from __future__ import annotations

from datetime import date, timedelta

from dagster import AssetKey, DagsterInstance, Definitions, evaluate_automation_conditions, materialize
from sqlalchemy import Engine

from pgy_pipeline.defs.anomaly import kol_fans_anomaly
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import RANGE_END_TAG, RANGE_START_TAG
from pgy_pipeline.model import Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.anomaly import stored_anomalies
from pgy_pipeline_tests.support.dagster import dagster_resources
from pgy_pipeline_tests.support.warehouse import track

ANOMALY = AssetKey("kol_fans_anomaly")


def test_anomalies_of_a_planted_spike_land_with_the_trend(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    kols = track(engine, 3)
    usual = sim_today.truth(kols[1], Series.TOTAL_FANS, yesterday)
    assert usual is not None
    sim_today.jump(kols[1], yesterday, max(5_000, usual // 10))
    day = yesterday.isoformat()
    result = materialize(
        [kol_fans_trend, kol_fans_anomaly],
        resources=dagster_resources(sim_today, database_url),
        instance=instance,
        tags={RANGE_START_TAG: day, RANGE_END_TAG: day},
    )
    assert result.success
    (spike,) = stored_anomalies(engine, yesterday, yesterday)
    assert (spike.kol_id, spike.rule) == (kols[1], "spike")
    assert spike.observed == sim_today.truth(kols[1], Series.NEW_FANS, yesterday)  # the walk's day plus the jump
    (mat,) = result.asset_materializations_for_node("kol_fans_anomaly")
    assert mat.metadata["anomalies_per_rule"].value == {"spike": 1, "spike_then_drop": 0, "purge": 0}
    assert mat.metadata["dagster/row_count"].value == 1


def test_anomalies_are_requested_for_exactly_the_trend_partitions_that_landed(
    instance: DagsterInstance, engine: Engine, sim_today: Simulator, database_url: str, yesterday: date
) -> None:
    track(engine, 2)
    defs = Definitions(assets=[kol_fans_trend, kol_fans_anomaly], resources=dagster_resources(sim_today, database_url))
    first = evaluate_automation_conditions(defs=defs, instance=instance)
    assert first.get_num_requested(ANOMALY) == 0  # nothing landed yet, and history is not replayed
    start = yesterday - timedelta(days=4)
    result = materialize(  # a 5-day backfill of the trend, in one run
        [kol_fans_trend],
        resources=dagster_resources(sim_today, database_url),
        instance=instance,
        tags={RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: yesterday.isoformat()},
    )
    assert result.success
    after = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
    assert after.get_requested_partitions(ANOMALY) == {(start + timedelta(days=i)).isoformat() for i in range(5)}
    assert evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor).total_requested == 0
