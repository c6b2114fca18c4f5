"""The fetch benchmark runs at a tiny size and ends with its one-line JSON report (figures not asserted)."""

from __future__ import annotations

import json

import pytest

from pgy_pipeline_tests.benchmarks import fetch


def test_fetch_benchmark_prints_its_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert fetch.main(["--calls", "24", "--latency-ms", "5", "--concurrency", "4"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["calls"] == report["ok"] == 24
    for key in ("latency_ms", "concurrency", "wall_s", "ideal_s", "ratio_to_ideal", "peak_rss_mb"):
        assert key in report
    assert report["ideal_s"] == pytest.approx(24 * 0.005 / 4)
