"""The offline demo: embedded Postgres + the local simulator + Dagster, no token and no server needed.

`pgy-pipeline demo` tracks a sample KOL set (one with a planted bought batch), materialises the last 7 daily
partitions of all three assets through Dagster in one run, and prints what landed; `--ui` then keeps the
simulator running and starts `dagster dev` on the same warehouse and instance. Everything lives under PGY_HOME,
and nothing listens beyond 127.0.0.1. See README.md (Quick start).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import warnings
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from pgy_pipeline.china_time import china_today, latest_served_date
from pgy_pipeline.config import Settings
from pgy_pipeline.model import Series
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.anomaly import stored_anomalies
from pgy_pipeline.warehouse.embedded import embedded_server
from pgy_pipeline.warehouse.engine import is_embedded, make_engine
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.migrate import ensure_schema

SAMPLE_KOLS = (
    "5a1b2c3d4e5f60718293a4b5",
    "5b6d7e8f9a0b1c2d3e4f5a6b",
    "5c0ffee0123456789abcdef0",
    "5d41402abc4b2a76b9719d91",
    "5e8848aa7f3c2b1d0e9f8a7b",
)
PLANTED_KOL = SAMPLE_KOLS[2]  # gets a bought batch two days before the latest date, most of it lost on the latest


def plant_bought_followers(sim: Simulator, kol_id: str = PLANTED_KOL) -> int:
    """A batch of followers bought for `kol_id` (10 % of its total, at least 5,000) two days before the latest
    date, 70 % of it gone on the latest; returns the batch's size."""
    spike_day = sim.latest_date - timedelta(days=2)
    total = sim.truth(kol_id, Series.TOTAL_FANS, spike_day) or 0
    batch = max(5_000, total // 10)
    sim.jump(kol_id, spike_day, batch)
    sim.jump(kol_id, sim.latest_date, -batch * 7 // 10)
    return batch


def _dagster_home(home: Path) -> Path:
    """A Dagster instance directory under PGY_HOME, shared by the demo run and `dagster dev`."""
    path = (home / "dagster").resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return path


@contextlib.contextmanager
def _quiet_logging(home: Path) -> Iterator[Path]:
    """While the demo runs, INFO logging (Dagster's storage migrations, the pipeline's progress) goes to a file
    whose path it yields; the terminal keeps warnings and errors. The logging setup is restored afterwards.

    The demo tells its story with print().
    """
    path = home.resolve() / "demo.log"
    root = logging.getLogger()
    saved = root.level, [(handler, handler.level) for handler in root.handlers]
    console = logging.StreamHandler() if not root.handlers else None
    if console is not None:
        root.addHandler(console)
    for handler in root.handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    to_file = logging.FileHandler(path, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(to_file)
    root.setLevel(logging.INFO)
    try:
        yield path
    finally:
        root.removeHandler(to_file)
        to_file.close()
        if console is not None:
            root.removeHandler(console)
        root.setLevel(saved[0])
        for handler, level in saved[1]:
            handler.setLevel(level)


def _stop_hint(settings: Settings) -> str | None:
    """How to stop the embedded Postgres the demo leaves running (for the next command), None when it used none."""
    if not is_embedded(settings.database_url):
        return None
    server = embedded_server(settings.home)
    if server.pid is None:
        return None
    where = f"PGY_HOME={settings.home.resolve()} " if settings.is_set("PGY_HOME") else "(from this directory) "
    return (
        f"the embedded Postgres keeps running for the next command (pid {server.pid}, data in {server.pgdata}); "
        f"stop it with: {where}pgy-pipeline db stop"
    )


def _materialise(sim: Simulator, home: Path, database_url: str | None, days: int) -> tuple[bool, str | None]:
    """One Dagster run over the last `days` partitions; returns whether it succeeded, and the report's path."""
    from dagster import DagsterInstance, materialize

    from pgy_pipeline.defs.anomaly import kol_fans_anomaly
    from pgy_pipeline.defs.assets import kol_fans_trend
    from pgy_pipeline.defs.checks import asset_checks
    from pgy_pipeline.defs.partitions import range_tags
    from pgy_pipeline.defs.report import kol_fans_report
    from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource

    latest = latest_served_date(china_today())
    start = latest - timedelta(days=days - 1)
    print(f"materialising partitions {start}..{latest} in one Dagster run ...")
    with DagsterInstance.get() as instance:
        result = materialize(
            [kol_fans_trend, kol_fans_anomaly, kol_fans_report, *asset_checks],
            instance=instance,
            resources={
                "trend_api": TrendApiResource(token=sim.token, base_url=sim.base_url),
                "warehouse": WarehouseResource(database_url=database_url, home=str(home)),
            },
            tags={**range_tags(start, latest), "pgy/source": "demo"},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            raise_on_error=False,
        )
    mats = result.asset_materializations_for_node("kol_fans_trend")
    if mats:
        md = {k: v.value for k, v in mats[0].metadata.items()}
        print(f"run {result.run_id}: {len(mats)} partition(s) materialised")
        for key in ("api_codes", "calls_ok", "calls_failed", "calls_skipped", "rows_inserted", "rows_updated"):
            print(f"  {key:14} {md[key]}")
        for check in result.get_asset_check_evaluations():
            print(f"  check {check.check_name:26} {'passed' if check.passed else 'FAILED'}  {check.description or ''}")
    else:
        print(f"run {result.run_id} failed; see the Dagster UI (pgy-pipeline demo --ui) for the reason")
    reports = result.asset_materializations_for_node("kol_fans_report")
    return result.success, str(reports[-1].metadata["path"].value) if reports else None


def _print_rows(engine: Engine, days: int) -> None:
    latest = latest_served_date(china_today())
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                select date_key, count(distinct kol_id), sum(num) filter (where increase_type = 'total_fans'),
                       sum(num) filter (where increase_type = 'new_fans')
                  from pgy.kol_fans_trend where date_key between :s and :e group by date_key order by date_key
                """
            ),
            {"s": latest - timedelta(days=days - 1), "e": latest},
        ).all()
        total = conn.scalar(text("select count(*) from pgy.kol_fans_trend"))
        codes = conn.execute(
            text("select coalesce(api_code::text, outcome), count(*) from pgy.fetch_log group by 1 order by 1")
        ).all()
    print("\nwhat landed in pgy.kol_fans_trend (the partitions of this run):")
    print("  date_key    kols  total_fans(sum)  new_fans(sum)")
    for day, kols, total_fans, new_fans in rows:
        print(f"  {day}  {kols:4}  {total_fans:15}  {new_fans:13}")
    print(f"  ({total} rows in the warehouse: every date of each 30-day window received was kept)")
    print("API codes in pgy.fetch_log: " + ", ".join(f"{c}: {n}" for c, n in codes))
    anomalies = stored_anomalies(engine, latest - timedelta(days=days - 1), latest)
    print(f"\nsuspected anomalies in pgy.kol_fans_anomaly ({len(anomalies)}; suspicions, not proof):")
    for a in anomalies:
        print(f"  {a.date_key}  {a.kol_id}  {a.rule:15}  {a.summary}")


def _ui_env(sim: Simulator, home: Path, dagster_home: Path, database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DAGSTER_HOME=str(dagster_home),
        PGY_HOME=str(home.resolve()),
        PGY_API_BASE_URL=sim.base_url,
        PGY_API_TOKEN=sim.token,
        PGY_TREND_ENDPOINT=env.get("PGY_TREND_ENDPOINT", "legacy_v1"),
    )
    if database_url:
        env["PGY_DATABASE_URL"] = database_url
    return env


def _dagster_dev_command(port: int) -> list[str]:
    exe = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    target = ["-w", "workspace.yaml"] if Path("workspace.yaml").exists() else ["-m", "pgy_pipeline.definitions"]
    return [exe, "dev", *target, "-h", "127.0.0.1", "-p", str(port)]


def run_demo(*, days: int = 7, ui: bool = False, port: int = 3000, sim_port: int = 0) -> int:
    """The whole demo; returns a process exit code."""
    warnings.filterwarnings("ignore", message=r"Parameter .backfill_policy.")  # Dagster's beta notice: noise here
    settings = Settings.from_env()
    dagster_home = _dagster_home(settings.home)
    with _quiet_logging(settings.home) as log_path:
        print(f"pgy-pipeline demo (log: {log_path})")
        return _demo(settings, dagster_home, days=days, ui=ui, port=port, sim_port=sim_port)


def _demo(settings: Settings, dagster_home: Path, *, days: int, ui: bool, port: int, sim_port: int) -> int:
    home = settings.home
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    engine = make_engine(settings.database_url, home, embedded_ok=True)  # the demo is where one is asked for
    ensure_schema(engine)
    logging.getLogger("pgy_pipeline.warehouse.engine").setLevel(logging.WARNING)  # it said where Postgres is once
    counts = add_kols(engine, SAMPLE_KOLS, label="demo")
    print(f"tracking {len(SAMPLE_KOLS)} sample KOLs ({counts.added} new) in pgy.tracked_kol")
    with Simulator(port=sim_port) as sim:
        print(f"simulator (the Just One API, offline) at {sim.base_url}, token {sim.token!r}")
        plant_bought_followers(sim)
        ok, report = _materialise(sim, home, settings.database_url, days)
        _print_rows(engine, days)
        if report:
            print(f"\nfollower report (one HTML file, opens offline in any browser): {report}")
        engine.dispose()
        command = _dagster_dev_command(port)
        if not ui:
            print(
                "\nto open the Dagster UI on this warehouse and simulator: pgy-pipeline demo --ui"
                f"\n  (it runs: {' '.join(command)} with PGY_* and DAGSTER_HOME={dagster_home} set)"
            )
        else:
            print(f"\nstarting the Dagster UI: http://127.0.0.1:{port}  (Ctrl-C stops it and the simulator)")
            print("  Assets → kol_fans_trend → Materialize… → pick a date range → Launch backfill (one run)")
            print(
                "  Assets → kol_fans_report → its latest materialisation: the report's path and the day's top gainers"
            )
            ok = _run_ui(command, _ui_env(sim, home, dagster_home, settings.database_url)) == 0
    hint = _stop_hint(settings)
    if hint:
        print(f"\n{hint}")
    return 0 if ok else 1


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM handled like Ctrl-C, so a terminated demo still stops its Dagster UI."""
    raise KeyboardInterrupt


def _run_ui(command: list[str], env: dict[str, str]) -> int:
    """Run `dagster dev` until it exits or the user presses Ctrl-C (or the demo is terminated).

    It runs in a process group of its own, which is signalled as a whole on the way out, so no code
    server, webserver or daemon outlives the demo (and keeps the port or the simulator's clients busy).
    """
    proc = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603 (our own argv)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print("\nstopping the Dagster UI ...")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group did not stop by itself


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m pgy_pipeline.demo` (the CLI's `demo` subcommand calls run_demo directly)."""
    import argparse

    parser = argparse.ArgumentParser(prog="pgy-pipeline demo", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--ui", action="store_true")
    parser.add_argument("--port", type=int, default=3000)
    args = parser.parse_args(argv)
    return run_demo(days=args.days, ui=args.ui, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
