"""Loading trend points into `pgy.kol_fans_trend`: validate, stage, and merge so unchanged rows cost nothing.

The API answers overlapping windows, so almost every point a run receives is already stored with the same value.
Points beyond a series' newest stored date go straight in with a binary COPY; the others are staged one row per
span of consecutive dates and compared with the stored rows on the server, so only points whose value differs
are written. One transaction under an advisory lock: loads are all-or-nothing and serialised per database.
Validation and the newest-date look-ups run ahead in threads (prefetch.py), so a few batches are held at once.
See docs/warehouse.md (the loader).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from itertools import islice

from sqlalchemy import Engine

from pgy_pipeline.model import SeriesKey, TrendPoint
from pgy_pipeline.warehouse.copy_binary import COPY_HEADER, COPY_TRAILER, copy_rows, int8_array
from pgy_pipeline.warehouse.engine import PgConnection, psycopg_connection
from pgy_pipeline.warehouse.fetch_log import mark_loaded
from pgy_pipeline.warehouse.merge import DIFF_DDL, LoadCounts, MergeConflict, check_batch, merge_staged
from pgy_pipeline.warehouse.migrate import ensure_schema
from pgy_pipeline.warehouse.not_served import record_not_served
from pgy_pipeline.warehouse.prefetch import prefetched
from pgy_pipeline.warehouse.validate import LoadRejected, Span, to_spans

log = logging.getLogger(__name__)

# Arbitrary but fixed 64-bit advisory lock key ("pgy-load") shared by every loader process.
LOAD_LOCK_KEY = 0x7067792D6C6F6164
__all__ = ["LoadCounts", "LoadRejected", "load_points"]

_STAGE_DDL = """
CREATE TEMP TABLE pgy_stage_span (
    seq           integer NOT NULL,
    kol_id        text COLLATE "C" NOT NULL,
    increase_type text COLLATE "C" NOT NULL,
    first_date    date    NOT NULL,
    n             integer NOT NULL,
    nums          bigint[] NOT NULL,
    fetch_log_id  bigint
) ON COMMIT DROP
"""

# Series go in as two comma-joined strings (validated ids and series names cannot contain commas) and dates come
# back as ordinals: no per-element adaptation on the client, whose GIL the validation thread competes for.
_NEWEST_STORED = """
SELECT s.kol_id, s.increase_type,
       (SELECT max(t.date_key) - date '0001-01-01' + 1 FROM pgy.kol_fans_trend t
         WHERE t.kol_id = s.kol_id COLLATE "C" AND t.increase_type = s.increase_type COLLATE "C")
  FROM unnest(string_to_array(%s, ','), string_to_array(%s, ',')) AS s(kol_id, increase_type)
