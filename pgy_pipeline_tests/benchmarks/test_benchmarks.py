"""Each benchmark runs end to end at a tiny size and prints its figures, the last line one JSON object; the
figures are checked where a tiny run can know them (rows, planted spikes, billed calls)."""

from __future__ import annotations

import json

import pytest

from pgy_pipeline.model import Endpoint
from pgy_pipeline_tests.benchmarks import fetch, ratelimit
from pgy_pipeline_tests.benchmarks.run import run as benchmark_run
from pgy_pipeline_tests.benchmarks.smoke import run_benchmark


@pytest.mark.subprocess
def test_anomaly_benchmark_prints_its_json(admin_url: str) -> None:
    figures = run_benchmark("anomaly", admin_url, "--kols", "300", "--days", "40", "--repeat", "1")
    assert figures["rows"] == 300 * 40 * 2
    assert figures["daily_anomalies"] == figures["planted_spikes"] == 3
    assert figures["backfill_anomalies"] == 3  # the noise of 300 KOLs x 40 days raised no false alarm
    assert figures["daily_seconds"] >= 0 and figures["backfill_seconds"] >= 0


@pytest.mark.subprocess
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


def test_fetch_benchmark_prints_its_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch.main(["--calls", "24", "--latency-ms", "5", "--concurrency", "4"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["calls"] == report["ok"] == 24
    for key in ("latency_ms", "concurrency", "wall_s", "ideal_s", "ratio_to_ideal", "peak_rss_mb"):
        assert key in report
    assert report["ideal_s"] == pytest.approx(24 * 0.005 / 4)


def test_ratelimit_benchmark_prints_its_json(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--calls", "60", "--limit-rps", "1000", "--limit-in-flight", "3", "--latency-ms", "10", "--fixed", "2"]
    assert ratelimit.main(argv) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["ok"] == report["fixed_ok"] == 60
    assert report["billed_calls"] == report["fixed_billed_calls"] == 60  # refusals are free, no call bills twice
    assert report["allowed_rps"] == pytest.approx(3 / 0.010)  # the in-flight limit binds: 3 per 10 ms
    for key in ("achieved_rps", "ratio_to_allowed", "limited_fraction", "wall_s", "fixed_ratio_to_allowed"):
        assert isinstance(report[key], int | float), key
    assert 1 <= report["concurrency_reached"] <= report["concurrency_bounds"][1]


@pytest.mark.subprocess
def test_report_benchmark_prints_its_json(admin_url: str) -> None:
    # --no-browser: the opening measurement needs Debian's chromium, which the test machines need not have
    figures = run_benchmark("report", admin_url, "--kols", "300", "--days", "40", "--repeat", "1", "--no-browser")
    assert figures["rows"] == 300 * 40 * 2
    assert figures["anomalies"] == figures["planted_spikes"] == 3
    assert 0 < figures["size_mb"] < 1 and figures["build_seconds"] >= 0
    assert "open_ms_in_page" not in figures


@pytest.mark.subprocess
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


def test_run_benchmark_works_at_tiny_size(admin_url: str) -> None:
    result = benchmark_run(kols=3, concurrency=2, endpoint=Endpoint.LEGACY_V1, admin_url=admin_url)
    json.dumps(result)
    assert (result["calls_ok"], result["billed_per_kol"], result["kols_complete"]) == (6, 2.0, 3)
    assert result["rerun_billed_calls"] == 0 and result["peak_rss_mb"] > 0
