"""Fixtures: a real Postgres database per test (helpers in `support/db.py`).

The server is PGY_TEST_DATABASE_URL's, else an embedded one started on first use. `database_url` and `engine`
are a copy of a template migrated once per session; `empty_database_url` and `bare_engine` have no schema yet
(for the tests that migrate for themselves).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from pgy_pipeline.warehouse.embedded import stop_embedded
from pgy_pipeline.warehouse.engine import embedded_url, make_engine
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.support.db import DatabaseCopies, fresh_database, server_url


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the session's embedded Postgres lives (started on first use); stopped when the session ends."""
    home = tmp_path_factory.mktemp("pgy-home")
    yield home
    stop_embedded(home)


@pytest.fixture(scope="session")
def admin_url(embedded_home: Path) -> str:
    """Maintenance URL of the test server (PGY_TEST_DATABASE_URL, else embedded)."""
    return server_url(embedded_home)


@pytest.fixture(scope="session")
def embedded_admin_url(embedded_home: Path) -> str:
    """Maintenance URL of the embedded server, whatever PGY_TEST_DATABASE_URL says."""
    return embedded_url(embedded_home)


@pytest.fixture(scope="session")
def migrated_copies(admin_url: str) -> Iterator[DatabaseCopies]:
    """Copies of a database this session (each xdist worker) migrated once: one per test, made ahead."""
    with fresh_database(admin_url, "pgy_tpl") as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()  # a template is copied only while nobody is connected to it
        copies = DatabaseCopies(admin_url, str(make_url(url).database))
        try:
            yield copies
        finally:
            copies.close()


@pytest.fixture
def database_url(migrated_copies: DatabaseCopies) -> Iterator[str]:
    """A database of its own for this test, with the current schema (a copy of the migrated template)."""
    url = migrated_copies.take()
    try:
        yield url
    finally:
        migrated_copies.give_back(url)


@pytest.fixture
def empty_database_url(admin_url: str) -> Iterator[str]:
    """An empty database of its own for this test (no schema yet: for the migration tests)."""
    with fresh_database(admin_url) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The test's own database, migrated: the warehouse contract, empty."""
    eng = create_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def bare_engine(empty_database_url: str) -> Iterator[Engine]:
    """The test's own empty database (`empty_database_url`), not migrated: for the tests that migrate it."""
    eng = make_engine(empty_database_url)
    yield eng
    eng.dispose()
