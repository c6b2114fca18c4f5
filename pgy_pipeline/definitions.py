"""`defs`: what `dagster dev -w workspace.yaml`, `dagster asset materialize -m pgy_pipeline.definitions`
and the webserver load. Everything is configured from the environment (DESIGN.md §6)."""

from __future__ import annotations

from dagster import Definitions

from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.checks import asset_checks
from pgy_pipeline.defs.jobs import kol_fans_trend_job
from pgy_pipeline.defs.resources import default_resources
from pgy_pipeline.defs.schedules import daily_schedule
from pgy_pipeline.defs.sensors import checks_followup_sensor, new_kols_sensor

defs = Definitions(
    assets=[kol_fans_trend],
    asset_checks=asset_checks,
    jobs=[kol_fans_trend_job],
    schedules=[daily_schedule],
    sensors=[new_kols_sensor, checks_followup_sensor],
    resources=default_resources(),
)
