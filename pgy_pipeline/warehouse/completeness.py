"""When a date is settled for a KOL: stored, or recorded as not served by the API, for both series."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text

from pgy_pipeline.warehouse.runs import SERIES_SQL

# Per served KOL and series, one index range on each table's key gives the settled dates' count and newest
# (the load keeps kol_fans_trend and kol_fans_not_served disjoint). Settled dates that are exactly
# first..newest lack nothing before newest + 1: the usual morning, where only the newest date is not in yet,
# costs no walk. Only a series with a hole is walked date by date. No scan of the whole date range.
_OLDEST_LACKING_SQL = f"""
WITH expected AS (  -- active KOLs the API serves: those it answered 201/400 for are flagged
    SELECT kol_id FROM pgy.tracked_kol WHERE active AND last_error_at IS NULL
),
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
        ELSE (SELECT min(d.day)  -- a hole: dates computed in dates, never timestamptz (any server TimeZone)
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
    """The oldest date in first..last that some active, unflagged KOL has neither stored nor recorded as not
    served (for either series); None when every such KOL has every date settled, or first > last."""
    if last < first:
        return None
    params = {"first": first, "last": last, "n": (last - first).days}
    with engine.connect() as conn:
        day: date | None = conn.scalar(text(_OLDEST_LACKING_SQL), params)
    return day
