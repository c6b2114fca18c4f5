"""The upsert benchmark runs end to end at a tiny size and prints its figures as one JSON object."""

from __future__ import annotations

import pytest

from pgy_pipeline_tests.benchmarks.smoke import run_benchmark

pytestmark = [pytest.mark.subprocess]


def test_upsert_benchmark_prints_its_json(admin_url: str) -> None:
    figures = run_benchmark("upsert", admin_url, "--kols", "20", "--repeat", "2")
    assert figures["rows"] == 20 * 2 * 60
    assert figures["restated_rows"] == 24
    for key in (
        "copy_rows_per_s",
        "load_rows_per_s",
        "ratio_to_copy",
        "reload_rows_per_s",
        "reload_ratio_to_copy",
        "restated_rows_per_s",
        "restated_ratio_to_copy",
        "first_load_wal_bytes",
        "reload_wal_bytes",
        "reload_wal_ratio",
        "max_rss_mb",
        "reload_wal_marking_bytes",
    ):
        assert isinstance(figures[key], int | float) and figures[key] >= 0, key
    for ratio in ("ratio_to_copy", "reload_ratio_to_copy", "restated_ratio_to_copy", "reload_wal_ratio"):
        assert figures[f"{ratio}_min"] <= figures[ratio] <= figures[f"{ratio}_max"], ratio  # a median and its spread
    assert figures["repeat"] == 2
    assert figures["wal_scope"] in ("database", "cluster")
    assert figures["server_version"]
