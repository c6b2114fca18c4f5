"""Shared fixtures: a real Postgres database per test (see pgy_pipeline_tests/pg.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pgy_pipeline.warehouse.engine import embedded_url
from pgy_pipeline_tests.pg import drop_unused_roles, existing_roles, fresh_database, server_url, stop_embedded

# simulator fixtures (`simulator`, `make_client`), warehouse/Dagster fixtures (`engine`, `sim`, `instance`, `today`,
# `yesterday`) and the production Dagster instance's (`dagster_home`, `dagster_storage_url`)
pytest_plugins = [
    "pgy_pipeline_tests.fixtures_sim",
    "pgy_pipeline_tests.pipeline_support",
    "pgy_pipeline_tests.dagster_procs",
]


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the session's embedded Postgres lives (started on first use); stopped when the session ends."""
    home = tmp_path_factory.mktemp("pgy-home")
    yield home
    stop_embedded(home)


@pytest.fixture(scope="session")
def admin_url(embedded_home: Path) -> Iterator[str]:
    """Maintenance URL of the test server (PGY_TEST_DATABASE_URL, else embedded).

    The migrations create cluster-wide group roles; those this session created are dropped at its end once no
    database uses them, so the suite leaves no role behind on a shared server.
    """
    url = server_url(embedded_home)
    before = existing_roles(url)
    yield url
    drop_unused_roles(url, existing_roles(url) - before)


@pytest.fixture(scope="session")
def embedded_admin_url(embedded_home: Path) -> str:
    """Maintenance URL of the embedded server, whatever PGY_TEST_DATABASE_URL says."""
    return embedded_url(embedded_home)


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """An empty database of its own for this test."""
    with fresh_database(admin_url) as url:
        yield url
