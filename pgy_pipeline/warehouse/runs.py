"""The warehouse questions a run and its asset checks ask: who to fetch, what is already in hand, what is missing.

Answers come from the warehouse itself (`kol_fans_trend`, `fetch_log`, `tracked_kol`), never from
Dagster's event log, so a rerun, a CLI run and a UI backfill all agree on what "done" means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine, text

from pgy_pipeline.model import Outcome, Series

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


def fetched_pairs(engine: Engine, kol_ids: Sequence[str], start: date, end: date) -> set[tuple[str, Series]]:
    """(KOL, series) whose data for start..end is already in hand, so a rerun need not bill them again.

    In hand means: every date of the range is stored, or recorded as not served (a successful window
    covered it and the API left it out; calling again would not bring it), or the API said "no such
    KOL" (201, billed) for a run over this very range.

    Both tables are written by the load's own transaction, so a run killed (or cut off from Postgres)
    inside the load leaves nothing that counts as in hand, and a row deleted afterwards is fetched again.
    """
    if not kol_ids:
        return set()
    sql = """
        select kol_id, increase_type from (
            select kol_id, increase_type from pgy.kol_fans_trend
             where kol_id = any(:ids) and date_key between :start and :end
            union all
            select kol_id, increase_type from pgy.kol_fans_not_served
             where kol_id = any(:ids) and date_key between :start and :end
        ) settled
         group by kol_id, increase_type having count(*) = :days
        union
        select kol_id, increase_type from pgy.fetch_log
         where kol_id = any(:ids) and is_final and outcome = :no_content
           and partition_start <= :start and partition_end >= :end
    """
    params = {
        "ids": list(kol_ids),
        "start": start,
        "end": end,
        "days": (end - start).days + 1,
        "no_content": Outcome.NO_CONTENT.value,
    }
    with engine.connect() as conn:
        return {(k, Series(s)) for k, s in conn.execute(text(sql), params)}


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


def missing_dates(engine: Engine, kol_ids: Sequence[str], start: date, end: date) -> dict[str, list[date]]:
    """Per KOL, the dates in start..end where a series is neither stored nor recorded as not served by the API.

    KOLs with nothing missing are left out. A not-served date (pgy.kol_fans_not_served) is settled: asking
    the API again would not bring it, so it never makes a partition incomplete.
    """
    if not kol_ids or end < start:
        return {}
    sql = """
        select k.kol_id, d.day::date
          from unnest(cast(:ids as text[])) as k(kol_id)
         cross join generate_series(cast(:start as date), cast(:end as date), interval '1 day') as d(day)
         where (select count(*) from pgy.kol_fans_trend t where t.kol_id = k.kol_id and t.date_key = d.day::date)
             + (select count(*) from pgy.kol_fans_not_served n where n.kol_id = k.kol_id and n.date_key = d.day::date)
               < 2
         order by k.kol_id, d.day
    """
    out: dict[str, list[date]] = {}
    with engine.connect() as conn:
        for kol_id, day in conn.execute(text(sql), {"ids": list(kol_ids), "start": start, "end": end}):
            out.setdefault(kol_id, []).append(day)
    return out


def stored_rows(engine: Engine, start: date, end: date) -> int:
    """Rows in pgy.kol_fans_trend for dates start..end (every KOL, both series): what the partitions hold."""
    with engine.connect() as conn:
        sql = "select count(*) from pgy.kol_fans_trend where date_key between :start and :end"
        return int(conn.scalar(text(sql), {"start": start, "end": end}) or 0)


@dataclass(frozen=True)
class SeriesGap:
    """Dates missing inside one KOL series' stored span (a hole, not staleness)."""

    kol_id: str
    increase_type: str
    missing: int
    first_missing: date


def series_gaps(engine: Engine, as_of: date, days: int = 60) -> list[SeriesGap]:
    """Holes in each active KOL's series over the `days` days ending `as_of`.

    A hole is a date missing between the first and last date the series has in that span; a series
    that merely stops early is the freshness check's business, not this one's. A date the API covered
    but does not serve (pgy.kol_fans_not_served) is settled, not a hole: no backfill would fill it.
    """
    # A series has a hole exactly when its span (first..last settled date) is longer than its settled
    # dates; that is one aggregate per series. Only such series (normally none) are walked date by date.
    sql = """
        with settled as (
            select kol_id, increase_type, date_key from pgy.kol_fans_trend where date_key between :lo and :hi
            union all
            select kol_id, increase_type, date_key from pgy.kol_fans_not_served where date_key between :lo and :hi
        ),
        holed as (
            select s.kol_id, s.increase_type
              from settled s join pgy.tracked_kol k on k.kol_id = s.kol_id and k.active
             group by s.kol_id, s.increase_type
            having max(s.date_key) - min(s.date_key) + 1 <> count(*)
        ),
        t as (
            select s.kol_id, s.increase_type, s.date_key,
                   lead(s.date_key) over (partition by s.kol_id, s.increase_type order by s.date_key) as next_key
              from settled s join holed h on h.kol_id = s.kol_id and h.increase_type = s.increase_type
        )
        select kol_id, increase_type, sum(next_key - date_key - 1)::int, min(date_key + 1)
          from t where next_key - date_key > 1
         group by kol_id, increase_type order by kol_id, increase_type
    """
    params = {"lo": as_of - timedelta(days=days - 1), "hi": as_of}
    with engine.connect() as conn:
        return [SeriesGap(*row) for row in conn.execute(text(sql), params)]


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


def stale_kols(engine: Engine, as_of: date, max_age_days: int = 2) -> list[tuple[str, date | None]]:
    """Active, unflagged KOLs whose newest settled date is older than `as_of - max_age_days` (or who have none).

    Settled: stored, or covered by a successful window that did not contain it (not served): a KOL the
    API answers for every day is being fetched, whatever the platform has for it.
    """
    # Newest date per (KOL, series) is one backward index probe on the key; no history is read.
    sql = f"""
        select k.kol_id, newest.day
          from pgy.tracked_kol k
         cross join lateral (
                select max(d) as day from unnest(array{SERIES_SQL.replace("(", "[").replace(")", "]")}) as s(series)
                 cross join lateral (values
                     ((select t.date_key from pgy.kol_fans_trend t
                        where t.kol_id = k.kol_id and t.increase_type = s.series
                        order by t.date_key desc limit 1)),
                     ((select n.date_key from pgy.kol_fans_not_served n
                        where n.kol_id = k.kol_id and n.increase_type = s.series
                        order by n.date_key desc limit 1))
                 ) as v(d)
         ) as newest
         where k.active and k.last_error_at is null
           and (newest.day is null or newest.day < :oldest)
         order by k.kol_id
    """
    with engine.connect() as conn:
        return [(k, d) for k, d in conn.execute(text(sql), {"oldest": as_of - timedelta(days=max_age_days)})]


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
