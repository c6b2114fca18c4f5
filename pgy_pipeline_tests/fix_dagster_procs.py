"""Fixtures for tests that run Dagster's own processes (helpers in `support/dagster_procs.py`): a DAGSTER_HOME
with the production dagster.yaml, and Dagster's own storage database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pgy_pipeline.deploy import DAGSTER_YAML
from pgy_pipeline_tests.support.db import fresh_database


@pytest.fixture
def dagster_storage_url(admin_url: str) -> Iterator[str]:
    """Dagster's own storage: a database of its own on the test server (as it would be in production)."""
    with fresh_database(admin_url, prefix="dagster_t") as url:
        # dagster-postgres is written for psycopg2; SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://
        yield make_url(url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME holding the production dagster.yaml, as shipped in the package."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DAGSTER_YAML, home / "dagster.yaml")
    return home
