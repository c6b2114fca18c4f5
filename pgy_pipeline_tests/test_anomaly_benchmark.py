"""The anomaly benchmark runs end to end at a tiny size, finds exactly its planted spikes, and prints JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.subprocess]


def test_anomaly_benchmark_prints_its_json(admin_url: str) -> None:
    env = {**os.environ, "PGY_TEST_DATABASE_URL": admin_url}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgy_pipeline_tests.benchmarks.anomaly",
            "--kols",
            "300",
            "--days",
            "40",
            "--repeat",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 300 * 40 * 2
    assert figures["daily_anomalies"] == figures["planted_spikes"] == 3
    assert figures["backfill_anomalies"] == 3  # the noise of 300 KOLs x 40 days raised no false alarm
    assert figures["daily_seconds"] >= 0 and figures["backfill_seconds"] >= 0
