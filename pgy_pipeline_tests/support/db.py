"""Real Postgres for tests and benchmarks: the server named by PGY_TEST_DATABASE_URL, else an embedded one.

Each test gets its own freshly created database, so tests (and developers running the suite at the
same time) never see each other's rows. Most start from a copy of a template database the session migrated
once (CREATE DATABASE ... TEMPLATE), instead of running every migration again per test.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from pgy_pipeline.warehouse.engine import embedded_url, normalize_url


def server_url(home: Path) -> str:
    """The test server's maintenance URL: PGY_TEST_DATABASE_URL, or the embedded server under `home`."""
    configured = os.environ.get("PGY_TEST_DATABASE_URL")
    return normalize_url(configured) if configured else embedded_url(home)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq URL (psycopg.connect does not take `+psycopg`)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "pgy_t", template: str | None = None) -> Iterator[str]:
    """Create a database on the server of `admin_url` (empty, or a copy of database `template`, which nobody
    may be connected to), yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class DatabaseCopies:
    """Databases of their own, copies of `template`: the next one is made in a background thread while the current
    test runs, so a test never waits for CREATE DATABASE (a fraction of a second on a busy server).

    Used copies are dropped when the session ends, not after each test. On ext4 without a journal (as on many
    virtual machines, the CI machine included) a new file's inode is found by skipping, one by one, the inodes
    deleted in the last minute (five while their inode table block is unwritten), and a database is a few hundred
    files: dropping one copy per test while creating the next made each CREATE DATABASE up to ten times slower,
    in kernel time (docs/benchmarks.md)."""

    def __init__(self, admin_url: str, template: str, prefix: str = "pgy_t") -> None:
        self._admin = libpq_url(admin_url)
        self._url = make_url(admin_url)
        self._template = template
        self._prefix = prefix
        self._used: list[str] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgy-test-databases")
        self._next: Future[str] = self._thread.submit(self._create)

    def _create(self) -> str:
        name = f"{self._prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self._admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        return self._url.set(database=name).render_as_string(hide_password=False)

    def _drop(self, urls: list[str]) -> None:
        with psycopg.connect(self._admin, autocommit=True) as conn:
            for url in urls:
                conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')

    def take(self) -> str:
        """A new copy's URL (made ahead), and start making the next."""
        url = self._next.result()
        self._next = self._thread.submit(self._create)
        return url

    def give_back(self, url: str) -> None:
        """A copy the test is done with: dropped with the others when the session ends."""
        self._used.append(url)

    def close(self) -> None:
        """Drop every copy, the one made ahead included (before the template itself goes)."""
        with contextlib.suppress(Exception):
            self._used.append(self._next.result())
        self._thread.shutdown(wait=True)
        self._drop(self._used)
        self._used = []


# Cluster-wide roles the migrations create (NOLOGIN groups): left behind only if they existed before the session.
GROUP_ROLES = ("pgy_reader", "pgy_etl")


def existing_roles(admin_url: str, names: tuple[str, ...] = GROUP_ROLES) -> set[str]:
    """Which of `names` exist on the server of `admin_url` (roles are per server, not per database)."""
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        rows = conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(names),)).fetchall()
    return {str(name) for (name,) in rows}


def drop_unused_roles(admin_url: str, names: set[str]) -> list[str]:
    """Drop each role in `names` that no database references any more; return those still in use (kept:
    another developer's or session's database on the same server holds grants to them)."""
    kept = []
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        for name in sorted(names):
            try:
                conn.execute(f'DROP ROLE IF EXISTS "{name}"')
            except psycopg.errors.DependentObjectsStillExist:
                kept.append(name)
    return kept


@contextlib.contextmanager
def login_role(admin_url: str, database_url: str, member_of: str | None) -> Iterator[str]:
    """A LOGIN role of its own (unique name, a password), in group `member_of` if given; yield `database_url` as
    that login.

    Dropped afterwards, its sessions ended first, so no test leaves a role on a shared server (a role that owns
    objects can only be dropped once their database is gone: drop that database inside this context).
    """
    name = f"pgy_t_{member_of or 'login'}_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    group = f' IN ROLE "{member_of}"' if member_of else ""
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'{group}")
    try:
        yield make_url(database_url).set(username=name, password=password).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,))
            conn.execute(f'DROP ROLE IF EXISTS "{name}"')
