"""Least-privilege roles with real LOGIN roles: the pipeline's login (pgy_etl) runs partitions through
run_range and Dagster and manages KOLs without any DDL right, an analyst's login (pgy_reader) gets `status`,
and on an outdated schema the pipeline's login is told, in one sentence, that the owner must upgrade."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, materialize
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from pgy_pipeline.cli import main
from pgy_pipeline.defs.anomaly import kol_fans_anomaly
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.model import Series, TrendPoint
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline.warehouse.migrate import MigrationError, shipped_sql_dir, upgrade
from pgy_pipeline_tests.support.dagster import dagster_resources
from pgy_pipeline_tests.support.db import fresh_database, libpq_url, login_role
from pgy_pipeline_tests.support.simulator import client_for, kol_id
from pgy_pipeline_tests.support.warehouse import stored, track

_ONE_CALL = """
INSERT INTO pgy.fetch_log (kol_id, increase_type, endpoint, window_days, days_wanted, attempt, outcome, is_final)
VALUES ('k', 'total_fans', 'legacy_v1', 30, 30, 1, 'ok', true) RETURNING id
"""
_ITS_TRAIL = (
    "INSERT INTO pgy.raw_response (fetch_log_id, body_text) VALUES (:i, 'x')",
    "INSERT INTO pgy.fetch_log_loaded (fetch_log_id) VALUES (:i)",
    "INSERT INTO pgy.kol_fans_trend_revision (kol_id, date_key, increase_type, old_num, new_num, fetch_log_id) "
    "VALUES ('k', '2026-01-01', 'total_fans', 1, 2, :i)",
)
AUDIT_TABLES = ("pgy.kol_fans_trend_revision", "pgy.fetch_log", "pgy.fetch_log_loaded", "pgy.raw_response")
OWNER_MUST_UPGRADE = r"schema is behind this version.*the schema owner must run `pgy-pipeline db upgrade`$"


@pytest.fixture
def etl_url(admin_url: str, database_url: str, engine: Engine) -> Iterator[str]:
    """A login of its own in pgy_etl, on the test's database migrated by its owner (`engine`)."""
    with login_role(admin_url, database_url, "pgy_etl") as url:
        yield url


@pytest.fixture
def reader_url(admin_url: str, database_url: str, engine: Engine) -> Iterator[str]:
    """A login of its own in pgy_reader (an analyst), on the migrated test database."""
    with login_role(admin_url, database_url, "pgy_reader") as url:
        yield url


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("PGY_DATABASE_URL", url)
    return main(list(argv))


@pytest.fixture
def login_engine() -> Iterator[list[Engine]]:
    """Engines made by a test on a login's URL, disposed before the login is dropped."""
    made: list[Engine] = []
    yield made
    for eng in made:
        eng.dispose()


