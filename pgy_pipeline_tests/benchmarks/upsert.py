"""Upsert benchmark: the loader against a plain binary COPY of the same rows on the same server.

    python -m pgy_pipeline_tests.benchmarks.upsert [--kols 10000] [--days 60] [--repeat 5]

Uses PGY_TEST_DATABASE_URL when set, else the embedded Postgres under PGY_HOME (default ./.pgy); creates
and drops a database of its own. Phases over KOLs x 2 series x days points:

* copy: the yardstick, a binary COPY of the same rows into an unindexed table with the warehouse table's
  columns, through the loader's own encoder and COPY writer (`copy_spans`), fetch_log ids included;
* a: first load into an empty warehouse; b: identical reload; c: reload with 1 % of the values restated.

Both sides do the same work the same way: a warm pooled connection of one engine, the same bulk encoding,
tables created (and emptied) outside the timers, and the loader given `fetch_ids` of calls logged in
pgy.fetch_log before each phase, as a run does (so it also marks them loaded, as in production). The
phases run interleaved (copy, a, b, c; copy, a, b, c; ...) `--repeat` times (default 5) so drift on a
shared server hits every phase alike; each ratio is computed per repeat (COPY's time / the loader's time
in the same repeat), and the JSON reports its median with the spread as `*_min` / `*_max`.

Rows are generated once in memory before timing, in the order a run produces them (KOLs by id, each series'
window in date order), so every phase is timed on the same input. Peak memory is measured separately in a
child process that streams the first load from a generator (its RSS is the loader's, not the test data's;
it runs before this process builds the test rows, since a child's ru_maxrss starts at its parent's RSS).
WAL bytes (medians) are this database's WAL records, read with pg_walinspect (see benchmarks/wal.py;
`wal_scope` says whether that was available or the cluster-wide LSN difference was used instead).
Targets on the medians: first load >= 0.3x COPY, identical reload >= 0.5x, reload WAL <= 2 % of the first
load's. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import Engine

from pgy_pipeline.model import Series, SeriesKey, TrendPoint
from pgy_pipeline.warehouse.engine import PgConnection, make_engine, psycopg_connection
from pgy_pipeline.warehouse.fetch_log import mark_loaded
from pgy_pipeline.warehouse.load import LoadCounts, copy_spans, load_points
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline.warehouse.validate import group_spans
from pgy_pipeline_tests.benchmarks.wal import WalMeter
from pgy_pipeline_tests.support.db import fresh_database, libpq_url, server_url

LAST_DAY = date(2026, 11, 26)
YARDSTICK_TABLE = "bench_plain_copy"  # the warehouse table's columns, no index, no constraint
WAREHOUSE_TABLES = "pgy.kol_fans_trend, pgy.kol_fans_trend_revision"


def kol_ids(kols: int) -> list[str]:
    """24-hex ids like Xiaohongshu user ids, sorted as the plan issues calls (by kol_id)."""
    rng = random.Random(42)
    return sorted(f"{rng.getrandbits(96):024x}" for _ in range(kols))


def generate(kols: int, days: int, *, restate_every: int = 0) -> Iterator[TrendPoint]:
    """Points as a run delivers them; with `restate_every`, every n-th value differs by +1."""
    dates = [LAST_DAY - timedelta(days=days - 1 - i) for i in range(days)]
    index = 0
    for k, kol_id in enumerate(kol_ids(kols)):
        for series in Series:
            base = 10_000 + 37 * k if series is Series.TOTAL_FANS else 0
            for i, date_key in enumerate(dates):
                num = base + 3 * i if series is Series.TOTAL_FANS else (k + i) % 7
                index += 1
                if restate_every and index % restate_every == 0:
                    num += 1
                yield TrendPoint(kol_id, date_key, series.value, num)


def checkpoint(conn: PgConnection) -> None:
    """Start each phase from a checkpoint so full-page images weigh the same in every phase (if allowed)."""
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


class Sample(NamedTuple):
    seconds: float
    wal: dict[str, int]  # WAL bytes per table
    result: object

    @property
    def wal_bytes(self) -> int:
        return sum(self.wal.values())


def timed(wal: WalMeter, action: Callable[[], object], before: Callable[[], object]) -> Sample:
    """One measurement of `action`: a checkpoint, the untimed `before` (setup), then time and WAL bytes.

    The checkpoint comes first so that every phase pays full-page images for the pages it touches, while the
    calls `before` logs are inserted after it, as a run logs its calls moments before loading their rows.
    """
    checkpoint(wal.conn)
    before()
    start_lsn = wal.start()
    started = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - started
    return Sample(seconds, wal.by_table(start_lsn), result)


_FETCH_LOG_ROWS = """
INSERT INTO pgy.fetch_log (kol_id, increase_type, endpoint, window_days, days_wanted, attempt, outcome, is_final,
                           billed, http_status, api_code)
