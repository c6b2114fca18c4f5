"""The partitioned job the schedule and the sensor launch (the UI's backfills target the asset directly)."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from pgy_pipeline.defs.assets import kol_fans_trend

kol_fans_trend_job = define_asset_job(
    "kol_fans_trend_job",
    selection=AssetSelection.assets(kol_fans_trend),
    description="Fetch and load kol_fans_trend for a partition (range), then run its asset checks.",
)
