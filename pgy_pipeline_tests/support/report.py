"""A warehouse loaded through the simulator for the report tests: a bought batch, a young account, a restated
total and a KOL tracked too late to be fetched."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine

from pgy_pipeline.demo import plant_bought_followers
from pgy_pipeline.model import Endpoint, Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.plan import oldest_reachable_date
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.anomaly import AnomalyRules, refresh_anomalies
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline_tests.support.simulator import SIM_TODAY, fast_client, kol_ids

DAYS = 60


@dataclass(frozen=True)
class Scenario:
    kols: list[str]  # tracked and fetched
    planted: str  # bought a batch on spike_day, lost 70 % of it on latest
    young: str  # history starts 10 days before latest: the API does not serve its earlier dates
    restated: str  # one total restated downwards between the two runs
    late: str  # tracked after the runs: every date missing
    spike_day: date
    restated_day: date
    latest: date
    today: date

    @property
    def start(self) -> date:
        return self.latest - timedelta(days=DAYS - 1)

    @property
    def oldest_reachable(self) -> date:
        return oldest_reachable_date(self.today, Endpoint.LEGACY_V1)


@contextmanager
def planted_warehouse(engine: Engine) -> Iterator[Scenario]:
    """Sixty days of five KOLs fetched from the simulator (the simulator stays up inside the block)."""
    kols = kol_ids(5)
    late = kol_ids(1, 5)[0]
    add_kols(engine, kols)
    with Simulator(today=SIM_TODAY) as sim, fast_client(sim) as client:
        latest = sim.latest_date
        planted, young, restated = kols[2], kols[3], kols[1]
        plant_bought_followers(sim, planted)
        sim.start_history(young, latest - timedelta(days=9))
        start = latest - timedelta(days=DAYS - 1)
        assert not run_range(engine, client, start, latest, run_id="backfill", today=sim.today).problems
        restated_day = latest - timedelta(days=3)
        old = sim.truth(restated, Series.TOTAL_FANS, restated_day)
        assert old is not None
        sim.restate(restated, Series.TOTAL_FANS, restated_day, old - 3)
        assert not run_range(engine, client, latest, latest, run_id="rerun", force=True, today=sim.today).problems
        refresh_anomalies(engine, start, latest, rules=AnomalyRules(), run_id="anomaly")
        add_kols(engine, [late])
        spike_day = latest - timedelta(days=2)
        yield Scenario(kols, planted, young, restated, late, spike_day, restated_day, latest, sim.today)
