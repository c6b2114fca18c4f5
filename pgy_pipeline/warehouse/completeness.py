"""What "done" means for a date, in one place: which KOLs are expected, which dates are settled, what is lacking.

A KOL is expected when it is active, served by the API and not quarantined; a (KOL, series, date) is settled
when it is stored or recorded as not served; a date is lacking for an expected KOL until both series are
settled. The run's verdict, `pgy-pipeline status`, the asset checks and the schedule's healing range all ask
these functions (or embed these SQL fragments), so they cannot disagree. See docs/completeness.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Connection, Engine, text

from pgy_pipeline.model import Outcome, Series

# Active KOLs the API serves that are not quarantined: the KOLs whose dates make a partition complete.
# Every series a row can have (the tables' CHECK constraints): naming them lets Postgres walk the key
# (kol_id, increase_type, date_key) as one index range per series instead of filtering a whole KOL.
SERIES_SQL = "(" + ", ".join(f"'{s.value}'" for s in Series) + ")"

EXPECTED_SQL = """
    SELECT k.kol_id FROM pgy.tracked_kol k
     WHERE k.active AND k.last_error_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM pgy.kol_health h WHERE h.kol_id = k.kol_id AND h.quarantined_since IS NOT NULL)
"""

# Every settled (KOL, series, date) between :start and :end.
SETTLED_SQL = """
    SELECT kol_id, increase_type, date_key FROM pgy.kol_fans_trend WHERE date_key BETWEEN :start AND :end
    UNION ALL
    SELECT kol_id, increase_type, date_key FROM pgy.kol_fans_not_served WHERE date_key BETWEEN :start AND :end
"""

# The dates :start..:end as a table `days(day)`, computed in dates.
DAYS_SQL = "SELECT CAST(:start AS date) + i AS day FROM generate_series(0, CAST(:end AS date) - CAST(:start AS date)) i"

_LACKING_SQL = """
    WITH expected AS ({kols}),
    days AS ({days}),
    settled AS (
        SELECT s.kol_id, s.date_key FROM ({settled}) s JOIN expected USING (kol_id)
         GROUP BY s.kol_id, s.date_key HAVING count(*) = 2
    )
    SELECT e.kol_id, d.day
      FROM expected e CROSS JOIN days d
     WHERE NOT EXISTS (SELECT 1 FROM settled s WHERE s.kol_id = e.kol_id AND s.date_key = d.day)
     ORDER BY e.kol_id, d.day
