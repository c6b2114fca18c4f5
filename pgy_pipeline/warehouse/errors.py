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
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

P = ParamSpec("P")
R = TypeVar("R")

# SQLSTATEs that mean "no server to talk to": class 08 (connection exception) and the shutdown codes.
_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin / crash shutdown, cannot connect now


class WarehouseUnavailable(RuntimeError):
    """The warehouse database could not be reached, or dropped the connection, during a run."""


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


def describe_database(engine: Engine) -> str:
    """The engine's database as a user recognises it, password hidden."""
    url = engine.url
    where = url.host or url.query.get("host") or "localhost"
    port = f":{url.port}" if url.port else ""
    return f"'{url.database}' on {where}{port}"


def unavailable(engine: Engine, exc: BaseException) -> WarehouseUnavailable:
    """The WarehouseUnavailable to raise for the connection error `exc` on `engine`."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    said = " ".join(str(orig).split()) or type(orig).__name__
    return WarehouseUnavailable(
        f"The warehouse database {describe_database(engine)} is unreachable or closed the connection during the "
        f"run ({said[:300]}). Nothing was half-written (each load is one transaction) and calls whose rows were "
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