SELECT k, t, 'legacy_v1', %s, %s, 1, 'ok', true, true, 200, 0 FROM unnest(%s::text[], %s::text[]) AS s(k, t)
RETURNING kol_id, increase_type, id
"""


def log_calls(conn: PgConnection, series: list[SeriesKey], days: int) -> dict[SeriesKey, int]:
    """One successful call per series in pgy.fetch_log, as a run records them before loading: their ids."""
    kols, types = [k for k, _ in series], [t for _, t in series]
    rows = conn.execute(_FETCH_LOG_ROWS, (days, days, kols, types)).fetchall()
    return {(k, t): int(i) for k, t, i in rows}


def mark_alone(engine: Engine, fetch_ids: dict[SeriesKey, int]) -> None:
    """Only the marking of the phase's calls as loaded, in a transaction of its own (what it adds to a load)."""
    with psycopg_connection(engine) as conn:
        mark_loaded(conn, fetch_ids.values())
        conn.commit()


def plain_copy(engine: Engine, rows: list[TrendPoint], fetch_ids: dict[SeriesKey, int]) -> None:
    """The yardstick: the loader's own encoder and COPY writer into an unindexed table of the same columns."""
    with psycopg_connection(engine) as conn:
        copy_spans(conn, ((span, 0) for span in group_spans(rows)), fetch_ids, table=YARDSTICK_TABLE)
        conn.commit()


def _streamed_first_load(url: str, kols: int, days: int, out: Any) -> None:
    """Child process: first load streamed from a generator; reports its peak RSS in MB."""
    engine = make_engine(url)
    load_points(engine, generate(kols, days))
    engine.dispose()
    out.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def loader_peak_rss_mb(admin_url: str, kols: int, days: int) -> float:
    with fresh_database(admin_url, prefix="pgy_bench") as url:
        upgrade_engine = make_engine(url)
        upgrade(upgrade_engine)
        upgrade_engine.dispose()
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_streamed_first_load, args=(url, kols, days, send))
        child.start()
        peak = float(receive.recv())
        child.join()
        return peak


def _check(counts: object, expected: LoadCounts, phase: str) -> None:
    if counts != expected:
        raise SystemExit(f"benchmark phase {phase}: loader returned {counts}, expected {expected}")


def _spread(values: list[float], digits: int) -> tuple[float, float, float]:
    return round(statistics.median(values), digits), round(min(values), digits), round(max(values), digits)


