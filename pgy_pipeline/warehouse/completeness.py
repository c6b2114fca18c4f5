"""When a date is settled for a KOL: stored, or recorded as not served by the API, for both series."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text

_OLDEST_LACKING_SQL = """
WITH expected AS (  -- active KOLs the API serves: those it answered 201/400 for are flagged
    SELECT kol_id FROM pgy.tracked_kol WHERE active AND last_error_at IS NULL
),
settled AS (  -- per date, how many expected KOLs have it settled in both series
    SELECT k.date_key, count(*) AS kols
      FROM (SELECT s.date_key, s.kol_id
              FROM (SELECT kol_id, increase_type, date_key FROM pgy.kol_fans_trend
                     WHERE date_key BETWEEN :first AND :last
                    UNION ALL
                    SELECT kol_id, increase_type, date_key FROM pgy.kol_fans_not_served
                     WHERE date_key BETWEEN :first AND :last) s
              JOIN expected USING (kol_id)
             GROUP BY s.date_key, s.kol_id
            HAVING count(DISTINCT s.increase_type) = 2) k
     GROUP BY k.date_key
),
days AS (  -- computed in dates, never timestamptz: right under any server TimeZone
    SELECT CAST(:first AS date) + i AS day FROM generate_series(0, :n) AS g(i)
)
SELECT min(days.day)
  FROM days LEFT JOIN settled s ON s.date_key = days.day
 WHERE coalesce(s.kols, 0) < (SELECT count(*) FROM expected)
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
