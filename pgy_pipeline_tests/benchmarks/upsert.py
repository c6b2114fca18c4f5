"""Upsert benchmark (issue 2 §6, DESIGN.md §8): the loader against a plain binary COPY on the same server.

    python -m pgy_pipeline_tests.benchmarks.upsert [--kols 10000] [--days 60]

Uses PGY_TEST_DATABASE_URL when set, else the embedded Postgres under PGY_HOME (default ./.pgy); creates
and drops a database of its own. Phases over KOLs x 2 series x days points:

* copy: plain binary COPY (set_types) of the same rows into an unindexed 4-column table -- the yardstick;
* a: first load into an empty warehouse; b: identical reload; c: reload with 1 % of the values restated.

Each phase runs `--repeat` times (default 3); the fastest time and the smallest WAL count, for the yardstick
as for the loader: the server is shared with whatever else runs, and the least disturbed run is comparable.

Rows are generated once in memory before timing, in the order a run produces them (KOLs by id, each series'
window in date order), so every phase is timed on the same input. Peak memory is measured separately in a
child process that streams the first load from a generator (its RSS is the loader's, not the test data's;
it runs before this process builds the test rows, since a child's ru_maxrss starts at its parent's RSS).
WAL bytes are the server's `pg_current_wal_lsn()` difference, so run it on an otherwise idle server.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import resource
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from pgy_pipeline.model import Series, TrendPoint
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.load import LoadCounts, load_points
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.pg import fresh_database, libpq_url, server_url

LAST_DAY = date(2026, 11, 26)


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


def wal_lsn(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    return str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]


def wal_since(conn: psycopg.Connection[tuple[Any, ...]], start: str) -> int:
    row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", (start,)).fetchone()
    return int(row[0])  # type: ignore[index]


def checkpoint(conn: psycopg.Connection[tuple[Any, ...]]) -> None:
    """Start each phase from a checkpoint so full-page images weigh the same in every phase (if allowed)."""
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def timed(
    conn: psycopg.Connection[tuple[Any, ...]],
    action: Callable[[], object],
    repeat: int,
    *,
    before: Callable[[], object] = lambda: None,
) -> tuple[float, int, object]:
    """Best-of-`repeat` seconds and least WAL bytes of `action` (after an untimed `before` and a checkpoint
    each time), with the result of the last run. The server is shared and other sessions only ever add time
    and WAL (a CREATE DATABASE elsewhere writes ~8 MB), so the minimum is the least disturbed measurement."""
    seconds: list[float] = []
    wal: list[int] = []
    result: object = None
    for _ in range(repeat):
        before()
        checkpoint(conn)
        start_lsn = wal_lsn(conn)
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
        wal.append(wal_since(conn, start_lsn))
    return min(seconds), min(wal), result


def plain_copy(url: str, rows: list[TrendPoint]) -> None:
    """The yardstick: binary COPY with set_types into an unindexed table, committed."""
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_plain_copy")
        conn.execute("CREATE TABLE bench_plain_copy (kol_id text, date_key date, increase_type text, num bigint)")
        conn.commit()
        with conn.cursor().copy("COPY bench_plain_copy FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "date", "text", "int8"])
            for row in rows:
                copy.write_row(row)
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


def run(admin_url: str, kols: int, days: int, repeat: int) -> dict[str, Any]:
    rows = list(generate(kols, days))
    restated = list(generate(kols, days, restate_every=100))
    n = len(rows)
    changed = n // 100
    with fresh_database(admin_url, prefix="pgy_bench") as url:
        engine: Engine = make_engine(url)
        upgrade(engine)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

            def load(points: list[TrendPoint]) -> Callable[[], LoadCounts]:
                return lambda: load_points(engine, points)

            def empty_warehouse() -> None:
                conn.execute("TRUNCATE pgy.kol_fans_trend, pgy.kol_fans_trend_revision")

            copy_s, copy_wal, _ = timed(conn, lambda: plain_copy(url, rows), repeat)
            load_s, load_wal, a = timed(conn, load(rows), repeat, before=empty_warehouse)
            _check(a, LoadCounts(n, 0, 0), "a")
            reload_s, reload_wal, b = timed(conn, load(rows), repeat)
            _check(b, LoadCounts(0, 0, n), "b")
            # Before each restated run, an untimed load of the original values puts them back.
            restated_s, restated_wal, c = timed(conn, load(restated), repeat, before=load(rows))
            _check(c, LoadCounts(0, changed, n - changed), "c")
        engine.dispose()
    copy_rate = n / copy_s
    return {
        "benchmark": "upsert",
        "server_version": version,
        "kols": kols,
        "days": days,
        "rows": n,
        "repeat": repeat,
        "copy_seconds": round(copy_s, 3),
        "copy_rows_per_s": round(copy_rate),
        "copy_wal_bytes": copy_wal,
        "load_seconds": round(load_s, 3),
        "load_rows_per_s": round(n / load_s),
        "ratio_to_copy": round(n / load_s / copy_rate, 3),
        "first_load_wal_bytes": load_wal,
        "reload_seconds": round(reload_s, 3),
        "reload_rows_per_s": round(n / reload_s),
        "reload_ratio_to_copy": round(n / reload_s / copy_rate, 3),
        "reload_wal_bytes": reload_wal,
        "reload_wal_ratio": round(reload_wal / load_wal, 5) if load_wal else None,
        "restated_rows": changed,
        "restated_seconds": round(restated_s, 3),
        "restated_rows_per_s": round(n / restated_s),
        "restated_ratio_to_copy": round(n / restated_s / copy_rate, 3),
        "restated_wal_bytes": restated_wal,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kols", type=int, default=10_000, help="number of KOLs (x 2 series x days rows)")
    parser.add_argument("--days", type=int, default=60, help="days per series window")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase; the fastest counts (default 3)")
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
