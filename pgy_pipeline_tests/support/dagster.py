"""Dagster in-process, as the daemon and the UI drive it: resources for the test's simulator and database, a
materialised range, a failed step's sentence, partition status, schedule and sensor ticks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from pgy_pipeline.defs.partitions import range_tags
from pgy_pipeline.simulator import Simulator


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


def partition_keys(start: date, end: date) -> list[str]:
    """The daily partition keys start..end."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def partition_status(instance: Any, start: date, end: date) -> dict[str, str]:
    """Dagster's status of each partition start..end as the UI shows it: MATERIALIZED, FAILED, … or MISSING."""
    from dagster import AssetKey

    from pgy_pipeline.defs.partitions import partitions_def

    keys = partition_keys(start, end)
    found = instance.get_status_by_partition(AssetKey("kol_fans_trend"), keys, partitions_def) or {}
    return {k: (found[k].value if found.get(k) else "MISSING") for k in keys}


@contextlib.contextmanager
def disposed_after(instance: Any) -> Iterator[Any]:
    """Use a Dagster instance, then dispose it, without entering it (entering would make it Dagster's current
    defs-state storage for the test; fix_dagster.py restores that setting after every test)."""
    try:
        yield instance
    finally:
        instance.dispose()


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
    # As a context manager: the instance the context opens from the given one's ref is closed with it, and with
    # it Dagster's current defs-state storage (left set, it outlives the instance and breaks later loads).
    with build_schedule_context(
        instance=instance, scheduled_execution_time=at, resources=resources, repository_def=defs.get_repository_def()
    ) as context:
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
