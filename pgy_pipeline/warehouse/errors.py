"""Turning "the database went away" into one sentence a user can act on.

When Postgres is stopped, restarted or unreachable in the middle of a run, psycopg and SQLAlchemy
raise a chain of driver errors whose useful part is one line deep in a long traceback. A run that
hits one fails with `WarehouseUnavailable` instead: which database (password hidden), what the driver
said, that nothing half-written remains (every load is one transaction), and what to do next.
Other database errors (a constraint, a bug in a query) are not about reachability and pass through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import psycopg
from sqlalchemy import URL, Engine
from sqlalchemy.exc import DBAPIError

from pgy_pipeline.errors import PgyError

P = ParamSpec("P")
R = TypeVar("R")

# SQLSTATEs that mean "no server to talk to": class 08 (connection exception) and the shutdown codes.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin / crash shutdown, cannot connect now
_INSUFFICIENT_PRIVILEGE = "42501"


class WarehouseUnavailable(PgyError, RuntimeError):
    """The warehouse database could not be reached, or dropped the connection, during a run."""


class WarehousePermissionDenied(PgyError):
    """The warehouse login lacks a privilege the command needs (a role without grants, or a reader writing)."""


def is_connection_error(exc: BaseException) -> bool:
    """True when `exc` (or the driver error it wraps) says the server is gone, not that a query is wrong."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _SHUTDOWN_STATES


def describe_database(target: Engine | URL) -> str:
    """The database of an engine (or URL) as a user recognises it, password hidden."""
    url = target.url if isinstance(target, Engine) else target
    where = url.host or url.query.get("host") or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"'{url.database}' on {where}{port}"


def _said(exc: BaseException) -> str:
    """What the driver said, on one line and bounded (libpq messages never include the password)."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return (" ".join(str(orig).split()) or type(orig).__name__)[:300]


def database_failure(exc: BaseException, database: str) -> PgyError | None:
    """The one-sentence error for a driver error `exc` outside a run (a command), or None when it is no
    reachability or privilege problem (a bug, which keeps its traceback). `database` is describe_database()'s."""
    if is_connection_error(exc):
        return WarehouseUnavailable(
            f"The warehouse database {database} cannot be reached ({_said(exc)}): check that Postgres is running "
            "and that PGY_DATABASE_URL points at it, then try again."
        )
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(orig, psycopg.Error) and orig.sqlstate == _INSUFFICIENT_PRIVILEGE:
        return WarehousePermissionDenied(
            f"The database login lacks a privilege this command needs on {database} ({_said(exc)}): connect as a "
            "login granted pgy_etl (runs and kols commands) or pgy_reader (status), or as the schema owner for "
            "`pgy-pipeline db upgrade`."
        )
    return None


def unavailable(engine: Engine, exc: BaseException) -> WarehouseUnavailable:
    """The WarehouseUnavailable to raise for the connection error `exc` on `engine`."""
    said = _said(exc)
    return WarehouseUnavailable(
        f"The warehouse database {describe_database(engine)} is unreachable or closed the connection during the "
        f"run ({said}). Nothing was half-written (each load is one transaction) and calls whose rows were "
        "committed are not billed again: check that Postgres is running and that PGY_DATABASE_URL points at it, "
        "then rerun the same partition(s)."
    )


def reports_unreachable_warehouse(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function taking the warehouse Engine first: connection errors become WarehouseUnavailable."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (DBAPIError, psycopg.OperationalError) as exc:
            engine = args[0] if args else None
            if isinstance(engine, Engine) and is_connection_error(exc):
                raise unavailable(engine, exc) from exc
            raise

    return wrapper