"""


def _quiet(conn: Connection) -> None:
    # These are one short query each; JIT compilation would cost more than it saves on a big KOL set.
    conn.execute(text("SET LOCAL jit = off"))


def expected_count(engine: Engine) -> int:
    """How many KOLs are expected (active, served, not quarantined)."""
    with engine.connect() as conn:
        return int(conn.scalar(text(f"SELECT count(*) FROM ({EXPECTED_SQL}) e")) or 0)


def lacking(
    engine: Engine, start: date, end: date, kol_ids: Sequence[str] | None = None, *, expected_only: bool = True
) -> dict[str, list[date]]:
    """Per expected KOL (all, or those of `kol_ids`), the dates of start..end not settled for both series.

    With `expected_only=False`, the KOLs of `kol_ids` whatever their state (flagged or quarantined too).
    KOLs lacking nothing are left out.
    """
    if end < start or (kol_ids is not None and not kol_ids):
        return {}
    kols = EXPECTED_SQL
    if kol_ids is not None:
        named = "SELECT kol_id FROM unnest(CAST(:ids AS text[])) AS k(kol_id)"
        kols = named if not expected_only else f"{EXPECTED_SQL} AND k.kol_id = ANY(CAST(:ids AS text[]))"
    out: dict[str, list[date]] = {}
    params = {"start": start, "end": end, "ids": None if kol_ids is None else list(kol_ids)}
    with engine.begin() as conn:
        _quiet(conn)
        sql = _LACKING_SQL.format(kols=kols, days=DAYS_SQL, settled=SETTLED_SQL)
        for kol_id, day in conn.execute(text(sql), params):
            out.setdefault(kol_id, []).append(day)
    return out


def complete_of(lacking_by_kol: Mapping[str, Sequence[date]], start: date, end: date) -> list[date]:
    """Dates of start..end that no KOL of `lacking_by_kol` (what `lacking` returned for them) lacks."""
    gaps = {d for days in lacking_by_kol.values() for d in days}
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if d not in gaps]


def complete_dates(engine: Engine, start: date, end: date) -> list[date]:
    """Dates of start..end that every expected KOL has settled: the partitions that are done."""
    return complete_of(lacking(engine, start, end), start, end)


# Per expected KOL and series, one index range on each table's key gives the settled dates' count and newest
# (the load keeps kol_fans_trend and kol_fans_not_served disjoint). Settled dates that are exactly
# first..newest lack nothing before newest + 1: the usual morning, where only the newest date is not in yet,
# costs no walk. Only a series with a hole is walked date by date. No scan of the whole date range.
_OLDEST_LACKING_SQL = f"""
WITH expected AS ({EXPECTED_SQL}),
series AS (
    SELECT e.kol_id, s.series, t.n + ns.n AS n, greatest(t.newest, ns.newest) AS newest
      FROM expected e
     CROSS JOIN unnest(ARRAY{SERIES_SQL.replace("(", "[").replace(")", "]")}) AS s(series)
     CROSS JOIN LATERAL (
            SELECT count(*) AS n, max(t.date_key) AS newest FROM pgy.kol_fans_trend t
             WHERE t.kol_id = e.kol_id AND t.increase_type = s.series AND t.date_key BETWEEN :first AND :last
     ) AS t
     CROSS JOIN LATERAL (
            SELECT count(*) AS n, max(n.date_key) AS newest FROM pgy.kol_fans_not_served n
             WHERE n.kol_id = e.kol_id AND n.increase_type = s.series AND n.date_key BETWEEN :first AND :last
     ) AS ns
)
SELECT min(CASE
        WHEN n = 0 THEN CAST(:first AS date)
        WHEN n = newest - CAST(:first AS date) + 1 THEN CASE WHEN newest < :last THEN newest + 1 END
        ELSE (SELECT min(d.day)  -- a hole: walk the series date by date
                FROM (SELECT CAST(:first AS date) + i AS day FROM generate_series(0, :n) AS g(i)) d
               WHERE NOT EXISTS (SELECT 1 FROM pgy.kol_fans_trend t
                                  WHERE t.kol_id = series.kol_id AND t.increase_type = series.series
                                    AND t.date_key = d.day)
                 AND NOT EXISTS (SELECT 1 FROM pgy.kol_fans_not_served n
                                  WHERE n.kol_id = series.kol_id AND n.increase_type = series.series
                                    AND n.date_key = d.day))
       END)
  FROM series
"""


def oldest_lacking(engine: Engine, first: date, last: date) -> date | None:
    """The oldest date of first..last that some expected KOL lacks (None when the range is complete)."""
    if last < first:
        return None
    params = {"first": first, "last": last, "n": (last - first).days}
    with engine.begin() as conn:
        _quiet(conn)
        day: date | None = conn.scalar(text(_OLDEST_LACKING_SQL), params)
    return day


def settled_pairs(engine: Engine, kol_ids: Sequence[str], start: date, end: date) -> set[tuple[str, Series]]:
    """(KOL, series) whose data for start..end is already in hand, so a rerun need not bill them again.

    In hand means: every date of the range is settled, or the API said "no such KOL" (201, billed) for a
    run over this very range and the KOL is still flagged for it (a 201 from a run that was judged a
    systemic rejection flagged nobody, so it settles nothing).

    Both tables are written by the load's own transaction, so a run killed (or cut off from Postgres)
    inside the load leaves nothing that counts as in hand, and a row deleted afterwards is fetched again.
    """
    if not kol_ids:
        return set()
    sql = f"""
        SELECT kol_id, increase_type FROM ({SETTLED_SQL}) s
         WHERE kol_id = ANY(:ids)
         GROUP BY kol_id, increase_type HAVING count(*) = :days
        UNION
        SELECT f.kol_id, f.increase_type FROM pgy.fetch_log f JOIN pgy.tracked_kol k USING (kol_id)
         WHERE f.kol_id = ANY(:ids) AND f.is_final AND f.outcome = :no_content AND k.last_error_at IS NOT NULL
           AND f.partition_start <= :start AND f.partition_end >= :end
    """
    params = {
        "ids": list(kol_ids),
        "start": start,
        "end": end,
        "days": (end - start).days + 1,
        "no_content": Outcome.NO_CONTENT.value,
    }
    with engine.begin() as conn:
        _quiet(conn)
        return {(k, Series(s)) for k, s in conn.execute(text(sql), params)}


# Per KOL of `kols` (a query with a kol_id column), the newest date settled for both series, NULL when a series
# has none. Newest per (KOL, series) is one backward index probe on each table's key; no history is read.
_NEWEST_SQL = """
    SELECT k.kol_id, CASE WHEN count(v.day) = {n_series} THEN min(v.day) END AS newest
      FROM ({kols}) k
     CROSS JOIN unnest({series}) s(series)
     CROSS JOIN LATERAL (SELECT greatest(
            (SELECT t.date_key FROM pgy.kol_fans_trend t WHERE t.kol_id = k.kol_id AND t.increase_type = s.series
              ORDER BY t.date_key DESC LIMIT 1),
            (SELECT n.date_key FROM pgy.kol_fans_not_served n
              WHERE n.kol_id = k.kol_id AND n.increase_type = s.series ORDER BY n.date_key DESC LIMIT 1)) AS day
     ) v
     GROUP BY k.kol_id
