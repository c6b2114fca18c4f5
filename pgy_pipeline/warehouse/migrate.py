"""Applying the numbered SQL files in `sql/` to the warehouse, once each, safely from many processes.

Plain SQL files rather than a migration framework, so analysts and DBAs can read and run them with psql. Each
file runs in its own transaction with its row in `pgy.schema_migrations`, under an advisory lock, so a failed
file leaves nothing half-applied and a second runner finds nothing to do. On a current schema `ensure_schema`
only reads, so the least-privileged roles can call it. See docs/warehouse.md (migrations) and docs/deployment.md.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import re
import threading
import weakref
from importlib.resources.abc import Traversable
from typing import NamedTuple

import psycopg
from sqlalchemy import Engine

from pgy_pipeline.errors import PgyError
from pgy_pipeline.warehouse.engine import PgConnection, psycopg_connection

log = logging.getLogger(__name__)

SQL_PACKAGE = "pgy_pipeline.sql"  # sql/ of the source tree, mapped into the package by pyproject.toml
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


class MigrationError(PgyError, RuntimeError):
    """The database and this code disagree about the schema; the message says what to do."""


def shipped_sql_dir() -> Traversable:
    """The migration files installed with this code (package data `pgy_pipeline.sql`, from top-level sql/)."""
    try:
        return importlib.resources.files(SQL_PACKAGE)
    except ModuleNotFoundError:
        raise MigrationError(
            f"the migration files (package {SQL_PACKAGE}) are not installed with pgy-pipeline: reinstall it "
            "(pip install . or, in a source checkout, pip install -e .)"
        ) from None


# Checksums recorded by earlier releases, which hashed the whole file, for files whose comments changed since
# (a header that pointed at notes outside the repository). Same statements: a database that recorded these
# is up to date with the file as it is now.
_RECORDED_BEFORE_COMMENT_EDITS = {
    "0001_trend_tables.sql": "54bcf0e4b0be8395a43998dc9b852344d1651d4d8bd024ad466076ab8df8528e",
    "0010_analyst_views.sql": "a932c0ee327c3d4dc326b7819ddde3a0f1c70af7ef41ff9c479bfe38801b5666",
    "0011_reader_role.sql": "9d63884ddd030b7e504141739cd39ade6b0de0ae384a4f85c73c3a373dc4bddd",
}


def statements_checksum(sql: str) -> str:
    """sha256 of a migration's statements: whole-line `--` comments and blank lines do not count.

    A migration is what it executes, so its comments may be corrected after it was applied (they are the
    documentation DBAs read) without every deployed database refusing the file as changed.
    """
    lines = (line.strip() for line in sql.splitlines())
    return hashlib.sha256("\n".join(x for x in lines if x and not x.startswith("--")).encode()).hexdigest()


class Migration(NamedTuple):
    name: str  # file name, e.g. 0001_trend_tables.sql
    checksum: str  # statements_checksum of the file (what this code records)
    sql: str
    file_checksum: str  # sha256 of the file bytes (what releases before statements_checksum recorded)

    def matches(self, recorded: str) -> bool:
        """Whether a checksum a database recorded for this file is this file's (by any release's rule)."""
        return recorded in (self.checksum, self.file_checksum, _RECORDED_BEFORE_COMMENT_EDITS.get(self.name))


def available(sql_dir: Traversable | None = None) -> list[Migration]:
    """The migration files shipped with this code (or in `sql_dir`), in the order they apply."""
    sql_dir = shipped_sql_dir() if sql_dir is None else sql_dir
    if not sql_dir.is_dir():
        raise MigrationError(
            f"migration directory {sql_dir} not found: reinstall pgy-pipeline (pip install . or, in a source "
            "checkout, pip install -e .) so that its migration files are installed with it"
        )
    files = sorted((p for p in sql_dir.iterdir() if _FILE_RE.fullmatch(p.name)), key=lambda p: p.name)
    numbers = [p.name[:4] for p in files]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise MigrationError(f"two migration files share the number(s) {duplicates} in {sql_dir}; renumber one")
    out = []
    for p in files:
        raw = p.read_bytes()
        sql = raw.decode("utf-8")
        out.append(Migration(p.name, statements_checksum(sql), sql, hashlib.sha256(raw).hexdigest()))
    return out


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
    changed = sorted(name for name, checksum in applied.items() if not by_name[name].matches(checksum))
    if changed:
        raise MigrationError(
            f"migration file(s) {', '.join(changed)} changed after being applied to this database (checksum "
            "differs). Applied migrations are immutable: restore the original file(s) and put the change in a "
            "new numbered file; nothing was changed"
        )


def _applied(conn: PgConnection) -> dict[str, str]:
    """The recorded history; empty when there is none yet (read-only: no DDL, so any role with SELECT may ask)."""
    (exists,) = conn.execute("SELECT to_regclass('pgy.schema_migrations') IS NOT NULL").fetchone() or (False,)
    rows = conn.execute("SELECT name, checksum FROM pgy.schema_migrations").fetchall() if exists else []
    conn.commit()
    return {str(name): str(checksum) for name, checksum in rows}


def pending(engine: Engine, sql_dir: Traversable | None = None) -> list[str]:
    """The migrations this code has and the database has not applied, reading only (no DDL, no lock).

    Raises MigrationError when the recorded history cannot be continued by this code.
    """
    known = available(sql_dir)
    with psycopg_connection(engine) as conn:
        applied = _applied(conn)
    _check_history(applied, known)
    return [m.name for m in known if m.name not in applied]


def _owner_must_upgrade(conn: PgConnection, known: list[Migration], exc: psycopg.Error) -> MigrationError:
    """The sentence for a login without DDL rights meeting an outdated schema: who has to do what."""
    conn.rollback()
    (role,) = conn.execute("SELECT current_user").fetchone() or ("?",)
    applied = _applied(conn)
    missing = [m.name for m in known if m.name not in applied]
    return MigrationError(
        f"the warehouse schema is behind this version of pgy-pipeline ({len(missing)} migration(s) pending: "
        f"{', '.join(missing)}) and role {role!r} may not change it ({' '.join(str(exc).split())}): the schema "
        "owner must run `pgy-pipeline db upgrade`"
    )


def upgrade(engine: Engine, sql_dir: Traversable | None = None) -> list[str]:
    """Apply every migration not yet recorded, in numeric order; return the names applied (empty if none).

    Safe to run twice and from two processes at once (advisory lock); raises MigrationError, having changed
    nothing, when the database records a migration this code does not know or an applied file has changed,
    or when the login lacks the rights to change the schema (the owner must run it).
    """
    known = available(sql_dir)
    done: list[str] = []
    with psycopg_connection(engine) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            applied = _applied(conn)
            _check_history(applied, known)
            if len(applied) < len(known):  # DDL only when there is something to do
                conn.execute(_BOOTSTRAP)
                conn.commit()
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
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _owner_must_upgrade(conn, known, exc) from exc
        except MigrationError as exc:
            if isinstance(exc.__cause__, psycopg.errors.InsufficientPrivilege):
                raise _owner_must_upgrade(conn, known, exc.__cause__) from exc.__cause__
            raise
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
            conn.commit()
    _up_to_date.add(engine)
    return done


_up_to_date: weakref.WeakSet[Engine] = weakref.WeakSet()
_ensure_lock = threading.Lock()


def ensure_schema(engine: Engine) -> None:
    """Bring the schema up to date before a load; after the first success it costs nothing per engine.

    On a current schema this only reads the history (the least-privileged roles can call it); when migrations
    are pending it applies them, or, for a login without DDL rights, says the owner must run `db upgrade`.
    """
    if engine in _up_to_date:
        return
    with _ensure_lock:
        if engine in _up_to_date:
            return
        if pending(engine):
            upgrade(engine)
        _up_to_date.add(engine)
