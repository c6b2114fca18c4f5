"""The offline demo, run as `pgy-pipeline demo` would run it (on the test database instead of a new embedded one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pgy_pipeline.cli import main
from pgy_pipeline.demo import PLANTED_KOL, SAMPLE_KOLS


def test_demo_materialises_the_last_partitions_and_says_how_to_open_the_ui(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    monkeypatch.setenv("PGY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # the demo points it at PGY_HOME/dagster
    monkeypatch.delenv("PGY_API_TOKEN", raising=False)  # offline: the simulator's token is used
    assert main(["demo", "--days", "3"]) == 0
    out = capsys.readouterr().out
    assert "3 partition(s) materialised" in out
    assert f"calls_ok       {2 * len(SAMPLE_KOLS)}" in out
    assert "FAILED" not in out
    assert "pgy-pipeline demo --ui" in out
    suspected = [line.split() for line in out.splitlines() if line.startswith("  ") and PLANTED_KOL in line]
    assert [words[2] for words in suspected] == ["spike", "spike_then_drop"]  # the planted batch, then its loss
    assert "suspected anomalies in pgy.kol_fans_anomaly (2;" in out  # and nothing about the other sample KOLs
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    (report_line,) = [line for line in out.splitlines() if line.startswith("follower report")]
    report = Path(report_line.split(": ", 1)[1])
    assert (
        report.parent == (tmp_path / "home" / "reports").resolve()
        and f'id="anomaly-{PLANTED_KOL}"' in report.read_text()
    )
    with create_engine(database_url).connect() as conn:
        assert conn.scalar(text("select count(distinct kol_id) from pgy.kol_fans_trend")) == len(SAMPLE_KOLS)

    assert main(["demo", "--days", "3"]) == 0  # again: nothing left to fetch, nothing billed
    assert "calls_skipped  10" in capsys.readouterr().out
