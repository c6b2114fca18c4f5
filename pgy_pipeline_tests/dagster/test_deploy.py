"""The production `dagster.yaml` (pgy_pipeline/deploy/): Postgres storage, the run queue with tag limits, the API
concurrency pool, run monitoring and retries. A real webserver and daemon run a schedule tick on it in
`scenarios/test_daemon_scenarios.py`, and a killed run worker is retried on it in `scenarios/test_run_retries.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from pgy_pipeline.defs.assets import API_POOL, kol_fans_trend


def test_production_instance_config_loads_with_queue_limits_and_pool(
    dagster_home: Path, dagster_storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_storage_url)
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 1
        assert config.run_queue_config is not None and config.run_queue_config.max_concurrent_runs == 4
        limits = {limit["key"]: limit["limit"] for limit in config.run_queue_config.tag_concurrency_limits}
        assert limits == {"dagster/backfill": 1, "dagster/schedule_name": 1}
        # A run whose worker dies is failed and retried; a run the asset itself failed is not.
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        # ... and the API pool slot a dead run still holds is free again within 90 s.
        assert instance.run_monitoring_poll_interval_seconds == 30
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert instance.run_retries_retry_on_asset_or_op_failure is False
    assert kol_fans_trend.op.pool == API_POOL
