"""Fixtures: Dagster instances for in-process runs (helpers in `support/dagster.py`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgy_pipeline_tests.support.dagster import disposed_after


@pytest.fixture(autouse=True)
def _defs_state_storage_as_found() -> Iterator[None]:
    """Every test leaves Dagster's current defs-state storage as it found it.

    Entering an instance sets it as the current defs-state storage; one entered and never exited (a schedule
    context built without `with` opens one) leaves it set after the instance is gone, and the next definitions
    load in the same process fails with "undefined DagsterInstance weakref": one test would break the next.
    """
    from dagster._core.storage.defs_state.base import DefsStateStorage, set_defs_state_storage

    with set_defs_state_storage(DefsStateStorage.get()):
        yield


@pytest.fixture
def instance() -> Iterator[Any]:
    """An ephemeral Dagster instance, closed after the test (unclosed ones fail noisily at exit)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def local_instance(tmp_path: Path) -> Iterator[Any]:
    """A persistent instance on disk: a schedule context reads partition status back from it, as the daemon does."""
    from dagster import DagsterInstance

    with disposed_after(DagsterInstance.local_temp(str(tmp_path))) as inst:
        yield inst
