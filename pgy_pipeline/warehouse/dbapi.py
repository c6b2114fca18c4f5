"""Borrowing the raw psycopg 3 connection behind a SQLAlchemy engine.

The warehouse's hot paths (binary COPY, advisory locks, multi-statement migration files) need psycopg
features SQLAlchemy does not expose; borrowing the pooled DBAPI connection keeps one pool and one URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import Engine

PgConnection = psycopg.Connection[tuple[Any, ...]]


@contextlib.contextmanager
def psycopg_connection(engine: Engine) -> Iterator[PgConnection]:
    """A pooled connection of `engine` as its psycopg connection; an open transaction is rolled back on return."""
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        if not isinstance(conn, psycopg.Connection):
            raise TypeError(f"the warehouse engine must use psycopg 3, not {type(conn).__name__}")
        yield conn
    finally:
        raw.close()
