"""Writing report files: one for the CLI, one per partition for the Dagster asset, and where they live.

A partition's report is `pgy-report-<date>.html` in the report directory (PGY_REPORT_DIR, default
$PGY_HOME/reports), covering the `days` dates that end at that partition; `latest.html` is a copy of the
newest one, the address chat alerts about failures link to. With PGY_REPORT_BASE_URL set (wherever the
directory is published) each file also has a URL.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine

from pgy_pipeline.errors import UsageError
from pgy_pipeline.report.data import ReportData, load_report_data
from pgy_pipeline.report.html import build_html

LATEST = "latest.html"
_NAME = re.compile(r"pgy-report-(\d{4}-\d{2}-\d{2})\.html")


def report_name(day: date) -> str:
    return f"pgy-report-{day.isoformat()}.html"


def report_url(base_url: str | None, name: str) -> str | None:
    """The published address of a file in the report directory, when PGY_REPORT_BASE_URL is set."""
    return f"{base_url.rstrip('/')}/{name}" if base_url else None


@dataclass(frozen=True)
class WrittenReport:
    day: date
    path: Path
    size_bytes: int
    data: ReportData


def _write_atomically(path: Path, content: str) -> int:
    """Write via a temporary file in the same directory, so a reader never opens half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = content.encode("utf-8")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".html")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encoded)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(encoded)


def write_report(
    engine: Engine,
    out: Path,
    *,
    end: date,
    days: int,
    oldest_reachable: date,
    kol_ids: Sequence[str] | None = None,
    budget: int | None = None,
) -> WrittenReport:
    """The report of the `days` dates ending at `end`, written to `out`."""
    if days < 1:
        raise UsageError(f"--days must be at least 1, not {days}")
    start = end - timedelta(days=days - 1)
    data = load_report_data(engine, start, end, oldest_reachable=oldest_reachable, kol_ids=kol_ids, budget=budget)
    return WrittenReport(end, out, _write_atomically(out, build_html(data)), data)


def write_partition_reports(
    engine: Engine,
    report_dir: Path,
    partitions: Sequence[date],
    *,
    days: int,
    oldest_reachable: date,
    budget: int | None = None,
) -> list[WrittenReport]:
    """One report per partition date (read from the warehouse once for all of them), and latest.html."""
    first, last = min(partitions), max(partitions)
    data = load_report_data(
        engine, first - timedelta(days=days - 1), last, oldest_reachable=oldest_reachable, budget=budget
    )
    written, page = [], ""
    for day in sorted(partitions):
        window = data.window(day, days)
        page = build_html(window)
        path = report_dir / report_name(day)
        written.append(WrittenReport(day, path, _write_atomically(path, page), window))
    newest = max(date.fromisoformat(m.group(1)) for p in report_dir.iterdir() if (m := _NAME.fullmatch(p.name)))
    if newest == last:  # a backfill of older dates leaves latest.html alone
        _write_atomically(report_dir / LATEST, page)
    return written
