"""Running a benchmark as its own process at a tiny size, as the test suite does, and reading its JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_benchmark(name: str, admin_url: str, *args: str) -> dict[str, Any]:
    """`python -m pgy_pipeline_tests.benchmarks.<name> <args>` against the test server; its last line, parsed."""
    result = subprocess.run(
        [sys.executable, "-m", f"pgy_pipeline_tests.benchmarks.{name}", *args],
        env={**os.environ, "PGY_TEST_DATABASE_URL": admin_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures
