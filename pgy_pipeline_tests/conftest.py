"""Shared fixtures: a real Postgres database per test (see pgy_pipeline_tests/pg.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pgy_pipeline.warehouse.embedded import stop_embedded
from pgy_pipeline.warehouse.engine import embedded_url, make_engine, normalize_url
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.pg import (
    DatabaseCopies,
    drop_unused_roles,
    existing_roles,
    fresh_database,
    server_url,
)

_ROLES_BEFORE = pytest.StashKey[set[str]]()

# The partitions start by default at the oldest date the API still serves; the tests also need partitions
# older than that (dates lost for good), so they pin the first partition well before the API's horizon.
os.environ.setdefault("PGY_PARTITIONS_START", "2025-01-01")

# simulator fixtures (`simulator`, `make_client`), warehouse/Dagster fixtures (`engine`, `sim`, `instance`, `today`,
# `yesterday`) and the production Dagster instance's (`dagster_home`, `dagster_storage_url`)
pytest_plugins = [
    "pgy_pipeline_tests.fixtures_sim",
    "pgy_pipeline_tests.pipeline_support",
    "pgy_pipeline_tests.dagster_procs",
    "pgy_pipeline_tests.longest_first",
]


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the session's embedded Postgres lives (started on first use); stopped when the session ends."""
    home = tmp_path_factory.mktemp("pgy-home")
    yield home
    stop_embedded(home)


def _shared_server(config: pytest.Config) -> str | None:
    """The shared test server's URL, in the process that sees the whole run (not an xdist worker); else None."""
    configured = os.environ.get("PGY_TEST_DATABASE_URL")
    return None if hasattr(config, "workerinput") or not configured else normalize_url(configured)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note which cluster-wide group roles the shared server already had before this run."""
    url = _shared_server(session.config)
    if url is not None:
        session.config.stash[_ROLES_BEFORE] = existing_roles(url)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the group roles this run's migrations created, once no database uses them: the suite leaves no
    role behind on a shared server. Done once, after every xdist worker has finished (an embedded server
    goes away with its temporary directory, roles and all)."""
    url = _shared_server(session.config)
    before: set[str] | None = session.config.stash.get(_ROLES_BEFORE, None)
    if url is not None and before is not None:
        drop_unused_roles(url, existing_roles(url) - before)


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
