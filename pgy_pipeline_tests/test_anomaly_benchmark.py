"""The anomaly benchmark runs end to end at a tiny size, finds exactly its planted spikes, and prints JSON."""

from __future__ import annotations

import pytest

from pgy_pipeline_tests.benchmarks.smoke import run_benchmark

pytestmark = [pytest.mark.subprocess]


def test_anomaly_benchmark_prints_its_json(admin_url: str) -> None:
    figures = run_benchmark("anomaly", admin_url, "--kols", "300", "--days", "40", "--repeat", "1")
    assert figures["rows"] == 300 * 40 * 2
    assert figures["daily_anomalies"] == figures["planted_spikes"] == 3
    assert figures["backfill_anomalies"] == 3  # the noise of 300 KOLs x 40 days raised no false alarm
    assert figures["daily_seconds"] >= 0 and figures["backfill_seconds"] >= 0
