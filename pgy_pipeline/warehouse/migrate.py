"""Applying the numbered SQL files in `sql/` to the warehouse, once each, safely from many processes.

Plain SQL files rather than a migration framework: analysts and DBAs can read and run them with psql,
and the runner stays small enough to audit. Each file runs in its own transaction together with the row
that records it in `pgy.schema_migrations`, so a failed file leaves nothing half-applied and is retried
next time. A session-level advisory lock serialises concurrent runners (two Dagster runs starting at
once): the second one waits, then finds everything applied and does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import weakref
from pathlib import Path
from typing import NamedTuple

import psycopg
from sqlalchemy import Engine

from pgy_pipeline.warehouse.dbapi import PgConnection, psycopg_connection

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_FILE_RE = re.compile(r"(\d{4})_[0-9A-Za-z_]+\.sql")
# Arbitrary but fixed: "pgy-migrate" as a 64-bit advisory lock key shared by every runner.
MIGRATION_LOCK_KEY = 0x7067795F6D696772

_BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS pgy;
CREATE TABLE IF NOT EXISTS pgy.schema_migrations (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


class MigrationError(RuntimeError):
    """The database and this code disagree about the schema; the message says what to do."""


class Migration(NamedTuple):
    name: str  # file name, e.g. 0001_trend_tables.sql
    checksum: str  # sha256 of the file bytes
    sql: str


def available(sql_dir: Path = SQL_DIR) -> list[Migration]:
    """The migration files shipped with this code, in the order they apply."""
    if not sql_dir.is_dir():
        raise MigrationError(
            f"migration directory {sql_dir} not found: pgy-pipeline must be installed from its source tree "
            "(pip install -e .) so that sql/ sits next to the pgy_pipeline package"
        )
    files = sorted(p for p in sql_dir.iterdir() if _FILE_RE.fullmatch(p.name))
    numbers = [p.name[:4] for p in files]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise MigrationError(f"two migration files share the number(s) {duplicates} in {sql_dir}; renumber one")
    return [Migration(p.name, hashlib.sha256(p.read_bytes()).hexdigest(), p.read_text(encoding="utf-8")) for p in files]


def _check_history(applied: dict[str, str], known: list[Migration]) -> None:
    """Refuse a database whose recorded history this code cannot continue."""
    by_name = {m.name: m for m in known}
    unknown = sorted(set(applied) - set(by_name))
    if unknown:
        raise MigrationError(
            f"the database records migration(s) {', '.join(unknown)} that this version of pgy-pipeline does not "
            "have: its schema is newer than this code. Upgrade pgy-pipeline (or point PGY_DATABASE_URL at the "
            "right database); nothing was changed"
        )
    changed = sorted(name for name, checksum in applied.items() if by_name[name].checksum != checksum)
    if changed:
        raise MigrationError(
            f"migration file(s) {', '.join(changed)} changed after being applied to this database (checksum "
            "differs). Applied migrations are immutable: restore the original file(s) and put the change in a "
            "new numbered file; nothing was changed"
        )


def _applied(conn: PgConnection) -> dict[str, str]:
    rows = conn.execute("SELECT name, checksum FROM pgy.schema_migrations").fetchall()
    conn.commit()
    return {str(name): str(checksum) for name, checksum in rows}


def upgrade(engine: Engine, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply every migration not yet recorded, in numeric order; return the names applied (empty if none).

    Safe to run twice and from two processes at once (advisory lock); raises MigrationError, having changed
    nothing, when the database records a migration this code does not know or an applied file has changed.
    """
    known = available(sql_dir)
    done: list[str] = []
    with psycopg_connection(engine) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(_BOOTSTRAP)
            conn.commit()
            applied = _applied(conn)
            _check_history(applied, known)
            for migration in known:
                if migration.name in applied:
                    continue
                log.info("applying migration %s", migration.name)
                try:
                    conn.execute(migration.sql.encode())  # bytes: run verbatim, no %-placeholder parsing
                    conn.execute(
                        "INSERT INTO pgy.schema_migrations (name, checksum) VALUES (%s, %s)",
                        (migration.name, migration.checksum),
                    )
                    conn.commit()
                except psycopg.Error as exc:
                    conn.rollback()
                    raise MigrationError(
                        f"migration {migration.name} failed and was rolled back: {exc}".strip()
                    ) from exc
                done.append(migration.name)
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            conn.commit()
    _up_to_date.add(engine)
    return done


_up_to_date: weakref.WeakSet[Engine] = weakref.WeakSet()
_ensure_lock = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """Bring the schema up to date before a load; after the first success it costs nothing per engine."""
    if engine in _up_to_date:
        return
    with _ensure_lock:
        if engine not in _up_to_date:
            upgrade(engine)