"""


def _newest_sql(kols: str) -> str:
    series = "ARRAY[" + ", ".join(f"'{s.value}'" for s in Series) + "]"
    return _NEWEST_SQL.format(kols=kols, series=series, n_series=len(Series))


def newest_settled(engine: Engine, kol_ids: Sequence[str]) -> dict[str, date]:
    """Per KOL, the newest date settled for both series (KOLs with none are left out)."""
    if not kol_ids:
        return {}
    sql = _newest_sql("SELECT kol_id FROM unnest(CAST(:ids AS text[])) AS u(kol_id)")
    with engine.connect() as conn:
        return {k: d for k, d in conn.execute(text(sql), {"ids": list(kol_ids)}) if d is not None}


def stale_kols(engine: Engine, as_of: date, max_age_days: int = 2) -> list[tuple[str, date | None]]:
    """Expected KOLs whose newest settled date is older than `as_of - max_age_days` (or who have none)."""
    sql = f"SELECT * FROM ({_newest_sql(EXPECTED_SQL)}) x WHERE newest IS NULL OR newest < :oldest ORDER BY kol_id"
    with engine.connect() as conn:
        return [(k, d) for k, d in conn.execute(text(sql), {"oldest": as_of - timedelta(days=max_age_days)})]


@dataclass(frozen=True)
class SeriesGap:
    """Dates missing inside one KOL series' stored span (a hole, not staleness)."""

    kol_id: str
    increase_type: str
    missing: int
    first_missing: date


def series_gaps(engine: Engine, as_of: date, days: int = 60) -> list[SeriesGap]:
    """Holes in each expected KOL's series over the `days` days ending `as_of`.

    A hole is a date missing between the first and last date the series has settled in that span; a
    series that merely stops early is the freshness check's business, not this one's.
    """
    # A series has a hole exactly when its span (first..last settled date) is longer than its settled
    # dates; that is one aggregate per series. Only such series (normally none) are walked date by date.
    sql = f"""
        WITH settled AS ({SETTLED_SQL}),
        holed AS (
            SELECT s.kol_id, s.increase_type
              FROM settled s JOIN ({EXPECTED_SQL}) e USING (kol_id)
             GROUP BY s.kol_id, s.increase_type
            HAVING max(s.date_key) - min(s.date_key) + 1 <> count(*)
        ),
        t AS (
            SELECT s.kol_id, s.increase_type, s.date_key,
                   lead(s.date_key) OVER (PARTITION BY s.kol_id, s.increase_type ORDER BY s.date_key) AS next_key
              FROM settled s JOIN holed h ON h.kol_id = s.kol_id AND h.increase_type = s.increase_type
        )
        SELECT kol_id, increase_type, sum(next_key - date_key - 1)::int, min(date_key + 1)
          FROM t WHERE next_key - date_key > 1
         GROUP BY kol_id, increase_type ORDER BY kol_id, increase_type
    """
    params = {"start": as_of - timedelta(days=days - 1), "end": as_of}
    with engine.begin() as conn:
        _quiet(conn)
        return [SeriesGap(*row) for row in conn.execute(text(sql), params)]


def stored_rows(engine: Engine, start: date, end: date) -> int:
    """Rows in pgy.kol_fans_trend for dates start..end (every KOL, both series): what the partitions hold."""
    with engine.connect() as conn:
        sql = "select count(*) from pgy.kol_fans_trend where date_key between :start and :end"
        return int(conn.scalar(text(sql), {"start": start, "end": end}) or 0)
