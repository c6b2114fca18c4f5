"""Which API calls a run over partition dates D1..D2 makes: the smallest window that reaches back to D1.

The API only answers "the last N days ending at China-yesterday", so the window size is fixed by how
far back D1 lies from the latest date the API serves, not by the range length. Dates older than the
largest window cannot be fetched at all; they are reported (never silently dropped) so the run can
fail naming them while everything reachable still loads.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pgy_pipeline.api.endpoints import max_window_days, window_for
from pgy_pipeline.china_time import latest_served_date
from pgy_pipeline.model import CallRequest, Endpoint, Series


def date_range(start: date, end: date) -> list[date]:
    """Every date from start to end inclusive (empty when end < start)."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


@dataclass(frozen=True)
class Plan:
    """The calls for one run, and what about the requested range cannot be served."""

    start: date  # requested first date (D1)
    end: date  # requested last date (D2)
    latest: date  # newest date the API serves today
    endpoint: Endpoint
    days_wanted: int  # days back from `latest` the window must reach (capped at the largest window)
    window_days: int  # the window every call requests
    kol_ids: tuple[str, ...]  # KOLs in scope (active, and named if the run names any)
    requests: tuple[CallRequest, ...]  # calls to make, KOL by KOL, both series
    skipped: int  # (KOL, series) pairs already fetched for the range and not forced
    out_of_reach: tuple[date, ...]  # requested dates older than the largest window reaches
    not_yet_served: tuple[date, ...]  # requested dates after `latest` (the API has no data for them yet)


def oldest_reachable_date(today: date, endpoint: Endpoint) -> date:
    """The oldest date the largest window of `endpoint` reaches on `today`; anything older is lost for good."""
    return latest_served_date(today) - timedelta(days=max_window_days(endpoint) - 1)


def reachable_range(start: date, end: date, *, endpoint: Endpoint, today: date) -> tuple[date, date] | None:
    """The part of start..end the API can serve on `today` (None when nothing of it is)."""
    latest = latest_served_date(today)
    lo = max(start, oldest_reachable_date(today, endpoint))
    hi = min(end, latest)
    return (lo, hi) if lo <= hi else None


def make_plan(
    kol_ids: Sequence[str],
    start: date,
    end: date,
    *,
    endpoint: Endpoint,
    today: date,
    already_fetched: Collection[tuple[str, Series]] = (),
    force: bool = False,
    widest_for: Collection[str] = (),
) -> Plan:
    """Plan the calls for `kol_ids` over start..end as seen on `today` (China date).

    `already_fetched` are the (KOL, series) pairs whose data for the range is already in hand; they are
    skipped unless `force`, so rerunning a partition bills nothing for what succeeded before.
    KOLs of `widest_for` (quarantined ones) ask for the largest window, so the call that brings one back
    also fills its gap as far back as the API still serves it.
    """
    if end < start:
        raise ValueError(f"partition range ends ({end}) before it starts ({start})")
    latest = latest_served_date(today)
    largest = max_window_days(endpoint)
    oldest_reachable = latest - timedelta(days=largest - 1)
    days_wanted = min(largest, max(1, (latest - start).days + 1))
    requests: list[CallRequest] = []
    skipped = 0
    if start <= latest and end >= oldest_reachable:
        for kol_id in kol_ids:
            for series in Series:
                if not force and (kol_id, series) in already_fetched:
                    skipped += 1
                else:
                    requests.append(CallRequest(kol_id, series, largest if kol_id in widest_for else days_wanted))
    return Plan(
        start=start,
        end=end,
        latest=latest,
        endpoint=endpoint,
        days_wanted=days_wanted,
        window_days=window_for(endpoint, days_wanted),
        kol_ids=tuple(kol_ids),
        requests=tuple(requests),
        skipped=skipped,
        out_of_reach=tuple(d for d in date_range(start, end) if d < oldest_reachable),
        not_yet_served=tuple(d for d in date_range(start, end) if d > latest),
    )
