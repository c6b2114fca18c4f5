"""The raw-body archive: every body the API sent, kept so a parser fix can be replayed without re-billing.

Bodies of successful calls (most of the volume, almost all alike) are compressed together, one row of
`pgy.raw_body_pack` per recorded chunk, in weekly partitions dropped whole once past `PGY_RAW_RETENTION_DAYS`.
Every other attempt's body stays one row in `pgy.raw_response`, readable in SQL, for `FAILED_RETENTION_DAYS`.
Partitions are created and expired by SECURITY DEFINER functions: the pipeline's role cannot delete from the
archive. See docs/warehouse.md (the raw-body archive).
"""

from __future__ import annotations

import logging
import threading
import weakref
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg
from sqlalchemy import Engine

from pgy_pipeline.warehouse.engine import PgConnection, psycopg_connection

log = logging.getLogger(__name__)

# Bodies of calls that did not succeed are the evidence a parser fix is written from, and few: a year at least.
FAILED_RETENTION_DAYS = 365
MIN_RETENTION_DAYS = 7
_LEVEL = 6  # zlib level; why not 9: docs/warehouse.md (the raw-body archive)
_KINDS = "jtb"  # the body's form: JSON jsonb takes, other UTF-8 text, bytes (the order of raw_response's columns)


@dataclass(frozen=True)
class Body:
    """One retained body: the call it answered (pgy.fetch_log.id), and the bytes as received (token masked)."""

    fetch_log_id: int
    kind: str  # "j" JSON, "t" other UTF-8 text, "b" bytes
    raw: bytes


def body_kind(columns: tuple[object, object, object]) -> str:
    """The kind letter of a body from its (jsonb, text, bytes) columns, exactly one of which is set."""
    return _KINDS[next(i for i, value in enumerate(columns) if value is not None)]


def week_of(day: date) -> date:
    """Monday of the (UTC) week of `day`: the partition a body received that day goes to."""
    return day - timedelta(days=day.weekday())


def archive_packed(conn: PgConnection, bodies: Sequence[tuple[int, str, bytes]]) -> None:
    """Inside the recording transaction: store (fetch_log_id, kind, raw) of successful calls as one pack."""
    if not bodies:
        return
    ordered = sorted(bodies)
    week = week_of(datetime.now(UTC).date())
    conn.execute("SELECT pgy.raw_body_week(%s)", (week,))
    ids = [b[0] for b in ordered]
    conn.execute(
        "INSERT INTO pgy.raw_body_pack (first_id, week, last_id, fetch_log_ids, kinds, sizes, pack)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            ids[0],
            week,
            ids[-1],
            ids,
            "".join(b[1] for b in ordered),
            [len(b[2]) for b in ordered],
            zlib.compress(b"".join(b[2] for b in ordered), _LEVEL),
        ),
    )


def _unpack(ids: list[int], kinds: str, sizes: list[int], pack: bytes) -> Iterator[Body]:
    data = zlib.decompress(pack)
    offset = 0
    for fetch_log_id, kind, size in zip(ids, kinds, sizes, strict=True):
        yield Body(fetch_log_id, kind, data[offset : offset + size])
        offset += size


def retained_bodies(engine: Engine, fetch_log_ids: Iterable[int]) -> dict[int, Body]:
    """The retained bodies of these calls (from packs or rows); a call whose body expired is absent."""
    wanted = sorted(set(fetch_log_ids))
    if not wanted:
        return {}
    out: dict[int, Body] = {}
    with psycopg_connection(engine) as conn:
        packs = conn.execute(
            "SELECT DISTINCT p.fetch_log_ids, p.kinds, p.sizes, p.pack FROM pgy.raw_body_pack p"
            " JOIN unnest(%s::bigint[]) AS w(id) ON w.id BETWEEN p.first_id AND p.last_id",
            (wanted,),
        ).fetchall()
        rows = conn.execute(
            "SELECT fetch_log_id, body::text, body_text, body_bytes FROM pgy.raw_response WHERE fetch_log_id = ANY(%s)",
            (wanted,),
        ).fetchall()
        conn.rollback()
    keep = set(wanted)
    for ids, kinds, sizes, pack in packs:
        out.update(
            (b.fetch_log_id, b) for b in _unpack(list(ids), kinds, list(sizes), bytes(pack)) if b.fetch_log_id in keep
        )
    for fetch_log_id, body, body_text, body_bytes in rows:
        kind = body_kind((body, body_text, body_bytes))
        raw = bytes(body_bytes) if body_bytes is not None else (body if body is not None else body_text).encode()
        out[fetch_log_id] = Body(fetch_log_id, kind, raw)
    return out


@dataclass(frozen=True)
class Expired:
    weeks_dropped: int
    rows_deleted: int


def expire(engine: Engine, retention_days: int, failed_retention_days: int | None = None) -> Expired:
    """Drop the weeks of successful calls' bodies older than `retention_days` (and old rows of
    pgy.raw_response, see the module docstring); any role with EXECUTE on pgy.expire_raw_bodies may call it."""
    if retention_days < MIN_RETENTION_DAYS:
        raise ValueError(f"retention_days must be at least {MIN_RETENTION_DAYS}, not {retention_days}")
    failed = max(retention_days, FAILED_RETENTION_DAYS if failed_retention_days is None else failed_retention_days)
    with psycopg_connection(engine) as conn:
        row = conn.execute("SELECT * FROM pgy.expire_raw_bodies(%s, %s)", (retention_days, failed)).fetchone()
        conn.commit()
    return Expired(int(row[0]), int(row[1])) if row else Expired(0, 0)


_expired_on: weakref.WeakKeyDictionary[Engine, date] = weakref.WeakKeyDictionary()
_expire_lock = threading.Lock()


def expire_daily(engine: Engine, retention_days: int) -> None:
    """`expire` at most once per engine and UTC day (called before recording, off the recording transaction).

    Best effort: a pass that fails (a lock not granted within its timeout) is logged and the run goes on; the
    next day's pass drops what this one left."""
    today = datetime.now(UTC).date()
    with _expire_lock:
        if _expired_on.get(engine) == today:
            return
        _expired_on[engine] = today
    try:
        gone = expire(engine, retention_days)
    except psycopg.Error as exc:
        log.warning("raw-body retention pass failed, retried tomorrow: %s", " ".join(str(exc).split()))
        return
    if gone.weeks_dropped or gone.rows_deleted:
        log.info("raw-body retention: %d week(s) dropped, %d row(s) deleted", gone.weeks_dropped, gone.rows_deleted)
