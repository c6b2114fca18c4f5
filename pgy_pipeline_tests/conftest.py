"""Test session setup: the fixture plugins, environment defaults, and the session hooks that leave no group role
behind on a shared Postgres server. Fixtures live in the `fix_*.py` plugins, helpers in `support/`."""

from __future__ import annotations

import os

import pytest

from pgy_pipeline.warehouse.engine import normalize_url
from pgy_pipeline_tests.support.db import drop_unused_roles, existing_roles

_ROLES_BEFORE = pytest.StashKey[set[str]]()

# The partitions start by default at the oldest date the API still serves; the tests also need partitions
# older than that (dates lost for good), so they pin the first partition well before the API's horizon.
os.environ.setdefault("PGY_PARTITIONS_START", "2025-01-01")

pytest_plugins = [
    "pgy_pipeline_tests.fix_db",  # admin_url, database_url, empty_database_url, engine, ...
    "pgy_pipeline_tests.fix_simulator",  # sim_fixed_date, sim_today, make_client, today, yesterday
    "pgy_pipeline_tests.fix_dagster",  # instance, local_instance
    "pgy_pipeline_tests.fix_dagster_procs",  # dagster_home, dagster_storage_url
    "pgy_pipeline_tests.longest_first",  # under xdist, each worker starts with its share of the slow tests
]


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
