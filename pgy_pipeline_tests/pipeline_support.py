"""Pytest plugin for the pipeline and Dagster tests (loaded from conftest via `pytest_plugins`).

Fixtures: `engine` (the test's own migrated warehouse), `sim` (a simulator on the wall-clock China date, as
Dagster's partitions are), `instance` (an ephemeral Dagster instance), `today` / `yesterday` (China dates,
computed per test). Helpers: `track` (tracked KOLs), warehouse read-backs, Dagster resources and runs.
Simulator-side helpers (KOL ids, clients) live in `pgy_pipeline_tests/sim.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from pgy_pipeline.china_time import china_today
from pgy_pipeline.defs.partitions import range_tags
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.sim import kol_ids


@pytest.fixture
def today() -> date:
    """China's date, read when the test starts (never at import): the wall clock decides Dagster's partitions and
    the default simulator follows it, so a session crossing China midnight (16:00 UTC) keeps each test consistent."""
    return china_today()


@pytest.fixture
def yesterday(today: date) -> date:
    """The newest date the API serves on `today`: the daily partition."""
    return today - timedelta(days=1)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """The test's own database, migrated: the warehouse contract, empty."""
    eng = create_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def instance() -> Iterator[Any]:
    """An ephemeral Dagster instance, closed after the test (unclosed ones fail noisily at exit)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def track(engine: Engine, n: int, first: int = 0) -> list[str]:
    ids = kol_ids(n, first)
    add_kols(engine, ids)
    return ids


def stored(engine: Engine, start: date, end: date) -> dict[tuple[str, date, str], int]:
    """Warehouse rows for start..end as {(kol_id, date_key, increase_type): num}."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select kol_id, date_key, increase_type, num from pgy.kol_fans_trend where date_key between :s and :e"
            ),
            {"s": start, "e": end},
        )
        return {(k, d, t): n for k, d, t, n in rows}


def fetch_log_outcomes(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("select outcome, count(*) from pgy.fetch_log group by outcome"))
        return {o: n for o, n in rows}


def dagster_resources(sim: Simulator, database_url: str, **api: Any) -> dict[str, object]:
    """The Dagster resources pointed at this test's simulator and database (no environment needed)."""
    from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource

    settings: dict[str, Any] = {
        "token": sim.token,
        "base_url": sim.base_url,
        "max_attempts": 2,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        **api,
    }
    return {"trend_api": TrendApiResource(**settings), "warehouse": WarehouseResource(database_url=database_url)}


def materialize_trend(
    instance: Any, sim: Simulator, database_url: str, *, start: str, end: str | None = None, **kw: Any
) -> Any:
    """`kol_fans_trend` and its checks materialised in-process over start..end, as one (backfill) run."""
    from dagster import materialize

    from pgy_pipeline.defs.assets import kol_fans_trend
    from pgy_pipeline.defs.checks import asset_checks

    return materialize(
        [kol_fans_trend, *asset_checks],
        resources=dagster_resources(sim, database_url, **kw.pop("api", {})),
        instance=instance,
        tags=range_tags(start, end or start),
        raise_on_error=False,
        **kw,
    )


def step_failure(result: Any) -> tuple[str, dict[str, Any]]:
    """The description and metadata of the one failed step of an in-process result."""
    from dagster import DagsterEventType

    (event,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    info = event.step_failure_data.user_failure_data
    assert info is not None
    return info.description or "", {k: v.value for k, v in info.metadata.items()}


def partition_status(instance: Any, start: date, end: date) -> dict[str, str]:
    """Dagster's status of each partition start..end as the UI shows it: MATERIALIZED, FAILED, … or MISSING."""
    from dagster import AssetKey

    from pgy_pipeline.defs.partitions import partitions_def

    keys = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    found = instance.get_status_by_partition(AssetKey("kol_fans_trend"), keys, partitions_def) or {}
    return {k: (found[k].value if found.get(k) else "MISSING") for k in keys}


@contextlib.contextmanager
def disposed_after(instance: Any) -> Iterator[Any]:
    """Use a persistent Dagster instance, then dispose it, without `with instance:`.

    In Dagster 1.13.27 `DagsterInstance.__exit__` disposes the instance but leaves its defs-state storage set
    as the current one (`__enter__` sets a context variable nothing resets), so a later definitions load in
    the same test process reaches the disposed instance ("undefined DagsterInstance weakref").
    """
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def local_instance(tmp_path: Any) -> Iterator[Any]:
    """A persistent instance on disk: a schedule context reads partition status back from it, as the daemon does."""
    from dagster import DagsterInstance

    with disposed_after(DagsterInstance.local_temp(str(tmp_path))) as inst:
        yield inst


def schedule_tick(instance: Any, today: date, database_url: str) -> Any:
    """The daily schedule's RunRequest for `today`'s 06:30 tick, with the definitions the daemon loads."""
    from datetime import datetime
    from datetime import time as clock

    from dagster import RunRequest, build_schedule_context

    from pgy_pipeline.china_time import CHINA_TZ
    from pgy_pipeline.definitions import defs
    from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource

    at = datetime.combine(today, clock(6, 30), tzinfo=CHINA_TZ)
    resources = {"trend_api": TrendApiResource(), "warehouse": WarehouseResource(database_url=database_url)}
    context = build_schedule_context(
        instance=instance, scheduled_execution_time=at, resources=resources, repository_def=defs.get_repository_def()
    )
    (request,) = defs.resolve_schedule_def("kol_fans_trend_daily").evaluate_tick(context).run_requests or []
    assert isinstance(request, RunRequest)
    return request


def alert_tick(sensor: Any, instance: Any, cursor: str | None, resources: dict[str, object]) -> str | None:
    """One evaluation of an alert sensor, as the daemon runs it; returns the new cursor."""
    from dagster import build_sensor_context

    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        sensor(context)
        return context.cursor


def new_kols_tick(instance: Any, sim: Simulator, database_url: str, cursor: str | None) -> Any:
    """One evaluation of the new-KOL sensor against this test's simulator and database: a SensorResult or SkipReason."""
    from dagster import SensorResult, SkipReason, build_sensor_context

    from pgy_pipeline.defs.sensors import new_kols_sensor

    with build_sensor_context(instance=instance, cursor=cursor, resources=dagster_resources(sim, database_url)) as ctx:
        result = new_kols_sensor(ctx)
    assert isinstance(result, SensorResult | SkipReason), result
    return result