"""


def newest_stored(conn: PgConnection, series: Iterable[SeriesKey]) -> dict[SeriesKey, int]:
    """Newest stored date ordinal of each series (_NO_ROWS if none): one index probe each."""
    wanted = sorted(series)
    if not wanted:
        return {}
    kols, types = zip(*wanted, strict=True)
    rows = conn.execute(_NEWEST_STORED, (",".join(kols), ",".join(types))).fetchall()
    return {(k, t): _NO_ROWS if newest is None else newest for k, t, newest in rows}


_COPY_CHUNK = 256 * 1024
_NO_ROWS = -1  # "newest stored ordinal" of a series with no rows: every point is beyond it


def copy_spans(
    conn: PgConnection,
    direct: Iterable[tuple[Span, int]],
    fetch_ids: Mapping[SeriesKey, int],
    table: str = "pgy.kol_fans_trend",
) -> None:
    """Binary COPY of each span's points after its first `skip` into `table` (a trusted name, never user input),
    sent in ~256 kB pieces so the server indexes while we encode. The upsert benchmark's plain-COPY yardstick
    calls this too, so both sides of its ratio encode and send rows the same way."""
    with conn.cursor().copy(
        f"COPY {table} (kol_id, date_key, increase_type, num, fetch_log_id) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        pending = [COPY_HEADER]
        size = 0
        for span, skip in direct:
            encoded = copy_rows(span, skip, fetch_ids.get((span.kol_id, span.increase_type)))
            pending.append(encoded)
            size += len(encoded)
            if size >= _COPY_CHUNK:
                copy.write(b"".join(pending))
                pending, size = [], 0
        pending.append(COPY_TRAILER)
        copy.write(b"".join(pending))


class _Loader:
    """One load = one transaction on one connection; see the module docstring for the design."""

    def __init__(self, conn: PgConnection, fetch_ids: Mapping[SeriesKey, int]) -> None:
        self.conn = conn
        self.fetch_ids = fetch_ids
        self.newest: dict[SeriesKey, int] = {}  # series -> newest stored (or loaded) date ordinal
        self.direct = 0
        self.seq = 0

    def begin(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOAD_LOCK_KEY,))
        # The merge's statements are short and planned on fresh temp tables: JIT compilation would cost more
        # than it saves; a roomy work_mem keeps the expansion's sort / hash of changed rows in memory.
        self.conn.execute("SET LOCAL jit = off")
        self.conn.execute("SET LOCAL work_mem = '256MB'")
        self.conn.execute(_STAGE_DDL)
        self.conn.execute(DIFF_DDL)

    def _learn_newest(self, spans: list[Span]) -> None:
        """Newest stored date of every series in `spans` not seen before (one index probe each)."""
        self.newest.update(newest_stored(self.conn, {(r.kol_id, r.increase_type) for r in spans} - self.newest.keys()))

    def add_spans(self, spans: list[Span], newest_hint: Mapping[SeriesKey, int] | None = None) -> None:
        """COPY the points beyond each series' newest date straight into the target; stage the rest.

        `newest_hint`: newest dates looked up ahead (_with_newest) for series this load has not written;
        series it has written keep the loader's own, newer, knowledge.
        """
        for key, ordinal in (newest_hint or {}).items():
            self.newest.setdefault(key, ordinal)
        self._learn_newest(spans)
        newest = self.newest
        fetch_ids = self.fetch_ids
        direct: list[tuple[Span, int]] = []
        staged: list[tuple[Span, int]] = []
        for span in spans:
            key = (span.kol_id, span.increase_type)
            last = newest[key]
            n = len(span.nums)
            overlap = min(n, max(0, last - span.first_ordinal + 1))  # leading points on or before `last`
            if overlap:
                staged.append((span, overlap))
            if overlap < n:
                direct.append((span, overlap))
                newest[key] = span.last_ordinal
                self.direct += n - overlap
        if direct:
            self._copy_direct(direct)
        if staged:
            checked = self.seq
            with self.conn.cursor().copy(
                "COPY pgy_stage_span (seq, kol_id, increase_type, first_date, n, nums, fetch_log_id)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int4", "text", "text", "date", "int4", "bytea", "int8"])
                for span, overlap in staged:
                    self.seq += 1
                    copy.write_row(
                        (
                            self.seq,
                            span.kol_id,
                            span.increase_type,
                            date.fromordinal(span.first_ordinal),
                            overlap,
                            int8_array(span.nums[:overlap]),
                            fetch_ids.get((span.kol_id, span.increase_type)),
                        )
                    )
            check_batch(self.conn, checked)

    def _copy_direct(self, direct: list[tuple[Span, int]]) -> None:
        copy_spans(self.conn, direct, self.fetch_ids)

    def merge(self) -> LoadCounts:
        """Diff the staged spans against the stored rows and write only what differs (see module docstring)."""
        if self.seq == 0:
            return LoadCounts(self.direct, 0, 0)
        try:
            inserted, updated, unchanged = merge_staged(self.conn)
        except MergeConflict as exc:
            raise LoadRejected(str(exc)) from None
        return LoadCounts(self.direct + inserted, updated, unchanged)


def _validated_spans(points: Iterable[TrendPoint], batch_size: int) -> Iterator[list[Span]]:
    """The input cut into validated spans, `batch_size` points at a time (raises LoadRejected)."""
    iterator = iter(points)
    good_kols: set[str] = set()
    start = 0
    while batch := list(islice(iterator, batch_size)):
        yield to_spans(batch, start, good_kols, background=True)
        start += len(batch)


Prepared = tuple[list[Span], dict[SeriesKey, int]]


def _with_newest(batches: Iterator[list[Span]], lookup: PgConnection) -> Iterator[Prepared]:
    """Each batch with the newest stored date of the series it is the first to mention.

    Works on a second connection, in its own thread, so the look-up overlaps the loading connection's work on
    the previous batch. Reading committed rows is exact here: the load holds the advisory lock (no other
    loader writes) and has not written any series before this look-up returns it.
    """
    seen: set[SeriesKey] = set()
    for spans in batches:
        unseen = {(r.kol_id, r.increase_type) for r in spans} - seen
        seen |= unseen
        newest = newest_stored(lookup, unseen)
        lookup.rollback()  # hold no snapshot between batches
        yield spans, newest


def load_points(
    engine: Engine,
    points: Iterable[TrendPoint],
    *,
    fetch_ids: Mapping[SeriesKey, int] | None = None,
    batch_size: int = 100_000,
) -> LoadCounts:
    """Upsert `points` into pgy.kol_fans_trend in one transaction and return what changed.

    `fetch_ids` maps (kol_id, increase_type) to the pgy.fetch_log id of the call that delivered that
    series (recorded on inserted/updated rows and on revisions); those calls are marked loaded in
    pgy.fetch_log_loaded by the load's own transaction, which also records the dates their windows covered but
    did not contain as not served (pgy.kol_fans_not_served). Raises LoadRejected, having written nothing, when any
    point is invalid or one key arrives twice with different nums.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, not {batch_size}")
    ensure_schema(engine)
    with psycopg_connection(engine) as conn, psycopg_connection(engine) as lookup:
        try:
            loader = _Loader(conn, fetch_ids or {})
            loader.begin()  # holds the advisory lock before the first look-up on `lookup`
            validated = prefetched(_validated_spans(points, batch_size), "pgy-load-validate")
            prepared = prefetched(_with_newest(validated, lookup), "pgy-load-lookup")
            # closing(): stop both threads now if the load fails, before `lookup` returns to the pool.
            with contextlib.closing(prepared):
                for spans, newest in prepared:
                    loader.add_spans(spans, newest)
            counts = loader.merge()
            if fetch_ids:  # the calls' rows are in: said by this same transaction, so never said falsely
                mark_loaded(conn, fetch_ids.values())
                record_not_served(conn, fetch_ids.values())  # dates these windows covered but did not contain
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    log.debug("loaded %s", counts)
    return counts
