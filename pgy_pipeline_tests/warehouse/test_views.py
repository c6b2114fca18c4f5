"""Analyst views and the read-only role, on a known dataset with hand-computed numbers."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.model import TrendPoint
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline_tests.support.db import libpq_url
from pgy_pipeline_tests.support.warehouse import query_rows

EXAMPLES = Path(__file__).resolve().parents[2] / "sql" / "examples"
START = date(2026, 1, 1)
DAYS = 100  # 2026-01-01 .. 2026-04-10


def _known_dataset(engine: Engine) -> None:
    """kol_a grows by exactly 10 a day from 1000 (new_fans = 10), except new_fans is missing on day 50;
    kol_b has only 5 days and a total that drops once; kol_c is tracked but never fetched."""
    add_kols(engine, ["kol_a", "kol_b", "kol_c"], label="test")
    points = []
    for i in range(DAYS):
        d = START + timedelta(days=i)
        points.append(TrendPoint("kol_a", d, "total_fans", 1000 + 10 * i))
        if i != 50:
            points.append(TrendPoint("kol_a", d, "new_fans", 10))
    for i, total in enumerate([500, 505, 503, 503, 510]):
        points.append(TrendPoint("kol_b", START + timedelta(days=i), "total_fans", total))
    load_points(engine, points)


def test_kol_daily_puts_both_series_side_by_side_with_the_change_of_totals(engine: Engine) -> None:
    _known_dataset(engine)
    rows = query_rows(engine, "SELECT * FROM pgy.kol_daily WHERE kol_id = 'kol_a' ORDER BY date_key")
    assert len(rows) == DAYS
    assert rows[0] == {"kol_id": "kol_a", "date_key": START, "total_fans": 1000, "new_fans": 10, "total_change": None}
    assert rows[1]["total_change"] == 10 and rows[1]["new_fans"] == 10
    assert rows[50]["new_fans"] is None and rows[50]["total_change"] == 10
    b = query_rows(
        engine, "SELECT total_fans, new_fans, total_change FROM pgy.kol_daily WHERE kol_id = 'kol_b' ORDER BY 1"
    )
    assert [
        r["total_change"]
        for r in query_rows(engine, "SELECT total_change FROM pgy.kol_daily WHERE kol_id = 'kol_b' ORDER BY date_key")
    ] == [None, 5, -2, 0, 7]
    assert all(r["new_fans"] is None for r in b)


def test_kol_latest_gives_growth_over_7_30_90_days(engine: Engine) -> None:
    _known_dataset(engine)
    rows = {r["kol_id"]: r for r in query_rows(engine, "SELECT * FROM pgy.kol_latest")}
    assert set(rows) == {"kol_a", "kol_b"}  # kol_c has no data yet
    a = rows["kol_a"]
    assert a["latest_date"] == date(2026, 4, 10) and a["total_fans"] == 1990
    assert a["tracked"] is True and a["label"] == "test"
    assert (a["growth_7d"], a["growth_30d"], a["growth_90d"]) == (70, 300, 900)
    assert a["growth_7d_rate"] == pytest.approx(70 / 1920)
    assert a["growth_30d_rate"] == pytest.approx(300 / 1690)
    assert a["growth_90d_rate"] == pytest.approx(900 / 1090)
    b = rows["kol_b"]
    assert b["latest_date"] == date(2026, 1, 5) and b["total_fans"] == 510
    assert b["growth_7d"] is None and b["growth_7d_rate"] is None


def test_fetch_health_counts_calls_codes_and_billing_per_china_day(engine: Engine) -> None:
    insert = """
        INSERT INTO pgy.fetch_log (fetched_at, kol_id, increase_type, endpoint, window_days, days_wanted,
                                   attempt, outcome, is_final, http_status, api_code, billed)
        VALUES (:at, :kol, :series, 'legacy_v1', 30, 1, :attempt, :outcome, :final, :http, :code, :billed)
    """
    # 2026-03-01 17:00 UTC is already 2026-03-02 01:00 in Shanghai: the view must count it on the 2nd.
    day1, day2 = "2026-03-01T02:00:00+00", "2026-03-01T17:00:00+00"
    rows = [
        (day1, "k1", "total_fans", 1, "ok", True, 200, 0, True),
        (day1, "k1", "new_fans", 1, "retry", False, 200, 301, False),
        (day1, "k1", "new_fans", 2, "ok", True, 200, 0, True),
        (day1, "k2", "total_fans", 1, "no_content", True, 200, 201, True),
        (day1, "k2", "new_fans", 1, "retry", False, 503, None, False),
        (day1, "k2", "new_fans", 2, "stopped", True, 200, 303, False),
        (day1, "k3", "total_fans", 0, "not_attempted", True, None, None, False),
        (day2, "k1", "total_fans", 1, "ok", True, 200, 0, True),
    ]
    with engine.begin() as conn:
        for at, kol, series, attempt, outcome, final, http, code, billed in rows:
            conn.execute(
                text(insert),
                dict(
                    at=at,
                    kol=kol,
                    series=series,
                    attempt=attempt,
                    outcome=outcome,
                    final=final,
                    http=http,
                    code=code,
                    billed=billed,
                ),
            )
    health = {r["fetch_date"]: r for r in query_rows(engine, "SELECT * FROM pgy.fetch_health")}
    d1 = health[date(2026, 3, 1)]
    assert (d1["calls"], d1["attempts"], d1["calls_ok"], d1["calls_failed"], d1["calls_not_attempted"]) == (
        5,
        6,
        2,
        2,
        1,
    )
    assert d1["billed_calls"] == 3
    assert d1["kols_called"] == 3 and d1["kols_complete"] == 1
    assert d1["codes"] == {"0": 2, "201": 1, "301": 1, "303": 1, "http_503": 1}
    d2 = health[date(2026, 3, 2)]
    assert (d2["calls"], d2["calls_ok"], d2["kols_complete"], d2["codes"]) == (1, 1, 0, {"0": 1})


def test_every_view_and_column_is_documented(engine: Engine) -> None:
    undocumented = query_rows(
        engine,
        """
        SELECT c.relname, a.attname
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = 'pgy' AND c.relkind = 'v' AND col_description(c.oid, a.attnum) IS NULL
        """,
    )
    assert undocumented == []
    views = query_rows(
        engine,
        "SELECT c.relname, obj_description(c.oid) AS d FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'pgy' AND c.relkind = 'v'",
    )
    assert {v["relname"] for v in views} >= {"kol_daily", "kol_latest", "fetch_health"}
    assert all(v["d"] for v in views)


def test_reader_role_can_select_everything_and_change_nothing(engine: Engine, database_url: str) -> None:
    _known_dataset(engine)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("SET ROLE pgy_reader")
        for relation in (
            "pgy.kol_fans_trend",
            "pgy.tracked_kol",
            "pgy.fetch_log",
            "pgy.fetch_log_loaded",
            "pgy.raw_response",
            "pgy.raw_body_pack",
            "pgy.raw_body",
            "pgy.kol_fans_trend_revision",
            "pgy.kol_daily",
            "pgy.kol_latest",
            "pgy.fetch_health",
        ):
            conn.execute(f"SELECT count(*) FROM {relation}").fetchone()
        refused = [
            "INSERT INTO pgy.tracked_kol (kol_id) VALUES ('intruder')",
            "UPDATE pgy.kol_fans_trend SET num = 0",
            "DELETE FROM pgy.fetch_log",
            "INSERT INTO pgy.fetch_log_loaded (fetch_log_id) VALUES (1)",
            "TRUNCATE pgy.kol_fans_trend",
            "CREATE TABLE pgy.scratch (x int)",
            "CREATE TABLE public.scratch (x int)",
            "CREATE VIEW pgy.v AS SELECT 1",
            "DROP VIEW pgy.kol_daily",
        ]
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert query_rows(engine, "SELECT count(*) AS n FROM pgy.tracked_kol")[0]["n"] == 3


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.sql")))
def test_example_queries_run_on_the_known_dataset(engine: Engine, example: str) -> None:
    _known_dataset(engine)
    with engine.connect() as conn:
        conn.execute(text((EXAMPLES / example).read_text())).fetchall()


def test_coverage_example_finds_the_missing_day(engine: Engine) -> None:
    _known_dataset(engine)
    rows = query_rows(engine, (EXAMPLES / "coverage_per_kol.sql").read_text())
    by_kol = {r["kol_id"]: r for r in rows}
    assert by_kol["kol_a"]["days_with_total"] == DAYS and by_kol["kol_a"]["days_with_new_fans"] == DAYS - 1
    assert by_kol["kol_c"]["first_date"] is None