def run(admin_url: str, kols: int, days: int, repeat: int) -> dict[str, Any]:
    rows = list(generate(kols, days))
    restated = list(generate(kols, days, restate_every=100))
    n = len(rows)
    changed = n // 100
    series = list(dict.fromkeys((p.kol_id, p.increase_type) for p in rows))
    samples: dict[str, list[Sample]] = {phase: [] for phase in ("copy", "load", "reload", "restated")}
    marks: list[Sample] = []  # the loader's last statement alone: marking a run's calls loaded
    with fresh_database(admin_url, prefix="pgy_bench") as url:
        engine: Engine = make_engine(url)
        upgrade(engine)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            conn.execute(f"CREATE TABLE {YARDSTICK_TABLE} (LIKE pgy.kol_fans_trend INCLUDING DEFAULTS)")
            wal = WalMeter(conn)
            fetch_ids: dict[SeriesKey, int] = {}

            def setup(*tables: str) -> Callable[[], None]:
                """Untimed, before each phase: empty `tables`, and log this phase's calls (fresh ids, as a run)."""

                def prepare() -> None:
                    if tables:
                        conn.execute(f"TRUNCATE {', '.join(tables)}")
                    fetch_ids.clear()
                    fetch_ids.update(log_calls(conn, series, days))

                return prepare

            def load(points: list[TrendPoint]) -> Callable[[], LoadCounts]:
                return lambda: load_points(engine, points, fetch_ids=fetch_ids)

            # Interleaved: every repeat measures every phase once, so drift on the shared server hits all alike.
            for _ in range(repeat):
                samples["copy"].append(timed(wal, lambda: plain_copy(engine, rows, fetch_ids), setup(YARDSTICK_TABLE)))
                samples["load"].append(timed(wal, load(rows), setup(WAREHOUSE_TABLES)))
                samples["reload"].append(timed(wal, load(rows), setup()))
                samples["restated"].append(timed(wal, load(restated), setup()))
                marks.append(timed(wal, lambda: mark_alone(engine, fetch_ids), setup()))
                _check(samples["load"][-1].result, LoadCounts(n, 0, 0), "a")
                _check(samples["reload"][-1].result, LoadCounts(0, 0, n), "b")
                _check(samples["restated"][-1].result, LoadCounts(0, changed, n - changed), "c")
        engine.dispose()
    figures: dict[str, Any] = {
        "benchmark": "upsert",
        "server_version": version,
        "kols": kols,
        "days": days,
        "rows": n,
        "repeat": repeat,
        "restated_rows": changed,
        "wal_scope": wal.scope,
    }
    for phase, sampled in samples.items():
        seconds = [x.seconds for x in sampled]
        figures[f"{phase}_seconds"] = round(statistics.median(seconds), 3)
        figures[f"{phase}_rows_per_s"] = round(n / statistics.median(seconds))
        figures[f"{phase}_wal_bytes"] = round(statistics.median(x.wal_bytes for x in sampled))
    for phase, key in (
        ("load", "ratio_to_copy"),
        ("reload", "reload_ratio_to_copy"),
        ("restated", "restated_ratio_to_copy"),
    ):
        # Per repeat: COPY's time over the loader's time in the same repeat, then the median of those.
        ratios = [c.seconds / x.seconds for c, x in zip(samples["copy"], samples[phase], strict=True)]
        figures[key], figures[f"{key}_min"], figures[f"{key}_max"] = _spread(ratios, 3)
    wal_ratios = [b.wal_bytes / a.wal_bytes for a, b in zip(samples["load"], samples["reload"], strict=True)]
    figures["reload_wal_ratio"], figures["reload_wal_ratio_min"], figures["reload_wal_ratio_max"] = _spread(
        wal_ratios, 5
    )
    figures["first_load_wal_bytes"] = figures.pop("load_wal_bytes")
    # Where the reload's WAL goes: the fetch log (marking the calls loaded) vs the warehouse tables.
    marking = [x.wal.get("fetch_log_loaded", 0) + x.wal.get("fetch_log", 0) for x in samples["reload"]]
    figures["reload_wal_marking_bytes"] = round(statistics.median(marking))
    figures["reload_wal_ratio_without_marking"] = round(
        statistics.median(
            (b.wal_bytes - m) / a.wal_bytes for a, b, m in zip(samples["load"], samples["reload"], marking, strict=True)
        ),
        5,
    )
    figures["mark_loaded_seconds"] = round(statistics.median(x.seconds for x in marks), 3)
    figures["mark_loaded_wal_bytes"] = round(statistics.median(x.wal_bytes for x in marks))
    figures["reload_ratio_to_copy_without_marking"] = round(
        statistics.median(
            c.seconds / max(1e-9, b.seconds - m.seconds)
            for c, b, m in zip(samples["copy"], samples["reload"], marks, strict=True)
        ),
        3,
    )
    figures["targets"] = {"ratio_to_copy": 0.3, "reload_ratio_to_copy": 0.5, "reload_wal_ratio": 0.02}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kols", type=int, default=10_000, help="number of KOLs (x 2 series x days rows)")
    parser.add_argument("--days", type=int, default=60, help="days per series window")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of every phase (default 5)")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-memory child run")
    args = parser.parse_args(argv)
    admin_url = server_url(Path(os.environ.get("PGY_HOME", ".pgy")))
    # Before this process holds the test rows: a child's ru_maxrss starts from its parent's RSS at fork.
    max_rss_mb = None if args.no_rss else round(loader_peak_rss_mb(admin_url, args.kols, args.days), 1)
    figures = run(admin_url, args.kols, args.days, max(1, args.repeat))
    figures["max_rss_mb"] = max_rss_mb
    print(f"server: PostgreSQL {figures['server_version']}; rows: {figures['rows']:,}")
    print(f"plain COPY:      {figures['copy_rows_per_s']:>10,} rows/s")
    for label, prefix, ratio in (
        ("a first load:", "load", "ratio_to_copy"),
        ("b same reload:", "reload", "reload_ratio_to_copy"),
        ("c 1% restated:", "restated", "restated_ratio_to_copy"),
    ):
        wal_key = "first_load_wal_bytes" if prefix == "load" else f"{prefix}_wal_bytes"
        print(
            f"{label:<16} {figures[f'{prefix}_rows_per_s']:>10,} rows/s = {figures[ratio]:.2f}x COPY, "
            f"WAL {figures[wal_key] / 1e6:,.1f} MB"
        )
    print(f"reload WAL / first-load WAL: {figures['reload_wal_ratio']}; loader peak RSS: {figures['max_rss_mb']} MB")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
