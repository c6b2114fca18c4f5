"""run_range against the real simulator and a real Postgres: rows, costs, stops, unreachable dates."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from pgy_pipeline.model import Endpoint, Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.completeness import series_gaps
from pgy_pipeline_tests.support.simulator import client_for
from pgy_pipeline_tests.support.warehouse import fetch_log_outcomes, stored, track


def test_partition_loads_both_series_for_every_kol_and_rerun_bills_nothing(
    engine: Engine, sim_today: Simulator, yesterday: date
) -> None:
    kols = track(engine, 3)
    with client_for(sim_today) as client:
        report = run_range(engine, client, yesterday, yesterday, run_id="r1")
    assert report.problems == []
    assert (report.calls_ok, report.calls_failed, report.calls_not_attempted) == (6, 0, 0)
    assert report.plan.window_days == 30
    assert report.rows_inserted == 3 * 2 * 30  # the whole 30-day window lands, not only the partition
    assert (report.kols_requested, report.kols_complete) == (3, 3)
    assert report.api_codes == {"0": 6}
    rows = stored(engine, yesterday, yesterday)
    for k in kols:
        for s in Series:
            assert rows[(k, yesterday, s.value)] == sim_today.truth(k, s, yesterday)

    billed = sim_today.billed_calls
    with client_for(sim_today) as client:
        again = run_range(engine, client, yesterday, yesterday, run_id="r2")
    assert sim_today.billed_calls == billed  # rerun of a complete partition bills 0
    assert (again.plan.skipped, again.calls_ok, again.problems) == (6, 0, [])

    with client_for(sim_today) as client:
        forced = run_range(engine, client, yesterday, yesterday, run_id="r3", force=True)
    assert sim_today.billed_calls == billed + 6
    assert (forced.rows_inserted, forced.rows_updated, forced.rows_unchanged) == (0, 0, 180)


def test_steady_state_daily_run_bills_two_calls_per_kol(
    engine: Engine, sim_today: Simulator, today: date, yesterday: date
) -> None:
    track(engine, 4)
    with client_for(sim_today) as client:
        run_range(engine, client, yesterday - timedelta(days=9), yesterday, run_id="backfill")
    tomorrow = today + timedelta(days=1)
    sim_today.set_today(tomorrow)
    before = sim_today.billed_calls
    with client_for(sim_today) as client:
        report = run_range(engine, client, today, today, run_id="daily", today=tomorrow)
    assert sim_today.billed_calls - before == 2 * 4
    assert report.rows_inserted == 4 * 2  # only the new date is new; the other 29 days are unchanged
    assert report.problems == []


def test_range_of_ten_days_in_one_run_uses_one_window(engine: Engine, sim_today: Simulator, yesterday: date) -> None:
    kols = track(engine, 2)
    start = yesterday - timedelta(days=39)  # 40 days back: legacy needs its 60-day window
    with client_for(sim_today) as client:
        report = run_range(engine, client, start, start + timedelta(days=9), run_id="r", chunk_calls=3)
    assert (report.plan.days_wanted, report.plan.window_days, report.calls_ok) == (40, 60, 4)
    assert report.problems == []
    assert len(stored(engine, start, start + timedelta(days=9))) == 2 * 2 * 10
    assert series_gaps(engine, yesterday) == []
    assert kols


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("code_100", "token"),
        ("code_303", "quota"),
        ("code_600", "permission"),
        ("code_601", "balance"),
    ],
)
def test_stop_condition_keeps_what_was_fetched_and_says_why(
    engine: Engine, sim_today: Simulator, fault: str, words: str, yesterday: date
) -> None:
    kols = track(engine, 3)
    sim_today.inject(kols[1], fault)
    with client_for(sim_today, concurrency=1) as client:
        report = run_range(engine, client, yesterday, yesterday, run_id="stop")
    assert report.stop is not None
    assert report.problems[0].startswith("The API stopped the run:")
    assert words in report.problems[0].lower()
    assert sim_today.token not in " ".join(report.problems)
    # The lag probe (total fans of the first two KOLs) goes first: the first KOL's call is in, the second stops.
    assert report.calls_ok == 1
    assert report.calls_not_attempted >= 4  # the rest was never asked for
    rows = stored(engine, yesterday, yesterday)
    assert {k for k, _, _ in rows} == {kols[0]}
    assert fetch_log_outcomes(engine).get("stopped", 0) >= 1

    sim_today.clear_faults()
    billed = sim_today.billed_calls
    with client_for(sim_today) as client:
        resumed = run_range(engine, client, yesterday, yesterday, run_id="resume")
    assert resumed.problems == []
    assert sim_today.billed_calls - billed == 5  # only the five calls not fetched before: no re-billing
    assert len(stored(engine, yesterday, yesterday)) == 6


def test_dates_out_of_reach_are_named_while_the_rest_loads(
    engine: Engine, sim_today: Simulator, yesterday: date
) -> None:
    track(engine, 1)
    start = yesterday - timedelta(days=61)  # 62 days back, legacy serves 60
    with client_for(sim_today) as client:
        report = run_range(engine, client, start, yesterday, run_id="old")
    assert report.out_of_reach_missing == [start, start + timedelta(days=1)]
    assert len(report.problems) == 1
    assert f"2 date(s) {start}..{start + timedelta(days=1)} are older than the 60 days" in report.problems[0]
    assert len(stored(engine, start, yesterday)) == 2 * 60


def test_current_endpoint_reaches_ninety_days(engine: Engine, sim_today: Simulator, yesterday: date) -> None:
    track(engine, 1)
    start = yesterday - timedelta(days=80)
    with client_for(sim_today, endpoint=Endpoint.CURRENT) as client:
        report = run_range(engine, client, start, start, run_id="cur")
    assert (report.plan.window_days, report.problems) == (90, [])
    assert len(stored(engine, start, start)) == 2


def test_unknown_kol_is_flagged_not_incomplete_and_failed_calls_fail_the_run(
    engine: Engine, sim_today: Simulator, yesterday: date
) -> None:
    kols = track(engine, 3)
    sim_today.inject(kols[0], "code_201")
    sim_today.inject(kols[1], "code_500")
    with client_for(sim_today) as client:
        report = run_range(engine, client, yesterday, yesterday, run_id="mixed")
    assert report.not_served.keys() == {kols[0]}
    assert report.failing == {kols[1]} and report.health.failing == {kols[1]: 1}
    assert {f.kol_id for f in report.failed_calls} == {kols[0], kols[1]}
    assert report.kols_complete == 1
    assert "1 KOL(s) failed after retries" in report.problems[0]
    assert report.api_codes["201"] == 2 and report.api_codes["500"] == 4  # 2 attempts per failed call

    sim_today.clear_faults()
    billed = sim_today.billed_calls
    with client_for(sim_today) as client:
        rerun = run_range(engine, client, yesterday, yesterday, run_id="rerun")
    assert sim_today.billed_calls - billed == 2  # the failed KOL only; the 201 KOL is not billed again for this range
    assert rerun.problems == []
