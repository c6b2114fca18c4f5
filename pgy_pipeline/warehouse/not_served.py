"""Dates the API does not serve: covered by a successful window, absent from its answer.

Such a date will not arrive by asking again (a young account, or a hole on the platform), so the load records
it in `pgy.kol_fans_not_served` in the same transaction as the rows, and every "is this date done?" question
treats it as settled rather than missing. A later window that serves the date stores it and the row goes away.
See docs/completeness.md (how "not served" is recorded).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date

from sqlalchemy import Engine, text

from pgy_pipeline.warehouse.engine import PgConnection

# The calls of this load whose answer leaves a date of its window out: the only ones with dates to settle.
# Answers are de-duplicated, so an answer is gapless when its row count equals its span of dates, and it covers
# its window when it starts no later than the window's first date. Decided from the chunk's own fetch_log rows
# (primary-key look-ups), so the usual load (every window served in full) probes nothing in pgy.kol_fans_trend.
_GAPPED = """
SELECT f.id
  FROM pgy.fetch_log f
 WHERE f.id = ANY(%(ids)s) AND f.last_date_key IS NOT NULL
   AND (f.rows_received <> f.last_date_key - f.first_date_key + 1
        OR f.first_date_key > f.last_date_key - (f.window_days - 1))
"""

# A call that served its whole window: a not-served row of one of its dates is stored now (one range probe of
# the small not-served key per call, the trend table untouched).
_CLEAR_SERVED_SQL = """
DELETE FROM pgy.kol_fans_not_served n
 USING pgy.fetch_log f
 WHERE f.id = ANY(%(ids)s) AND NOT f.id = ANY(%(gapped)s) AND f.last_date_key IS NOT NULL
   AND n.kol_id = f.kol_id AND n.increase_type = f.increase_type
   AND n.date_key BETWEEN f.first_date_key AND f.last_date_key
"""

# A call with gaps: its series' not-served dates that are stored now go; every date of its window (N days ending
# at its last dateKey) that has no stored row is recorded. Probes pgy.kol_fans_trend only for these calls.
_CLEAR_GAPPED_SQL = """
DELETE FROM pgy.kol_fans_not_served n
 USING pgy.fetch_log f
 WHERE f.id = ANY(%(ids)s) AND n.kol_id = f.kol_id AND n.increase_type = f.increase_type
   AND EXISTS (SELECT 1 FROM pgy.kol_fans_trend t
                WHERE t.kol_id = n.kol_id AND t.increase_type = n.increase_type AND t.date_key = n.date_key)
"""

_RECORD_SQL = """
INSERT INTO pgy.kol_fans_not_served AS n (kol_id, increase_type, date_key, fetch_log_id)
SELECT f.kol_id, f.increase_type, d.day::date, f.id
  FROM pgy.fetch_log f
 CROSS JOIN LATERAL generate_series(f.last_date_key - (f.window_days - 1), f.last_date_key, interval '1 day') d(day)
 WHERE f.id = ANY(%(ids)s) AND f.last_date_key IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM pgy.kol_fans_trend t
                    WHERE t.kol_id = f.kol_id AND t.increase_type = f.increase_type AND t.date_key = d.day::date)
ON CONFLICT (kol_id, increase_type, date_key)
DO UPDATE SET fetch_log_id = excluded.fetch_log_id, last_seen_at = now()
"""


def record_not_served(conn: PgConnection, fetch_ids: Collection[int]) -> None:
    """Inside the load's transaction, after its rows are merged: settle the windows of these calls.

    The cost follows the chunk: calls whose answer fills their window clear their dates by one range probe of
    the not-served key; only calls that leave dates out probe pgy.kol_fans_trend, date by date."""
    if not fetch_ids:
        return
    ids = list(fetch_ids)
    gapped = [row[0] for row in conn.execute(_GAPPED, {"ids": ids})]
    conn.execute(_CLEAR_SERVED_SQL, {"ids": ids, "gapped": gapped})
    if gapped:
        conn.execute(_CLEAR_GAPPED_SQL, {"ids": gapped})
        conn.execute(_RECORD_SQL, {"ids": gapped})


def not_served_dates(engine: Engine, kol_ids: Sequence[str], start: date, end: date) -> dict[str, list[date]]:
    """Per KOL, the dates in start..end for which the API serves neither or only one series (sorted)."""
    if not kol_ids or end < start:
        return {}
    sql = """
        select distinct kol_id, date_key from pgy.kol_fans_not_served
         where kol_id = any(:ids) and date_key between :start and :end
         order by kol_id, date_key
    """
    out: dict[str, list[date]] = {}
    with engine.connect() as conn:
        for kol_id, day in conn.execute(text(sql), {"ids": list(kol_ids), "start": start, "end": end}):
            out.setdefault(kol_id, []).append(day)
    return out
