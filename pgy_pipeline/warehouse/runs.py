"""Warehouse questions about tracked KOLs and stored rows that are not about completeness.

Who is tracked and flagged, how many rows a range holds, where new fans disagree with total fans, which
KOLs were added since a sensor last looked. What counts as done lives in `warehouse/completeness.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine, text

from pgy_pipeline.model import Series

MAX_LISTED = 50  # details listed per question; counts are always complete
# Every series a row can have (the tables' CHECK constraints): naming them lets Postgres walk the key
# (kol_id, increase_type, date_key) as one index range per series instead of filtering a whole KOL.
SERIES_SQL = "(" + ", ".join(f"'{s.value}'" for s in Series) + ")"


def active_kol_ids(engine: Engine, only: Sequence[str] | None = None) -> list[str]:
    """Active tracked KOLs in id order; restricted to `only` when given (inactive/unknown names drop out)."""
    sql = "select kol_id from pgy.tracked_kol where active"
    params: dict[str, object] = {}
    if only is not None:
        sql += " and kol_id = any(:ids)"
        params["ids"] = list(only)
    with engine.connect() as conn:
        return list(conn.scalars(text(sql + " order by kol_id"), params))


def flagged_kols(engine: Engine, kol_ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
    """KOLs the API does not serve (flagged 201 no content / 400 invalid id) → (code, message)."""
    if not kol_ids:
        return {}
    sql = (
        "select kol_id, last_error_code, last_error_message from pgy.tracked_kol "
        "where kol_id = any(:ids) and last_error_at is not null"
    )
    with engine.connect() as conn:
        return {k: (c, m) for k, c, m in conn.execute(text(sql), {"ids": list(kol_ids)})}


def stored_rows(engine: Engine, start: date, end: date) -> int:
    """Rows in pgy.kol_fans_trend for dates start..end (every KOL, both series): what the partitions hold."""
    with engine.connect() as conn:
        sql = "select count(*) from pgy.kol_fans_trend where date_key between :start and :end"
        return int(conn.scalar(text(sql), {"start": start, "end": end}) or 0)


@dataclass(frozen=True)
class Inconsistency:
    """A date where new fans differ from the day-over-day change in total fans."""

    kol_id: str
    date_key: date
    new_fans: int
    total_delta: int


def inconsistencies(engine: Engine, as_of: date, days: int = 60) -> tuple[int, int, list[Inconsistency]]:
    """(dates compared, dates inconsistent, up to MAX_LISTED examples) for active KOLs over `days` days.

    Compared only where new[d], total[d] and total[d-1] all exist.
    """
    # Per active KOL, one index range over both series in the key's order (two descents, no join and no
    # whole-table sort, whatever the planner's statistics say), ordered by (date_key, increase_type) so
    # that before total_fans[d] come new_fans[d] and then total_fans[d-1], when they exist: two lags.
    sql = f"""
        with c as (
            select k.kol_id, w.date_key, w.n1 as new_fans, w.num - w.n2 as total_delta
              from pgy.tracked_kol k
             cross join lateral (
                select date_key, increase_type, num,
                       lag(increase_type) over o as t1, lag(date_key) over o as d1, lag(num) over o as n1,
                       lag(increase_type, 2) over o as t2, lag(date_key, 2) over o as d2, lag(num, 2) over o as n2
                  from pgy.kol_fans_trend t
                 where t.kol_id = k.kol_id and t.increase_type in {SERIES_SQL}
                   and t.date_key between cast(:lo as date) - 1 and :hi
                window o as (order by date_key, increase_type)
             ) w
             where k.active and w.increase_type = 'total_fans' and w.date_key >= :lo
               and w.t1 = 'new_fans' and w.d1 = w.date_key and w.t2 = 'total_fans' and w.d2 = w.date_key - 1
        )
        select count(*), count(*) filter (where new_fans <> total_delta),
               (select coalesce(json_agg(x), '[]') from (
                    select kol_id, date_key, new_fans, total_delta from c where new_fans <> total_delta
                     order by kol_id, date_key limit :cap) x)
          from c
    """
    params = {"lo": as_of - timedelta(days=days - 1), "hi": as_of, "cap": MAX_LISTED}
    with engine.connect() as conn:
        compared, bad, examples = conn.execute(text(sql), params).one()
    return (
        compared,
        bad,
        [
            Inconsistency(e["kol_id"], date.fromisoformat(e["date_key"]), e["new_fans"], e["total_delta"])
            for e in examples
        ],
    )


def kols_added_since(engine: Engine, since: str | None) -> tuple[list[str], str | None]:
    """Active KOLs whose `added_at` is after the ISO timestamp `since` (all when None), and the new cursor.

    The cursor is the newest `added_at` seen, as ISO text, so a sensor can resume where it left off.
    """
    sql = "select kol_id, added_at from pgy.tracked_kol where active"
    params: dict[str, object] = {}
    if since is not None:
        sql += " and added_at > cast(:since as timestamptz)"
        params["since"] = since
    with engine.connect() as conn:
        rows = conn.execute(text(sql + " order by added_at, kol_id"), params).all()
    return [k for k, _ in rows], (rows[-1][1].isoformat() if rows else since)
