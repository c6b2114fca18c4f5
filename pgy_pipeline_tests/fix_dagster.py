"""Fixtures: Dagster instances for in-process runs (helpers in `support/dagster.py`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgy_pipeline_tests.support.dagster import disposed_after


def _current_defs_state_storage() -> Any:
    """The context variable behind Dagster 1.13.27's `DefsStateStorage.get()` (it has no public setter)."""
    from dagster._core.storage.defs_state.base import _current_storage

    return _current_storage


@pytest.fixture(autouse=True)
def _defs_state_storage_as_found() -> Iterator[None]:
    """Every test leaves Dagster's current defs-state storage as it found it (None, unless a test set one).

    Entering an instance (`build_schedule_context` does) sets it as the current defs-state storage, and an
    instance that is never exited leaves it set after being disposed: the next definitions load in the same
    process then fails with "undefined DagsterInstance weakref", so one test would break whichever follows it.
    """
    before = _current_defs_state_storage().get() if "dagster" in sys.modules else None
    yield
    if "dagster" in sys.modules:  # an API test that never loaded Dagster has nothing to restore
        _current_defs_state_storage().set(before)


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
