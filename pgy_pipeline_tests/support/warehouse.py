"""The test's warehouse: KOLs to track, hand-built trend windows for the loader, and rows read back."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, text

from pgy_pipeline.model import Series, TrendPoint
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline_tests.support.simulator import kol_ids

LAST = date(2026, 3, 31)
KOL = "5f0e8a1b2c3d4e5f6a7b8c9d"
TOTAL, NEW = Series.TOTAL_FANS.value, Series.NEW_FANS.value


def value(kol_id: str, series: str, day: date) -> int:
    """A deterministic series: what the API would answer for that KOL, series and date."""
    base = sum(map(ord, kol_id)) * 100
    offset = (day - date(2026, 1, 1)).days
    return base + 7 * offset if series == TOTAL else (offset * 13 + base) % 11


def window(kol_id: str, series: str, days: int, last: date = LAST) -> list[TrendPoint]:
    """The API's answer: `days` consecutive dates ending at `last`, oldest first."""
    dates = [last - timedelta(days=days - 1 - i) for i in range(days)]
    return [TrendPoint(kol_id, d, series, value(kol_id, series, d)) for d in dates]


def track(engine: Engine, n: int, first: int = 0) -> list[str]:
    ids = kol_ids(n, first)
    add_kols(engine, ids)
    return ids


def stored(engine: Engine, start: date = date.min, end: date = date.max) -> dict[tuple[str, date, str], int]:
    """Warehouse rows for start..end (every row by default) as {(kol_id, date_key, increase_type): num}."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select kol_id, date_key, increase_type, num from pgy.kol_fans_trend where date_key between :s and :e"
            ),
            {"s": start, "e": end},
        )
        return {(k, d, t): n for k, d, t, n in rows}


def fetch_log_outcomes(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("select outcome, count(*) from pgy.fetch_log group by outcome"))
        return {o: n for o, n in rows}


def query_rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of `sql` as dicts, column name to value."""
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), params)]
