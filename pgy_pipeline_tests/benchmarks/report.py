"""Report benchmark: how long the follower report takes to build at 10,000 KOLs x 60 days, how big the file is,
and how long a browser takes to open it (targets: at most 30 s, 10 MB and 3 s).

    python -m pgy_pipeline_tests.benchmarks.report [--kols 10000] [--days 60] [--repeat 3] [--no-browser]

Uses PGY_TEST_DATABASE_URL when set, else the embedded Postgres under PGY_HOME; creates and drops a database
of its own, loaded like the anomaly benchmark's (every 100th KOL spikes on the last day) with the anomalies
computed. Then the report of the last `--days` dates is written `--repeat` times (fastest kept: reading the
warehouse, building the HTML and writing the file), and `html_seconds` times building the HTML alone (what each
further partition of a backfill run costs, the warehouse being read once for all of them). Opening is measured
with headless Chromium (Debian's `chromium`) on the file, offline (every host name resolves to nothing):
`open_ms_in_page` is the page's own clock at the end of its load event (HTML parsed, data decoded, first grid
page drawn); `open_seconds_wall` is the wall time of a headless screenshot of the report minus that of an empty
page (adds layout, paint and drawing the curves in view). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from pgy_pipeline.report.build import write_report
from pgy_pipeline.report.html import build_html
from pgy_pipeline.warehouse.anomaly import AnomalyRules, refresh_anomalies
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.benchmarks.anomaly import LAST_DAY, PLANT_EVERY, generate
from pgy_pipeline_tests.support.db import fresh_database, server_url

# Nothing leaves the machine: no DNS answer for any name, no background services, no first-run pages.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--hide-scrollbars",
]
_TIMER = (
    "<script>addEventListener('load', function () {"
    " setTimeout(function () { document.body.dataset.openedMs = performance.now().toFixed(1); }, 0); });</script>"
)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise SystemExit("headless Chromium not found: apt-get install -y chromium, or pass --no-browser")
    return found


def _wall(command: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return time.perf_counter() - began


def open_times(report: Path, repeat: int) -> dict[str, float]:
    """The page's own load time (ms) and the extra wall time of a screenshot over an empty page (s); fastest kept."""
    exe = chromium()
    with tempfile.TemporaryDirectory(prefix="pgy-bench-browser-") as tmp:
        timed = Path(tmp) / "timed.html"
        timed.write_text(report.read_text(encoding="utf-8").replace("</body>", _TIMER + "</body>"), encoding="utf-8")
        empty = Path(tmp) / "empty.html"
        empty.write_text("<!DOCTYPE html><html><body>empty</body></html>", encoding="utf-8")
        profile = ["--user-data-dir=" + str(Path(tmp) / "profile"), "--window-size=1280,1600"]
        in_page, wall = float("inf"), float("inf")
        for _ in range(repeat):
            dom = subprocess.run(
                [exe, *CHROMIUM_FLAGS, *profile, "--dump-dom", timed.as_uri()],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            ).stdout
            match = re.search(r'data-opened-ms="([0-9.]+)"', dom)
            if match is None:
                raise SystemExit("the page did not finish loading in headless Chromium")
            in_page = min(in_page, float(match.group(1)))
            shot = [exe, *CHROMIUM_FLAGS, *profile, "--screenshot=" + str(Path(tmp) / "shot.png")]
            wall = min(wall, _wall([*shot, report.as_uri()]) - _wall([*shot, empty.as_uri()]))
    return {"open_ms_in_page": round(in_page, 1), "open_seconds_wall": round(wall, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kols", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true", help="skip the opening measurement")
    args = parser.parse_args(argv)
    admin = server_url(Path(".pgy"))
    first = LAST_DAY - timedelta(days=args.days - 1)
    with (
        tempfile.TemporaryDirectory(prefix="pgy-bench-report-") as tmp,
        fresh_database(admin, prefix="pgy_bench_report") as url,
    ):
        engine = make_engine(url)
        out = Path(tmp) / "report.html"
        try:
            upgrade(engine)
            add_kols(engine, [f"5f{k:022x}" for k in range(args.kols)])
            load_points(engine, generate(args.kols, args.days))
            refresh_anomalies(engine, first, LAST_DAY, rules=AnomalyRules(), run_id="bench")
            best, html = float("inf"), float("inf")
            for _ in range(args.repeat):
                began = time.perf_counter()
                written = write_report(engine, out, end=LAST_DAY, days=args.days, oldest_reachable=first)
                best = min(best, time.perf_counter() - began)
                began = time.perf_counter()
                build_html(written.data)  # what each further partition of a backfill run costs
                html = min(html, time.perf_counter() - began)
        finally:
            engine.dispose()
        figures: dict[str, object] = {
            "kols": args.kols,
            "days": args.days,
            "rows": args.kols * args.days * 2,
            "anomalies": len(written.data.anomalies),
            "planted_spikes": len(range(0, args.kols, PLANT_EVERY)),
            "build_seconds": round(best, 3),
            "html_seconds": round(html, 3),
            "size_mb": round(written.size_bytes / 1e6, 2),
        }
        if not args.no_browser:
            figures.update(open_times(out, args.repeat))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
