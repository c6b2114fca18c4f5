"""The anomaly rules on hand-built series with known answers, look-alikes that must not fire, and a purge
seen through a real restatement by the simulator."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.config import ConfigError
from pgy_pipeline.model import Series, TrendPoint
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.anomaly import Anomaly, AnomalyRules, detect, refresh_anomalies, stored_anomalies
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline_tests.support.simulator import SIM_TODAY, fast_client

START = date(2026, 1, 1)
END = START + timedelta(days=59)


def _load_series(engine: Engine, kol_id: str, new_fans: list[int], base: int = 10_000, start: date = START) -> None:
    """A KOL whose new fans are `new_fans` from `start` on, with totals that agree with them."""
    points, total = [], base
    for i, n in enumerate(new_fans):
        total += n
        day = start + timedelta(days=i)
        points += [TrendPoint(kol_id, day, "new_fans", n), TrendPoint(kol_id, day, "total_fans", total)]
    load_points(engine, points)


def _noisy(days: int, mean: float, sd: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [round(rng.gauss(mean, sd)) for _ in range(days)]


def _by_rule(found: list[Anomaly]) -> dict[str, list[Anomaly]]:
    out: dict[str, list[Anomaly]] = {}
    for a in found:
        out.setdefault(a.rule, []).append(a)
    return out


def test_a_planted_spike_is_found_on_its_day_and_nothing_else(engine: Engine) -> None:
    series = _noisy(60, 50, 8, seed=1)
    series[40] = 3_000  # a bought batch on day 40
    _load_series(engine, "kol_spike", series)
    found = detect(engine, START, END, AnomalyRules())
    assert [(a.kol_id, a.date_key, a.rule) for a in found] == [("kol_spike", START + timedelta(days=40), "spike")]
    (spike,) = found
    assert spike.observed == 3_000
    assert 40 <= spike.baseline <= 60  # the KOL's usual day, not inflated by the spike
    assert spike.score == pytest.approx(3_000 / spike.baseline)
    assert spike.summary.startswith("Suspected") and "fake" not in spike.summary.lower()


def test_a_spike_then_drop_is_reported_on_the_day_the_loss_crosses_half_the_excess(engine: Engine) -> None:
    series = _noisy(60, 50, 8, seed=2)
    series[30] = 3_000
    series[32], series[33] = -1_200, -1_000  # most of the batch disappears two and three days later
    _load_series(engine, "kol_std", series)
    rules = _by_rule(detect(engine, START, END, AnomalyRules()))
    assert [a.date_key for a in rules["spike"]] == [START + timedelta(days=30)]
    (drop,) = rules["spike_then_drop"]
    spike = rules["spike"][0]
    excess = spike.observed - spike.baseline
    assert drop.date_key == START + timedelta(days=33)  # day 32 lost ~1,150 (< half); day 33 crosses
    assert drop.related_date == spike.date_key
    assert drop.baseline == pytest.approx(excess)
    assert drop.observed == -(series[31] + series[32] + series[33])
    assert drop.score == pytest.approx(drop.observed / excess)
    assert "purge" not in rules


def test_look_alikes_do_not_fire(engine: Engine) -> None:
    rng = random.Random(3)
    # A KOL growing fast and steadily (new fans rising 2,000 -> 5,000 a day, +-5 %).
    _load_series(engine, "kol_fast", [round((2_000 + 50 * i) * rng.uniform(0.95, 1.05)) for i in range(60)])
    # A weekly rhythm: weekends bring 8x the weekday's new fans, every week.
    weekly = [
        round((800 if (START + timedelta(days=i)).weekday() >= 5 else 100) * rng.uniform(0.9, 1.1)) for i in range(60)
    ]
    _load_series(engine, "kol_weekly", weekly)
    # A tiny account: 0-4 a day and one day of 40 (10x its usual, but 40 followers are no campaign).
    tiny = [rng.randint(0, 4) for _ in range(60)]
    tiny[45] = 40
    _load_series(engine, "kol_tiny", tiny, base=150)
    # A short history: 10 days of ~50, then 5,000 on day 11: no baseline to judge it by.
    _load_series(engine, "kol_new", [*_noisy(10, 50, 5, seed=4), 5_000], start=END - timedelta(days=10))
    assert detect(engine, START, END, AnomalyRules()) == []
    # The same short history is judged once the minimum history is lowered: the rule, not luck, held it back.
    found = detect(engine, END, END, AnomalyRules(spike_min_history_days=7))
    assert [(a.kol_id, a.rule) for a in found] == [("kol_new", "spike")]


def test_rerunning_a_range_replaces_its_rows(engine: Engine) -> None:
    series = _noisy(60, 50, 8, seed=5)
    series[40] = 3_000
    _load_series(engine, "kol_spike", series)
    first = refresh_anomalies(engine, START, END, rules=AnomalyRules(), run_id="run-1")
    again = refresh_anomalies(engine, START, END, rules=AnomalyRules(), run_id="run-2")
    assert first == again == stored_anomalies(engine, START, END)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(run_id) FROM pgy.kol_fans_anomaly")).one() == (1, "run-2")
    # A stricter threshold on rerun removes what no longer qualifies (the range's rows are replaced).
    assert refresh_anomalies(engine, START, END, rules=AnomalyRules(spike_min_new_fans=5_000)) == []
    assert stored_anomalies(engine, START, END) == []


def test_a_purge_is_found_through_a_real_restatement(engine: Engine) -> None:
    purged, corrected = "5a1b2c3d4e5f60718293a4b5", "5b6d7e8f9a0b1c2d3e4f5a6b"
    add_kols(engine, [purged, corrected])
    with Simulator(today=SIM_TODAY) as sim, fast_client(sim) as client:
        latest = sim.latest_date
        report = run_range(engine, client, latest, latest, run_id="day-1", today=sim.today)
        assert not report.problems
        # Overnight the platform removes followers from `purged` since 12 days ago (every later total drops),
        # and corrects one total of `corrected` by 3 (a routine restatement).
        removed_from = latest - timedelta(days=12)
        before = sim.truth(purged, Series.TOTAL_FANS, removed_from)
        assert before is not None
        removed = max(500, before // 20)
        sim.jump(purged, removed_from, -removed)
        small = latest - timedelta(days=5)
        old = sim.truth(corrected, Series.TOTAL_FANS, small)
        assert old is not None
        sim.restate(corrected, Series.TOTAL_FANS, small, old - 3)
        sim.set_today(SIM_TODAY + timedelta(days=1))
        next_day = sim.latest_date
        report = run_range(engine, client, next_day, next_day, run_id="day-2", today=sim.today)
        assert not report.problems
    with engine.connect() as conn:
        revised = conn.scalar(
            text("SELECT count(*) FROM pgy.kol_fans_trend_revision WHERE increase_type = 'total_fans'")
        )
    assert revised == 13 + 1  # 12 days ago .. the old yesterday for `purged`, one date for `corrected`
    found = refresh_anomalies(engine, next_day, next_day, rules=AnomalyRules(), run_id="anomaly")
    (purge,) = found
    assert (purge.kol_id, purge.date_key, purge.rule) == (purged, next_day, "purge")
    assert purge.observed == removed and purge.baseline == before
    assert purge.related_date == removed_from
    assert purge.score == pytest.approx(removed / before)
    assert "13 past day(s)" in purge.summary
    assert detect(engine, latest, latest, AnomalyRules()) == []  # attributed to the run that saw it, once


def test_thresholds_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    rules = AnomalyRules.from_env({"PGY_ANOMALY_SPIKE_MULTIPLE": "8", "PGY_ANOMALY_SPIKE_MIN_NEW_FANS": "1000"})
    assert (rules.spike_multiple, rules.spike_min_new_fans, rules.drop_share) == (8.0, 1_000, 0.5)
    with pytest.raises(ConfigError, match="PGY_ANOMALY_DROP_SHARE"):
        AnomalyRules.from_env({"PGY_ANOMALY_DROP_SHARE": "half"})
    with pytest.raises(ConfigError, match="drop_share"):
        AnomalyRules.from_env({"PGY_ANOMALY_DROP_SHARE": "2"})


def test_latest_view_keeps_each_kols_last_30_days_and_says_suspected(engine: Engine) -> None:
    series = _noisy(60, 50, 8, seed=6)
    series[20] = series[45] = 3_000  # day 20 is 39 days before the KOL's newest date; day 45 is 14 days before
    _load_series(engine, "kol_spike", series)
    add_kols(engine, ["kol_spike"], label="brand-x")
    refresh_anomalies(engine, START, END, rules=AnomalyRules())
    assert {a.date_key for a in stored_anomalies(engine, START, END)} == {START + timedelta(days=d) for d in (20, 45)}
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT kol_id, label, date_key, rule, verdict FROM pgy.kol_fans_anomaly_latest")
        ).all()
    assert [tuple(r) for r in rows] == [("kol_spike", "brand-x", START + timedelta(days=45), "spike", "suspected")]
