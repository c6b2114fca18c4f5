"""The daily-path benchmark runs end to end at a tiny size and prints its figures as one JSON object."""

from __future__ import annotations

import pytest

from pgy_pipeline_tests.benchmarks.smoke import run_benchmark

pytestmark = [pytest.mark.subprocess]


def test_daily_benchmark_prints_its_json(admin_url: str) -> None:
    figures = run_benchmark("daily", admin_url, "--kols", "5", "--latency-ms", "5")
    assert figures["kols"] == 5
    assert figures["calls"] == figures["billed_calls"] == 10  # day 2 bills 2 calls per KOL
    assert figures["rows_received"] == 5 * 2 * 30  # a 30-day window per series ...
    assert figures["rows_inserted"] == 5 * 2  # ... of which one day is new
    for key in ("wall_s", "fetch_s", "load_s", "dagster_overhead_s", "peak_rss_mb", "wal_bytes"):
        assert isinstance(figures[key], int | float) and figures[key] >= 0, key
    assert figures["step_s"]["kol_fans_trend"] > 0
    assert figures["copy_new_day_wal_bytes"] > 0
    # Whole pages: at 5 KOLs the new day may fit in the pages day 1 left room in (0 added).
    assert figures["warehouse_bytes_added"] % 8192 == 0 and figures["warehouse_bytes_added"] >= 0
    assert figures["bytes_per_kol_day"] == round(figures["warehouse_bytes_added"] / 5, 1)
    assert figures["wal_compression"] == "on"
