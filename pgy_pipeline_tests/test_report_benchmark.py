"""The report benchmark runs end to end at a tiny size, reports every planted spike, and prints JSON."""

from __future__ import annotations

import pytest

from pgy_pipeline_tests.benchmarks.smoke import run_benchmark

pytestmark = [pytest.mark.subprocess]


def test_report_benchmark_prints_its_json(admin_url: str) -> None:
    # --no-browser: the opening measurement needs Debian's chromium, which the test machines need not have
    figures = run_benchmark("report", admin_url, "--kols", "300", "--days", "40", "--repeat", "1", "--no-browser")
    assert figures["rows"] == 300 * 40 * 2
    assert figures["anomalies"] == figures["planted_spikes"] == 3
    assert 0 < figures["size_mb"] < 1 and figures["build_seconds"] >= 0
    assert "open_ms_in_page" not in figures
