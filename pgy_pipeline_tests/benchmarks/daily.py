"""Daily-path benchmark: the run that happens every day (29 of 30 days stored, 1 new, a few restated), via Dagster.

    python -m pgy_pipeline_tests.benchmarks.daily [--kols 10000 --latency-ms 100 --restate-rate 0.01]

1. A fresh warehouse tracks N KOLs; day 1 (the day before yesterday, China time) is loaded by a child
   process (`child_run`, a simulator without latency), so this process's peak memory is day 2's alone.
2. The simulator moves one day on (a new simulator process whose "today" is one day later, with
   `--restate-rate`: that share of calls first restates one past total in its window).
3. Day 2 (yesterday) is materialised as the daily schedule's run does it: the `kol_fans_trend` asset and
   its checks through Dagster (`materialize` with the production resources, on a Dagster instance whose
   storage is Postgres, like the production dagster.yaml), client settings at their production defaults.

Figures (day 2): `calls`, `billed_calls` (target 2 x kols), rows received / inserted / updated;
`wall_s` (the whole `materialize`); from the run's metadata `fetch_s` (time with calls on the wire) and
`load_s` (recording calls and loading rows, partly hidden behind the fetch); `dagster_overhead_s` (wall
minus the asset step: run setup, event storage, asset checks) and `step_s` (every step's own time);
`outside_fetch_fraction` = (wall - fetch) / wall, i.e. unhidden load plus Dagster (target <= 0.10 at
100 ms latency, and at 20 ms with 100,000 KOLs); `peak_rss_mb` of this process (target <= 300, 400 above
10,000 KOLs); `wal_bytes` of the warehouse database (target <= 20x `copy_new_day_wal_bytes`, the WAL of
COPYing just the new day's rows into an unindexed table), with `wal_by_table` and `wal_full_page_image_bytes`
saying where it went; `warehouse_bytes_added` (every table of schema pgy with its indexes and TOAST, after
day 2 minus after day 1; `warehouse_bytes_by_table` splits it) and `bytes_per_kol_day` (that over the KOL
count; target <= 1,500).
The warehouse database runs with `wal_compression` on (`--wal-compression off` to compare), as the embedded
server does and the docs recommend for any server.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
from dagster import DagsterEventType, DagsterInstance, ExecuteInProcessResult, materialize
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from pgy_pipeline.china_time import china_today
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.checks import asset_checks
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.simulator import DEFAULT_TOKEN
from pgy_pipeline.warehouse.engine import make_engine, psycopg_connection
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.load import copy_spans
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline.warehouse.validate import Span
from pgy_pipeline_tests.benchmarks.fetch import simulator_url
from pgy_pipeline_tests.benchmarks.upsert import checkpoint
from pgy_pipeline_tests.benchmarks.wal import WalMeter
from pgy_pipeline_tests.support.db import fresh_database, libpq_url, server_url
from pgy_pipeline_tests.support.simulator import kol_ids

NEW_DAY_TABLE = "bench_new_day_copy"


def load_day_one(url: str, base_url: str, day: date) -> dict[str, Any]:
    """Day 1 in a child process (its memory is not this process's), as a plain run of the pipeline."""
    cmd = [
        sys.executable, "-m", "pgy_pipeline_tests.support.child_run", "--database-url", url, "--base-url", base_url,
        "--token", DEFAULT_TOKEN, "--start", day.isoformat(), "--end", day.isoformat(),
        "--today", (day + timedelta(days=1)).isoformat(), "--run-id", "day-1", "--concurrency", "16",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def dagster_instance(tmp: str, storage_url: str) -> DagsterInstance:
    """A Dagster instance storing runs and events in Postgres (database `storage_url`), as in production."""
    pg_url = make_url(storage_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return DagsterInstance.local_temp(tmp, overrides={"storage": {"postgres": {"postgres_url": pg_url}}})


def step_seconds(instance: DagsterInstance, result: ExecuteInProcessResult) -> dict[str, float]:
    """Seconds between each step's start and its success, from the run's stored event log."""
    started: dict[str, float] = {}
    took: dict[str, float] = {}
    for entry in instance.all_logs(result.run_id):
        event, step = entry.dagster_event, entry.step_key
        if event is None or step is None:
            continue
        if event.event_type is DagsterEventType.STEP_START:
            started[step] = entry.timestamp
        elif event.event_type is DagsterEventType.STEP_SUCCESS and step in started:
            took[step] = round(entry.timestamp - started[step], 2)
    return took


def copy_new_day_wal(engine: Engine, wal: WalMeter, day: date) -> int:
    """WAL of COPYing just `day`'s rows (as stored) into an unindexed table: the yardstick for the daily WAL."""
    wal.conn.execute(f"CREATE TABLE {NEW_DAY_TABLE} (LIKE pgy.kol_fans_trend INCLUDING DEFAULTS)")
    rows = wal.conn.execute(
        "SELECT kol_id, date_key, increase_type, num, fetch_log_id FROM pgy.kol_fans_trend WHERE date_key = %s",
        (day,),
    ).fetchall()
    spans = [(Span(k, t, d.toordinal(), (n,)), 0) for k, d, t, n, _ in rows]
    fetch_ids = {(k, t): f for k, _, t, _, f in rows if f is not None}
    checkpoint(wal.conn)
    start = wal.start()
    with psycopg_connection(engine) as conn:
        copy_spans(conn, spans, fetch_ids, table=NEW_DAY_TABLE)
        conn.commit()
    return wal.since(start)


# Partitions count for their partitioned table (the archive's weekly packs as "raw_body_pack").
_PGY_BYTES = """
SELECT coalesce(p.relname, c.relname), sum(pg_total_relation_size(c.oid))::bigint
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_inherits i ON i.inhrelid = c.oid LEFT JOIN pg_class p ON p.oid = i.inhparent
 WHERE n.nspname = 'pgy' AND c.relkind IN ('r', 'm')
 GROUP BY 1
"""


def pgy_bytes(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Bytes of every table of schema pgy (partitions included) with its indexes and TOAST, per table."""
    return {str(table): int(size) for table, size in conn.execute(_PGY_BYTES).fetchall()}


def bytes_added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Growth per table, largest first (tables that did not grow left out)."""
    grown = {t: size - before.get(t, 0) for t, size in after.items() if size != before.get(t, 0)}
    return dict(sorted(grown.items(), key=lambda item: -item[1]))


def run(
    kols: int, latency_ms: float, restate_rate: float, admin_url: str, wal_compression: str = "on"
) -> dict[str, Any]:
    day2 = china_today() - timedelta(days=1)  # the daily schedule's partition: China-yesterday
    day1 = day2 - timedelta(days=1)
    with (
        fresh_database(admin_url, "pgy_bench") as url,
        fresh_database(admin_url, "pgy_bench_dagster") as dagster_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        with psycopg.connect(libpq_url(admin_url), autocommit=True) as admin:
            name = make_url(url).database
            admin.execute(f'ALTER DATABASE "{name}" SET wal_compression = {wal_compression}')
        engine = make_engine(url)
        upgrade(engine)
        add_kols(engine, kol_ids(kols))
        with simulator_url("subprocess", 0.0, day1 + timedelta(days=1)) as base_url:
            first = load_day_one(url, base_url, day1)
        extra = ["--restate-rate", str(restate_rate)]
        with (
            psycopg.connect(libpq_url(url), autocommit=True) as conn,
            simulator_url("subprocess", latency_ms, day2 + timedelta(days=1), extra) as base_url,
            dagster_instance(tmp, dagster_url) as instance,
        ):
            wal = WalMeter(conn)
            resources = {
                "trend_api": TrendApiResource(token=DEFAULT_TOKEN, base_url=base_url),
                "warehouse": WarehouseResource(database_url=url),
            }
            bytes_day1 = pgy_bytes(conn)
            checkpoint(conn)
            start = wal.start()
            started = time.perf_counter()
            result = materialize(
                [kol_fans_trend, *asset_checks],
                resources=resources,
                instance=instance,
                partition_key=day2.isoformat(),
                raise_on_error=False,
            )
            wall = time.perf_counter() - started
            wal_by_table = wal.by_table(start)
            fpi_bytes = wal.last_fpi_bytes
            added_by_table = bytes_added(bytes_day1, pgy_bytes(conn))
            added = sum(added_by_table.values())
            peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if not result.success:
                raise SystemExit("the day-2 run failed; see the Dagster log above")
            (mat,) = result.asset_materializations_for_node("kol_fans_trend")
            md: dict[str, Any] = {key: value.value for key, value in mat.metadata.items()}
            steps = step_seconds(instance, result)
            asset_s = steps["kol_fans_trend"]
            copy_wal = copy_new_day_wal(engine, wal, day2)
        engine.dispose()
    load_s = float(md["load_seconds"])
    fetch_s = float(md["fetch_seconds"])
    overhead = wall - asset_s
    wal_bytes = sum(wal_by_table.values())
    return {
        "benchmark": "daily",
        "kols": kols,
        "latency_ms": latency_ms,
        "restate_rate": restate_rate,
        "day1_rows_inserted": first["rows_inserted"],
        "calls": md["calls_ok"] + md["calls_failed"],
        "billed_calls": md["billed_calls"],
        "rows_received": md["rows_received"],
        "rows_inserted": md["rows_inserted"],
        "rows_updated": md["rows_updated"],
        "concurrency_reached": md["concurrency_reached"],
        "wall_s": round(wall, 2),
        "fetch_s": round(fetch_s, 2),
        "load_s": round(load_s, 2),
        "dagster_overhead_s": round(overhead, 2),
        "outside_fetch_fraction": round((wall - fetch_s) / wall, 3),
        "step_s": steps,
        "peak_rss_mb": round(peak_rss, 1),
        "wal_bytes": wal_bytes,
        "wal_scope": wal.scope,
        "wal_full_page_image_bytes": fpi_bytes,
        "wal_by_table": dict(sorted(wal_by_table.items(), key=lambda item: -item[1])),
        "copy_new_day_wal_bytes": copy_wal,
        "wal_ratio_to_copy_new_day": round(wal_bytes / copy_wal, 2) if copy_wal else None,
        "wal_compression": wal_compression,
        "warehouse_bytes_added": added,
        "bytes_per_kol_day": round(added / kols, 1),
        "warehouse_bytes_by_table": added_by_table,
        "targets": {
            "billed_calls": 2 * kols,
            "wal_ratio_to_copy_new_day": 20,
            "peak_rss_mb": 300 if kols <= 10_000 else 400,
            "outside_fetch_fraction": 0.10,
            "bytes_per_kol_day": 1500,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kols", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=float, default=100.0, help="simulated API latency on day 2")
    parser.add_argument("--restate-rate", type=float, default=0.01, help="share of day-2 calls restating a value")
    parser.add_argument("--wal-compression", choices=("on", "off"), default="on", help="on the warehouse database")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as home:
        result = run(args.kols, args.latency_ms, args.restate_rate, server_url(Path(home)), args.wal_compression)
    print(
        f"{result['kols']} KOLs, day 2: {result['calls']} calls in {result['wall_s']} s "
        f"(load {result['load_s']} s, Dagster {result['dagster_overhead_s']} s), peak RSS {result['peak_rss_mb']} MB, "
        f"WAL {result['wal_bytes'] / 1e6:.1f} MB ({result['wal_ratio_to_copy_new_day']}x COPY of the new day), "
        f"warehouse +{result['warehouse_bytes_added'] / 1e6:.1f} MB ({result['bytes_per_kol_day']} bytes per KOL-day)"
    )
    print(json.dumps(result))
    return 0 if result["billed_calls"] == 2 * args.kols else 1


if __name__ == "__main__":
    sys.exit(main())
