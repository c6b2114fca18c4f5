"""The test's warehouse: KOLs to track, and rows read back from it."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, text

from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline_tests.support.simulator import kol_ids


def track(engine: Engine, n: int, first: int = 0) -> list[str]:
    ids = kol_ids(n, first)
    add_kols(engine, ids)
    return ids


def stored(engine: Engine, start: date, end: date) -> dict[tuple[str, date, str], int]:
    """Warehouse rows for start..end as {(kol_id, date_key, increase_type): num}."""
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
