"""Both endpoints, their parameter spelling and the window choice."""

from __future__ import annotations

import pytest

from pgy_pipeline.api.endpoints import max_window_days, query_params, window_for
from pgy_pipeline.model import CallRequest, Endpoint, Outcome, Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline_tests.support.simulator import MakeClient, kol_id


@pytest.mark.parametrize(
    ("endpoint", "wanted", "window"),
    [
        (Endpoint.LEGACY_V1, 1, 30),
        (Endpoint.LEGACY_V1, 30, 30),
        (Endpoint.LEGACY_V1, 31, 60),
        (Endpoint.LEGACY_V1, 60, 60),
        (Endpoint.LEGACY_V1, 61, 60),
        (Endpoint.CURRENT, 30, 30),
        (Endpoint.CURRENT, 31, 90),
        (Endpoint.CURRENT, 90, 90),
        (Endpoint.CURRENT, 400, 90),
    ],
)
def test_the_smallest_covering_window_else_the_largest(endpoint: Endpoint, wanted: int, window: int) -> None:
    assert window_for(endpoint, wanted) == window


def test_max_window_days() -> None:
    assert max_window_days(Endpoint.LEGACY_V1) == 60
    assert max_window_days(Endpoint.CURRENT) == 90


def test_days_wanted_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        window_for(Endpoint.CURRENT, 0)


def test_parameter_spelling() -> None:
    assert query_params(Endpoint.LEGACY_V1, "k", Series.NEW_FANS, 60, accept_cache=False) == {
        "kolId": "k",
        "dateType": "_2",
        "increaseType": "_2",
        "acceptCache": "false",
    }
    assert query_params(Endpoint.CURRENT, "k", Series.TOTAL_FANS, 90, accept_cache=True) == {
        "userId": "k",
        "dateType": "DAY_90",
        "increaseType": "FANS_TOTAL",
    }


@pytest.mark.parametrize("series", list(Series))
def test_both_endpoints_give_the_same_rows(sim_fixed_date: Simulator, make_client: MakeClient, series: Series) -> None:
    kol = kol_id(11)
    legacy = make_client(Endpoint.LEGACY_V1).call(CallRequest(kol, series, 45))
    current = make_client(Endpoint.CURRENT).call(CallRequest(kol, series, 45))
    assert (legacy.outcome, legacy.window_days, len(legacy.points)) == (Outcome.OK, 60, 60)
    assert (current.outcome, current.window_days, len(current.points)) == (Outcome.OK, 90, 90)
    assert current.points[-60:] == legacy.points  # same normalised TrendPoints where the windows overlap
    assert legacy.points[-1].date_key == sim_fixed_date.latest_date
    assert {p.increase_type for p in legacy.points} == {series.value}
    assert [(c.endpoint, c.window_days, c.series) for c in sim_fixed_date.calls] == [
        (Endpoint.LEGACY_V1, 60, series),
        (Endpoint.CURRENT, 90, series),
    ]


def test_more_days_than_any_window_are_reported(make_client: MakeClient) -> None:
    result = make_client(Endpoint.LEGACY_V1).call(CallRequest(kol_id(12), Series.TOTAL_FANS, 75))
    assert result.window_days == 60 and len(result.points) == 60
    assert result.days_beyond_window == 15


def test_fans_num_inc_and_rate_are_kept(make_client: MakeClient) -> None:
    result = make_client().call(CallRequest(kol_id(13), Series.TOTAL_FANS, 30))
    first, last = result.points[0].num, result.points[-1].num
    assert result.fans_num_inc == last - first
    assert result.fans_num_inc_rate == pytest.approx((last - first) / first)
