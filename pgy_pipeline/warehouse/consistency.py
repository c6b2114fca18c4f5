"""Where new fans disagree with the day-over-day change in total fans: the consistency check's question.

See docs/completeness.md (the checks) and docs/warehouse.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Engine, text

from pgy_pipeline.model import MAX_LISTED
from pgy_pipeline.warehouse.completeness import SERIES_SQL


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
