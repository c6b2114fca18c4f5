"""Which calls a run over D1..D2 makes: the window reaching back to D1, skips, and unreachable dates."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pgy_pipeline.china_time import china_today
from pgy_pipeline.model import CallRequest, Endpoint, Series
from pgy_pipeline.plan import make_plan, reachable_range

TODAY = date(2026, 3, 10)
YESTERDAY = TODAY - timedelta(days=1)


def test_china_today_is_the_shanghai_calendar_date() -> None:
    assert china_today(datetime(2026, 3, 9, 16, 30, tzinfo=UTC)) == date(2026, 3, 10)
    assert china_today(datetime(2026, 3, 9, 15, 59, tzinfo=UTC)) == date(2026, 3, 9)


def test_daily_run_asks_both_series_with_the_smallest_window() -> None:
    plan = make_plan(["k1", "k2"], YESTERDAY, YESTERDAY, endpoint=Endpoint.LEGACY_V1, today=TODAY)
    assert plan.requests == (
        CallRequest("k1", Series.TOTAL_FANS, 1),
        CallRequest("k1", Series.NEW_FANS, 1),
        CallRequest("k2", Series.TOTAL_FANS, 1),
        CallRequest("k2", Series.NEW_FANS, 1),
    )
    assert (plan.window_days, plan.out_of_reach, plan.not_yet_served) == (30, (), ())


@pytest.mark.parametrize(
    ("endpoint", "days_back", "window"),
    [
        (Endpoint.LEGACY_V1, 30, 30),
        (Endpoint.LEGACY_V1, 31, 60),
        (Endpoint.CURRENT, 31, 90),
        (Endpoint.CURRENT, 90, 90),
    ],
)
def test_window_reaches_back_to_the_first_date(endpoint: Endpoint, days_back: int, window: int) -> None:
    start = YESTERDAY - timedelta(days=days_back - 1)
    plan = make_plan(["k1"], start, start + timedelta(days=2), endpoint=endpoint, today=TODAY)
    assert plan.days_wanted == days_back
    assert plan.window_days == window
    assert plan.out_of_reach == ()


def test_dates_older_than_the_largest_window_are_reported_and_the_rest_still_planned() -> None:
    start = YESTERDAY - timedelta(days=62)  # 63 days back; legacy serves 60
    plan = make_plan(["k1"], start, YESTERDAY, endpoint=Endpoint.LEGACY_V1, today=TODAY)
    assert plan.out_of_reach == (start, start + timedelta(days=1), start + timedelta(days=2))
    assert (plan.days_wanted, plan.window_days, len(plan.requests)) == (60, 60, 2)
    assert reachable_range(start, YESTERDAY, endpoint=Endpoint.LEGACY_V1, today=TODAY) == (
        start + timedelta(days=3),
        YESTERDAY,
    )


def test_nothing_reachable_means_no_calls() -> None:
    old = YESTERDAY - timedelta(days=100)
    plan = make_plan(["k1"], old, old, endpoint=Endpoint.CURRENT, today=TODAY)
    assert plan.requests == () and plan.out_of_reach == (old,)
    future = make_plan(["k1"], TODAY, TODAY, endpoint=Endpoint.CURRENT, today=TODAY)
    assert future.requests == () and future.not_yet_served == (TODAY,)


def test_already_fetched_pairs_are_skipped_unless_forced() -> None:
    done = {("k1", Series.TOTAL_FANS), ("k1", Series.NEW_FANS), ("k2", Series.NEW_FANS)}
    plan = make_plan(["k1", "k2"], YESTERDAY, YESTERDAY, endpoint=Endpoint.LEGACY_V1, today=TODAY, already_fetched=done)
    assert plan.requests == (CallRequest("k2", Series.TOTAL_FANS, 1),)
    assert plan.skipped == 3
    forced = make_plan(
        ["k1", "k2"], YESTERDAY, YESTERDAY, endpoint=Endpoint.LEGACY_V1, today=TODAY, already_fetched=done, force=True
    )
    assert (len(forced.requests), forced.skipped) == (4, 0)


def test_end_before_start_is_refused() -> None:
    with pytest.raises(ValueError, match="ends"):
        make_plan(["k1"], TODAY, YESTERDAY, endpoint=Endpoint.LEGACY_V1, today=TODAY)
