"""The two follower-trend paths, their parameter spelling, and which window to ask for.

Both endpoints serve the same series; only names and window sizes differ. Keeping that difference in
one table means everything downstream (parse, warehouse) sees one normalised shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgy_pipeline.model import Endpoint, Series


@dataclass(frozen=True)
class EndpointSpec:
    """How one endpoint spells a call: path, KOL parameter, window and series values."""

    path: str
    kol_param: str
    windows: dict[int, str]  # window days → dateType value, ascending
    series: dict[Series, str]  # series → increaseType value
    accepts_cache_flag: bool


LEGACY_V1_PATH = "/api/xiaohongshu-pgy/get-kol-fans-trend/v1"
CURRENT_PATH = "/api/xiaohongshu-pgy/api/solar/kol/data/userId/fans_overall_new_history/v1"

SPECS: dict[Endpoint, EndpointSpec] = {
    Endpoint.LEGACY_V1: EndpointSpec(
        path=LEGACY_V1_PATH,
        kol_param="kolId",
        windows={30: "_1", 60: "_2"},
        series={Series.TOTAL_FANS: "_1", Series.NEW_FANS: "_2"},
        accepts_cache_flag=True,
    ),
    Endpoint.CURRENT: EndpointSpec(
        path=CURRENT_PATH,
        kol_param="userId",
        windows={30: "DAY_30", 90: "DAY_90"},
        series={Series.TOTAL_FANS: "FANS_TOTAL", Series.NEW_FANS: "FANS_INCREASE"},
        accepts_cache_flag=False,
    ),
}


def max_window_days(endpoint: Endpoint) -> int:
    """The longest window the endpoint offers (legacy 60, current 90)."""
    return max(SPECS[endpoint].windows)


def window_for(endpoint: Endpoint, days_wanted: int) -> int:
    """The smallest window that covers `days_wanted`, else the largest.

    The smallest one keeps responses (and parse/load work) small; when even the largest is too
    short, the caller reports `CallResult.days_beyond_window` instead of silently truncating.
    """
    if days_wanted < 1:
        raise ValueError(f"days_wanted must be at least 1, got {days_wanted}")
    windows = sorted(SPECS[endpoint].windows)
    return next((w for w in windows if w >= days_wanted), windows[-1])


def query_params(
    endpoint: Endpoint, kol_id: str, series: Series, window_days: int, accept_cache: bool | None = None
) -> dict[str, str]:
    """The query parameters of one call, without the token (added at the last moment by the client)."""
    spec = SPECS[endpoint]
    params = {
        spec.kol_param: kol_id,
        "dateType": spec.windows[window_days],
        "increaseType": spec.series[series],
    }
    if accept_cache is not None and spec.accepts_cache_flag:
        params["acceptCache"] = "true" if accept_cache else "false"
    return params
