"""Loading trend points into `pgy.kol_fans_trend`: validate, stage, and merge so unchanged rows cost nothing.

The API answers overlapping windows (30/60/90 days ending yesterday), so almost every point a daily run
receives is already stored with the same value. A generic upsert rewrites all of them (new row versions,
index entries and WAL for every overlapping row). This loader is designed around that shape instead:

* Points are validated in Python while streaming (kol id, real `date`, series, int within bigint).
* Per series (kol_id, increase_type) it knows the newest stored date (one indexed look-up per series).
  Points beyond it cannot exist yet: they go straight into the target with a binary COPY (heap multi-insert,
  no staging, no diff) -- the whole first load and the one new day of a daily run take this path.
* The other points are staged per run of consecutive dates as ONE row: (series, first date, count, nums packed
  as big-endian int64). The server compares each run with the stored rows in a single index range scan
  (`string_agg(int8send(num))` equals the packed bytes); equal runs are dropped without touching a row, so an
  identical reload writes no table rows and (almost) no WAL. Only runs that differ are unpacked into rows and
  merged: revisions for changed nums, an UPDATE of just those rows, an INSERT of missing keys.
* The same key twice with different nums is a conflict anywhere in one load: staged runs are checked against
  each other and against the rows this very transaction COPY-inserted (xmin = our xid), so nothing is written.

Concurrency: the whole load runs in one transaction holding a transaction-level advisory lock. Loads are
therefore serialised per database: no two loads interleave their merges (so no deadlock is possible and the
"newest stored date" read at the start stays true until commit), and a waiting load simply starts after the
other commits, seeing its rows. Staging COPYs are cheap compared with the cost of getting this wrong.

Memory: at most `batch_size` points are held in Python at a time, plus one small entry per series seen.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta
from itertools import islice
from typing import NamedTuple

from sqlalchemy import Engine

from pgy_pipeline.model import BIGINT_MAX, BIGINT_MIN, InvalidKolId, Series, TrendPoint, check_kol_id
from pgy_pipeline.warehouse.dbapi import PgConnection, psycopg_connection
from pgy_pipeline.warehouse.merge import MergeConflict, merge_staged
from pgy_pipeline.warehouse.migrate import ensure_schema

log = logging.getLogger(__name__)

# Arbitrary but fixed 64-bit advisory lock key ("pgy-load") shared by every loader process.
LOAD_LOCK_KEY = 0x7067792D6C6F6164
_SERIES = frozenset(s.value for s in Series)
_ONE_DAY = timedelta(days=1)
SeriesKey = tuple[str, str]


class LoadRejected(ValueError):
    """The input cannot be loaded as given; nothing was written. The message names the row and the rule."""


class LoadCounts(NamedTuple):
    """What a load did, per distinct key: new rows, rows whose num changed (one revision each), rows left alone."""

    inserted: int
    updated: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged


def _describe(index: int, point: object) -> str:
    return f"point #{index + 1} {point!r}"


def _check_point(index: int, point: object) -> TrendPoint:
    """The slow, explicit validation of one point: raises LoadRejected naming the rule it breaks."""
    try:
        fields: tuple[object, ...] = tuple(point)  # type: ignore[arg-type]
        kol_id, date_key, increase_type, num = fields
    except (TypeError, ValueError):
        raise LoadRejected(
            f"{_describe(index, point)}: expected (kol_id, date_key, increase_type, num); nothing was loaded"
        ) from None
    try:
        valid_kol_id = check_kol_id(kol_id)
    except InvalidKolId as exc:
        raise LoadRejected(f"{_describe(index, point)}: {exc}; nothing was loaded") from None
    if type(date_key) is not date:
        raise LoadRejected(
            f"{_describe(index, point)}: date_key must be a datetime.date (not {type(date_key).__name__}); "
            "nothing was loaded"
        )
    if increase_type not in _SERIES:
        raise LoadRejected(
            f"{_describe(index, point)}: increase_type must be one of {sorted(_SERIES)}; nothing was loaded"
        )
    if type(num) is not int:
        raise LoadRejected(
            f"{_describe(index, point)}: num must be an int (not {type(num).__name__}); nothing was loaded"
        )
    if not BIGINT_MIN <= num <= BIGINT_MAX:
        raise LoadRejected(f"{_describe(index, point)}: num {num} is outside bigint; nothing was loaded")
    return TrendPoint(valid_kol_id, date_key, str(increase_type), num)


def _validated(points: Iterable[TrendPoint]) -> Iterator[TrendPoint]:
    """Yield the points, rejecting the first invalid one.

    The fast path only does identity/type checks (this loop is on the per-row budget of the loader);
    anything unusual falls through to `_check_point` for the exact message.
    """
    good_kols: set[str] = set()
    for index, point in enumerate(points):
        if (
            type(point) is TrendPoint
            and point[0] in good_kols
            and type(point[1]) is date
            and point[2] in _SERIES
            and type(point[3]) is int
            and BIGINT_MIN <= point[3] <= BIGINT_MAX
        ):
            yield point
            continue
        checked = _check_point(index, point)
        good_kols.add(checked.kol_id)
        yield checked


class _Run(NamedTuple):
    """Consecutive-date points of one series, staged as one row (see module docstring)."""

    kol_id: str
    increase_type: str
    first_date: date
    nums: list[int]


_STAGE_DDL = """
CREATE TEMP TABLE pgy_stage_run (
    seq           integer PRIMARY KEY,
    kol_id        text COLLATE "C" NOT NULL,
    increase_type text COLLATE "C" NOT NULL,
    first_date    date    NOT NULL,
    n             integer NOT NULL,
    nums          bytea   NOT NULL,
    fetch_log_id  bigint
) ON COMMIT DROP
"""


class _Loader:
    """One load = one transaction on one connection; see the module docstring for the design."""

    def __init__(self, conn: PgConnection, fetch_ids: Mapping[SeriesKey, int]) -> None:
        self.conn = conn
        self.fetch_ids = fetch_ids
        self.newest: dict[SeriesKey, date | None] = {}
        self.direct = 0
        self.staged_points = 0
        self.seq = 0

    def begin(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
        self.conn.execute("SET LOCAL work_mem = '256MB'")
        self.conn.execute(_STAGE_DDL)

    def _learn_newest(self, batch: list[TrendPoint]) -> None:
        """Newest stored date of every series in `batch` not seen before (one index probe each)."""
        unseen = {(p[0], p[2]) for p in batch} - self.newest.keys()
        if not unseen:
            return
        kols, types = zip(*sorted(unseen), strict=True)
        rows = self.conn.execute(
            """
            SELECT s.kol_id, s.increase_type,
                   (SELECT max(t.date_key) FROM pgy.kol_fans_trend t
                     WHERE t.kol_id = s.kol_id AND t.increase_type = s.increase_type)
              FROM unnest(%s::text[], %s::text[]) AS s(kol_id, increase_type)
            """,
            (list(kols), list(types)),
        ).fetchall()
        for kol_id, increase_type, newest in rows:
            self.newest[(kol_id, increase_type)] = newest

    def add_batch(self, batch: list[TrendPoint]) -> None:
        self._learn_newest(batch)
        newest = self.newest
        fetch_ids = self.fetch_ids
        direct: list[tuple[str, date, str, int, int | None]] = []
        runs: list[_Run] = []
        run: _Run | None = None
        expected = date.min
        for kol_id, date_key, increase_type, num in batch:
            key = (kol_id, increase_type)
            last = newest[key]
            if last is None or date_key > last:
                newest[key] = date_key
                direct.append((kol_id, date_key, increase_type, num, fetch_ids.get(key)))
                continue
            if run is not None and date_key == expected and run.kol_id == kol_id and run.increase_type == increase_type:
                run.nums.append(num)
            else:
                run = _Run(kol_id, increase_type, date_key, [num])
                runs.append(run)
            expected = date_key + _ONE_DAY
        if direct:
            with self.conn.cursor().copy(
                "COPY pgy.kol_fans_trend (kol_id, date_key, increase_type, num, fetch_log_id)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["text", "date", "text", "int8", "int8"])
                for row in direct:
                    copy.write_row(row)
            self.direct += len(direct)
        if runs:
            with self.conn.cursor().copy(
                "COPY pgy_stage_run (seq, kol_id, increase_type, first_date, n, nums, fetch_log_id)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int4", "text", "text", "date", "int4", "bytea", "int8"])
                for r in runs:
                    self.seq += 1
                    n = len(r.nums)
                    self.staged_points += n
                    copy.write_row(
                        (
                            self.seq,
                            r.kol_id,
                            r.increase_type,
                            r.first_date,
                            n,
                            struct.pack(f">{n}q", *r.nums),
                            fetch_ids.get((r.kol_id, r.increase_type)),
                        )
                    )

    def merge(self) -> LoadCounts:
        """Diff the staged runs against the stored rows and write only what differs (see module docstring)."""
        if self.seq == 0:
            return LoadCounts(self.direct, 0, 0)
        try:
            inserted, updated, unchanged = merge_staged(self.conn)
        except MergeConflict as exc:
            raise LoadRejected(str(exc)) from None
        return LoadCounts(self.direct + inserted, updated, unchanged)


def _batches(points: Iterable[TrendPoint], size: int) -> Iterator[list[TrendPoint]]:
    iterator = iter(points)
    while batch := list(islice(iterator, size)):
        yield batch


def load_points(
    engine: Engine,
    points: Iterable[TrendPoint],
    *,
    fetch_ids: Mapping[SeriesKey, int] | None = None,
    batch_size: int = 100_000,
) -> LoadCounts:
    """Upsert `points` into pgy.kol_fans_trend in one transaction and return what changed.

    `fetch_ids` maps (kol_id, increase_type) to the pgy.fetch_log id of the call that delivered that
    series (recorded on inserted/updated rows and on revisions). Raises LoadRejected, having written
    nothing, when any point is invalid or one key arrives twice with different nums.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    ensure_schema(engine)
    with psycopg_connection(engine) as conn:
        try:
            loader = _Loader(conn, fetch_ids or {})
            loader.begin()
            for batch in _batches(_validated(points), batch_size):
                loader.add_batch(batch)
            counts = loader.merge()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    log.debug("loaded %s", counts)
    return counts