def test_etl_login_runs_partitions_and_manages_kols_without_ddl(
    etl_url: str,
    sim_today: Simulator,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    yesterday: date,
    login_engine: list[Engine],
) -> None:
    kols = [kol_id(i) for i in range(3)]
    assert _cli(monkeypatch, etl_url, "kols", "add", *kols) == 0
    listing = tmp_path / "more.csv"
    listing.write_text(f"kol_id\n{kol_id(3)}\n")
    assert _cli(monkeypatch, etl_url, "kols", "import", str(listing)) == 0
    assert _cli(monkeypatch, etl_url, "kols", "remove", kol_id(3)) == 0
    assert _cli(monkeypatch, etl_url, "kols", "list") == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[-3:]] == kols

    result = materialize(  # the daily run: the trend, then its anomalies (which replace their dates' rows)
        [kol_fans_trend, kol_fans_anomaly],
        resources=dagster_resources(sim_today, etl_url),
        instance=instance,
        partition_key=str(yesterday),
    )
    assert result.success
    assert sim_today.billed_calls == 6

    etl = create_engine(etl_url)
    login_engine.append(etl)
    with client_for(sim_today) as client:
        report = run_range(etl, client, yesterday, yesterday, run_id="etl-forced", force=True)
    assert (report.problems, report.calls_ok, report.rows_unchanged) == ([], 6, 180)
    assert len(stored(etl, yesterday, yesterday)) == 6

    assert _cli(monkeypatch, etl_url, "status", "--days", "1") == 0
    assert f"OK: yesterday ({yesterday}) is complete" in capsys.readouterr().out

    with psycopg.connect(libpq_url(etl_url), autocommit=True) as conn:  # DML only: no DDL, no history rewriting
        for statement in (
            "CREATE TABLE pgy.scratch (x int)",
            "CREATE SCHEMA IF NOT EXISTS pgy",
            "DROP TABLE pgy.fetch_log",
            "TRUNCATE pgy.kol_fans_trend",
            "DELETE FROM pgy.schema_migrations",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_the_etl_login_may_append_to_the_audit_trail_but_never_rewrite_it(
    etl_url: str, engine: Engine, table: str
) -> None:
    """pgy_etl reads and inserts (the run did, above), and is refused an UPDATE and a DELETE on every audit table,
    with a row present, so a refusal is the privilege and not an empty table."""
    track(engine, 1)
    with engine.begin() as conn:  # the owner writes one row of each audit table
        log_id = conn.scalar(text(_ONE_CALL))
        for sql in _ITS_TRAIL:
            conn.execute(text(sql), {"i": log_id})
    with psycopg.connect(libpq_url(etl_url), autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
        for statement in (f"UPDATE {table} SET fetch_log_id = fetch_log_id", f"DELETE FROM {table}"):
            if table == "pgy.fetch_log":
                statement = statement.replace("fetch_log_id = fetch_log_id", "outcome = 'ok'")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)


def test_the_etl_login_may_append_quarantine_events_but_never_rewrite_them(etl_url: str, engine: Engine) -> None:
    (kol,) = track(engine, 1)
    with psycopg.connect(libpq_url(etl_url), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO pgy.kol_quarantine_event (kol_id, event, on_date) VALUES (%s, 'entered', current_date)", (kol,)
        )
        for statement in ("UPDATE pgy.kol_quarantine_event SET event = 'left'", "DELETE FROM pgy.kol_quarantine_event"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM pgy.kol_quarantine_event").fetchone() == (1,)


def test_reader_login_gets_status_and_cannot_change_the_kols(
    engine: Engine,
    reader_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    yesterday: date,
) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pgy.tracked_kol (kol_id) VALUES (:k)"), {"k": kol_id(0)})
    load_points(engine, [TrendPoint(kol_id(0), yesterday, s.value, 10) for s in Series])

    assert _cli(monkeypatch, reader_url, "status", "--days", "1") == 0
    assert f"OK: yesterday ({yesterday}) is complete" in capsys.readouterr().out
    assert _cli(monkeypatch, reader_url, "status", "--json", "--days", "1") == 0
    capsys.readouterr()

    assert _cli(monkeypatch, reader_url, "kols", "add", kol_id(1)) == 1
    err = capsys.readouterr().err
    assert err.startswith("pgy-pipeline kols: The database login lacks a privilege this command needs")
    assert "permission denied for table tracked_kol" in err and "Traceback" not in err


def test_outdated_schema_tells_the_etl_login_that_the_owner_must_upgrade(
    engine: Engine,
    etl_url: str,
    sim_today: Simulator,
    instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    yesterday: date,
    login_engine: list[Engine],
) -> None:
    with engine.begin() as conn:  # as if this code shipped a migration the database has not had yet
        conn.execute(text("DELETE FROM pgy.schema_migrations WHERE name = '0016_etl_role.sql'"))
        conn.execute(text("INSERT INTO pgy.tracked_kol (kol_id) VALUES (:k)"), {"k": kol_id(0)})

    etl = create_engine(etl_url)
    login_engine.append(etl)
    with client_for(sim_today) as client, pytest.raises(MigrationError, match=OWNER_MUST_UPGRADE) as raised:
        run_range(etl, client, yesterday, yesterday, run_id="outdated")
    assert "0016_etl_role.sql" in str(raised.value) and "pgy_t_pgy_etl_" in str(raised.value)

    failed = materialize(
        [kol_fans_trend],
        resources=dagster_resources(sim_today, etl_url),
        instance=instance,
        partition_key=str(yesterday),
        raise_on_error=False,
    )
    assert not failed.success
    (event,) = [e for e in failed.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    info = event.step_failure_data.user_failure_data
    assert info is not None and "the schema owner must run `pgy-pipeline db upgrade`" in (info.description or "")
    assert sim_today.billed_calls == 0  # refused before any call
    capsys.readouterr()  # Dagster's own log lines

    for argv in (("kols", "list"), ("status",), ("db", "upgrade")):
        assert _cli(monkeypatch, etl_url, *argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"pgy-pipeline {argv[0]}: the warehouse schema is behind"), err
        assert err.rstrip().endswith("the schema owner must run `pgy-pipeline db upgrade`") and "Traceback" not in err

    assert upgrade(engine) == ["0016_etl_role.sql"]  # the owner upgrades; the pipeline's login works again
    assert _cli(monkeypatch, etl_url, "kols", "list") == 0


def test_an_owner_without_superuser_rights_upgrades_and_the_etl_login_works(
    admin_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented owner: a plain login with CREATE on its database (the group roles already exist on the
    server, created by a DBA or, here, by `engine`'s migration of another database)."""
    with login_role(admin_url, admin_url, None) as owner_server, fresh_database(admin_url) as db:
        name = make_url(db).database
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute(f'GRANT CREATE ON DATABASE "{name}" TO "{make_url(owner_server).username}"')
        owner = make_url(owner_server).set(database=name).render_as_string(hide_password=False)
        assert _cli(monkeypatch, owner, "db", "upgrade") == 0
        assert capsys.readouterr().out.startswith("applied ")
        with login_role(admin_url, db, "pgy_etl") as etl:
            assert _cli(monkeypatch, etl, "kols", "add", kol_id(0)) == 0
            assert _cli(monkeypatch, etl, "status", "--days", "1") == 1  # works; yesterday is not fetched yet
        with login_role(admin_url, db, "pgy_reader") as reader:
            assert _cli(monkeypatch, reader, "kols", "list") == 0
        assert kol_id(0) in capsys.readouterr().out


_OLD_FETCH_LOG_ROWS = """
INSERT INTO pgy.fetch_log (kol_id, increase_type, endpoint, window_days, days_wanted, attempt, outcome, is_final,
                           loaded)
VALUES ('old_loaded', 'total_fans', 'legacy_v1', 30, 30, 1, 'ok', true, true),
       ('old_cut_off', 'total_fans', 'legacy_v1', 30, 30, 1, 'ok', true, false),
       ('old_failed', 'total_fans', 'legacy_v1', 30, 30, 1, 'failed', true, false)
"""
_MARKED = """
SELECT f.kol_id FROM pgy.fetch_log f JOIN pgy.fetch_log_loaded l ON l.fetch_log_id = f.id ORDER BY f.id
"""


def test_a_deployed_warehouse_keeps_its_loaded_marks_and_the_logins_use_the_new_table(
    admin_url: str, sim_today: Simulator, tmp_path: Path, yesterday: date
) -> None:
    """A warehouse deployed while "loaded" was a pgy.fetch_log column, its roles set up long before: the owner's
    upgrade carries each mark over and drops the column, and the logins reach the table created after them."""
    before = tmp_path / "sql"
    shutil.copytree(str(shipped_sql_dir()), before)
    later = sorted(p.name for p in before.iterdir() if p.name[:4].isdigit() and p.name >= "0013")
    for name in later:  # the warehouse as deployed before 0013
        (before / name).unlink()
    with fresh_database(admin_url) as db:
        owner = make_engine(db)
        try:
            upgrade(owner, before)
            with owner.begin() as conn:
                conn.execute(text(_OLD_FETCH_LOG_ROWS))
            assert upgrade(owner) == later
            with owner.connect() as conn:
                assert list(conn.scalars(text(_MARKED))) == ["old_loaded"]
                columns = "select column_name from information_schema.columns where table_name = 'fetch_log'"
                assert "loaded" not in set(conn.scalars(text(columns)))
            (tracked,) = track(owner, 1)
            with login_role(admin_url, db, "pgy_etl") as etl_url:
                etl = create_engine(etl_url)
                try:
                    with client_for(sim_today) as client:
                        report = run_range(etl, client, yesterday, yesterday, run_id="after-upgrade")
                finally:
                    etl.dispose()
            assert report.problems == [] and sim_today.billed_calls == 2
            with owner.connect() as conn:
                assert list(conn.scalars(text(_MARKED))) == ["old_loaded", tracked, tracked]  # the run's two calls
            with login_role(admin_url, db, "pgy_reader") as reader_url:
                reader = create_engine(reader_url)
                try:
                    with reader.connect() as conn:
                        assert conn.scalar(text("select count(*) from pgy.fetch_log_loaded")) == 3
                        assert conn.scalar(text("select sum(calls_ok) from pgy.fetch_health")) == 4
                finally:
                    reader.dispose()
        finally:
            owner.dispose()
