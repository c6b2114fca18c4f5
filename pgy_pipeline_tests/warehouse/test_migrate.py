"""The migration runner on real Postgres: idempotent, safe from two processes, and strict about history."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.model import Series, TrendPoint
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.load import LoadCounts, load_points
from pgy_pipeline.warehouse.migrate import (
    _RECORDED_BEFORE_COMMENT_EDITS,
    MigrationError,
    available,
    pending,
    shipped_sql_dir,
    upgrade,
)
from pgy_pipeline_tests.support.db import fresh_database, libpq_url

CONTRACT_TABLES = {"tracked_kol", "kol_fans_trend", "kol_fans_trend_revision", "fetch_log", "raw_response"}


def _recorded(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(text("select name from pgy.schema_migrations order by name")))


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(text("select table_name from information_schema.tables where table_schema = 'pgy'")))


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PGY_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "pgy_pipeline.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_upgrade_applies_every_file_once(bare_engine: Engine) -> None:
    names = [m.name for m in available()]
    assert upgrade(bare_engine) == names
    assert upgrade(bare_engine) == []  # second run: nothing to do
    assert _recorded(bare_engine) == names
    assert _tables(bare_engine) >= CONTRACT_TABLES


def test_contract_constraints(bare_engine: Engine) -> None:
    upgrade(bare_engine)
    with pytest.raises(Exception, match="kol_fans_trend_increase_type"), bare_engine.begin() as conn:
        conn.execute(text("insert into pgy.kol_fans_trend values ('k', '2026-01-01', 'followers', 1)"))
    with pytest.raises(Exception, match="not-null"), bare_engine.begin() as conn:
        conn.execute(text("insert into pgy.kol_fans_trend values ('k', '2026-01-01', 'new_fans', null)"))
    with pytest.raises(Exception, match="kol_fans_trend_pkey"), bare_engine.begin() as conn:
        conn.execute(text("insert into pgy.kol_fans_trend values ('k', '2026-01-01', 'new_fans', 1)"))
        conn.execute(text("insert into pgy.kol_fans_trend values ('k', '2026-01-01', 'new_fans', 2)"))


@pytest.mark.subprocess
def test_two_processes_upgrading_at_once_both_succeed(empty_database_url: str, bare_engine: Engine) -> None:
    env = {**os.environ, "PGY_DATABASE_URL": empty_database_url}
    command = [sys.executable, "-m", "pgy_pipeline.cli", "db", "upgrade"]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    stdout = sorted(out for out, _ in outputs)
    names = [m.name for m in available()]
    # One applied everything; the other waited on the advisory lock, then found nothing to do.
    assert stdout == sorted([f"applied {len(names)} migration(s): {', '.join(names)}\n", "schema up to date\n"])
    assert _recorded(bare_engine) == names


@pytest.mark.subprocess
def test_cli_upgrade_twice_creates_the_contract(empty_database_url: str, bare_engine: Engine) -> None:
    first = _cli(empty_database_url, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("applied ") and "0001_" in first.stdout
    second = _cli(empty_database_url, "db", "upgrade")
    assert (second.returncode, second.stdout) == (0, "schema up to date\n")
    assert _tables(bare_engine) >= CONTRACT_TABLES


@pytest.mark.subprocess
def test_database_with_an_unknown_migration_is_refused(empty_database_url: str, bare_engine: Engine) -> None:
    upgrade(bare_engine)
    with bare_engine.begin() as conn:
        conn.execute(
            text("insert into pgy.schema_migrations (name, checksum) values ('9999_from_the_future.sql', 'x')")
        )
    with pytest.raises(MigrationError, match=r"9999_from_the_future\.sql.*newer than this code.*Upgrade pgy-pipeline"):
        upgrade(bare_engine)
    result = _cli(empty_database_url, "db", "upgrade")
    assert result.returncode == 1
    assert "9999_from_the_future.sql" in result.stderr and "Traceback" not in result.stderr


def test_changed_applied_file_is_refused_and_nothing_applied(bare_engine: Engine, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(str(shipped_sql_dir()), sql_dir)  # installed on the file system
    first = sorted(sql_dir.glob("0001_*.sql"))[0]
    upgrade(bare_engine, sql_dir)
    first.write_text(first.read_text() + "\nCREATE INDEX edited_after_release ON pgy.tracked_kol (label);\n")
    (sql_dir / "9000_new.sql").write_text("CREATE TABLE pgy.should_not_exist (x int);\n")
    with pytest.raises(MigrationError, match=f"{first.name}.*changed after being applied.*new numbered file"):
        upgrade(bare_engine, sql_dir)
    assert "should_not_exist" not in _tables(bare_engine)


def test_comments_of_an_applied_file_may_be_corrected(bare_engine: Engine, tmp_path: Path) -> None:
    """A migration is what it executes: rewording its comments does not make deployed databases refuse it."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(str(shipped_sql_dir()), sql_dir)
    first = sorted(sql_dir.glob("0001_*.sql"))[0]
    upgrade(bare_engine, sql_dir)
    first.write_text("-- a reworded header\n\n" + first.read_text() + "\n-- and a note at the end\n")
    assert upgrade(bare_engine, sql_dir) == []


def test_databases_migrated_by_earlier_releases_are_accepted(bare_engine: Engine) -> None:
    """Earlier releases recorded the sha256 of the whole file; those records (also of files whose header
    comments were reworded since) still mean "applied, same statements"."""
    upgrade(bare_engine)
    with bare_engine.begin() as conn:
        for m in available():
            conn.execute(
                text("update pgy.schema_migrations set checksum = :c where name = :n"),
                {"c": _RECORDED_BEFORE_COMMENT_EDITS.get(m.name, m.file_checksum), "n": m.name},
            )
    assert upgrade(bare_engine) == []
    assert pending(bare_engine) == []


def test_failing_migration_is_rolled_back_and_retried_later(bare_engine: Engine, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(str(shipped_sql_dir()), sql_dir)  # installed on the file system
    broken = sql_dir / "9000_broken.sql"
    broken.write_text("CREATE TABLE pgy.half_done (x int);\nSELECT no_such_function();\n")
    with pytest.raises(MigrationError, match=r"9000_broken\.sql failed and was rolled back"):
        upgrade(bare_engine, sql_dir)
    assert "half_done" not in _tables(bare_engine)
    broken.write_text("CREATE TABLE pgy.half_done (x int);\n")
    assert upgrade(bare_engine, sql_dir) == ["9000_broken.sql"]


def test_missing_sql_directory_says_how_to_install(bare_engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"not found: reinstall pgy-pipeline \(pip install \."):
        upgrade(bare_engine, tmp_path / "nowhere")


@pytest.mark.embedded
def test_embedded_postgres_migrate_and_load_round_trip(embedded_admin_url: str) -> None:
    with fresh_database(embedded_admin_url) as url:
        engine = make_engine(url)
        try:
            assert upgrade(engine) == [m.name for m in available()]
            point = TrendPoint("5f0e8a1b2c3d4e5f6a7b8c9d", date(2026, 3, 1), Series.TOTAL_FANS.value, 1234)
            assert load_points(engine, [point]) == LoadCounts(1, 0, 0)
            assert load_points(engine, [point]) == LoadCounts(0, 0, 1)
            with psycopg.connect(libpq_url(url)) as conn:
                row = conn.execute("select kol_id, date_key, increase_type, num from pgy.kol_fans_trend").fetchall()
            assert row == [tuple(point)]
        finally:
            engine.dispose()
