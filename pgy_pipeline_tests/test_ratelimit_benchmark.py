"""The rate-limit benchmark runs at a tiny size and ends with its one-line JSON report (figures not asserted)."""

from __future__ import annotations

import json

import pytest

from pgy_pipeline_tests.benchmarks import ratelimit


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
