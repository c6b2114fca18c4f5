"""Dates the API does not serve: covered by a successful window, absent from its answer.

The API answers "the last N days ending at its newest date". A date inside that span that the answer
leaves out is not going to arrive by asking again: the account's history starts later (a young
account), or the platform has a hole. Such dates are recorded in `pgy.kol_fans_not_served` by the load
(same transaction as the rows), so every question "is this date done?" — a rerun's skip list, the
run's verdict, the asset checks, `pgy-pipeline status` — treats them as settled rather than missing.
A later window that does serve the date stores it normally and the not-served row goes away.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date

from sqlalchemy import Engine, text

from pgy_pipeline.warehouse.dbapi import PgConnection

# Every date of each call's window (N days ending at its last dateKey) that has no stored row.
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

# A date stored now (served by this or an earlier window) is no longer "not served".
_CLEAR_SQL = """
DELETE FROM pgy.kol_fans_not_served n
 USING pgy.fetch_log f
 WHERE f.id = ANY(%(ids)s) AND n.kol_id = f.kol_id AND n.increase_type = f.increase_type
   AND EXISTS (SELECT 1 FROM pgy.kol_fans_trend t
                WHERE t.kol_id = n.kol_id AND t.increase_type = n.increase_type AND t.date_key = n.date_key)
"""


def record_not_served(conn: PgConnection, fetch_ids: Collection[int]) -> None:
    """Inside the load's transaction, after its rows are merged: settle the windows of these calls."""
    if not fetch_ids:
        return
    params = {"ids": list(fetch_ids)}
    conn.execute(_CLEAR_SQL, params)
    conn.execute(_RECORD_SQL, params)


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
