"""Turning a stream of trend points into validated runs of consecutive dates, with C-speed inner loops.

The loader's budget is a fraction of a plain binary COPY, so per-point Python bytecode is the enemy. A
run delivers each series' window as consecutive dates in order, so points are grouped per series
(`itertools.groupby`), transposed with `zip`, and checked with whole-run operations that CPython runs in C
(`set(map(type, ...))`, `min`/`max`, comparing ordinals with a `range`). Anything unusual -- a bad id, a
`datetime`, a bool, a float, a gap in the dates -- drops that group to the explicit per-point path, which
either names the offending point or splits the group where its dates are not consecutive.

Binary COPY rows for the target table are also built a whole run at a time with one `struct.pack`.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Sequence
from datetime import date
from itertools import chain, groupby, repeat
from operator import itemgetter
from typing import NamedTuple

from pgy_pipeline.errors import PgyError
from pgy_pipeline.model import BIGINT_MAX, BIGINT_MIN, InvalidKolId, Series, TrendPoint, check_kol_id

SERIES_VALUES = frozenset(s.value for s in Series)
PG_EPOCH_ORDINAL = date(2000, 1, 1).toordinal()  # binary COPY dates are days since 2000-01-01
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header-extension length
COPY_TRAILER = b"\xff\xff"
_series_key = itemgetter(0, 2)
_INT = struct.Struct(">i")


class LoadRejected(PgyError, ValueError):
    """The input cannot be loaded as given; nothing was written. The message names the row and the rule."""


class Run(NamedTuple):
    """Points of one series on consecutive dates: first_ordinal, first_ordinal + 1, ... (date.toordinal())."""

    kol_id: str
    increase_type: str
    first_ordinal: int
    nums: Sequence[int]

    @property
    def last_ordinal(self) -> int:
        return self.first_ordinal + len(self.nums) - 1


def _reject(index: int, point: object, rule: str) -> LoadRejected:
    return LoadRejected(f"point #{index + 1} {point!r}: {rule}; nothing was loaded")


def check_point(index: int, point: object) -> TrendPoint:
    """Validate one point (index is its 0-based position in the input); raise LoadRejected naming the rule."""
    try:
        fields: tuple[object, ...] = tuple(point)  # type: ignore[arg-type]
        kol_id, date_key, increase_type, num = fields
    except (TypeError, ValueError):
        raise _reject(index, point, "expected (kol_id, date_key, increase_type, num)") from None
    try:
        valid_kol_id = check_kol_id(kol_id)
    except InvalidKolId as exc:
        raise _reject(index, point, str(exc)) from None
    if type(date_key) is not date:
        raise _reject(index, point, f"date_key must be a datetime.date, not {type(date_key).__name__}")
    if not isinstance(increase_type, str) or increase_type not in SERIES_VALUES:
        raise _reject(index, point, f"increase_type must be one of {sorted(SERIES_VALUES)}")
    if type(num) is not int:
        raise _reject(index, point, f"num must be an int, not {type(num).__name__}")
    if not BIGINT_MIN <= num <= BIGINT_MAX:
        raise _reject(index, point, f"num {num} is outside the bigint range")
    return TrendPoint(valid_kol_id, date_key, increase_type, num)


def split_consecutive(kol_id: str, increase_type: str, ordinals: list[int], nums: Sequence[int]) -> list[Run]:
    """One series' points (in input order) as runs, cut wherever a date is not the day after the previous."""
    runs: list[Run] = []
    start = 0
    for i in range(1, len(ordinals) + 1):
        if i == len(ordinals) or ordinals[i] != ordinals[i - 1] + 1:
            runs.append(Run(kol_id, increase_type, ordinals[start], tuple(nums[start:i])))
            start = i
    return runs


def group_runs(points: Iterable[TrendPoint]) -> list[Run]:
    """Points as runs WITHOUT validating them (each series' points must be adjacent, as a run delivers them)."""
    runs: list[Run] = []
    for (kol_id, increase_type), group in groupby(points, key=_series_key):
        rows = list(group)
        runs += split_consecutive(kol_id, increase_type, [p.date_key.toordinal() for p in rows], [p.num for p in rows])
    return runs


def _fast_runs(kol_id: object, increase_type: object, rows: Sequence[object], good_kols: set[str]) -> list[Run] | None:
    """Runs of one series group using only whole-run checks; None when anything needs a closer look."""
    try:
        if kol_id not in good_kols:
            good_kols.add(check_kol_id(kol_id))
        if increase_type not in SERIES_VALUES:
            return None
        _, dates, _, nums = zip(*rows, strict=True)
    except (TypeError, ValueError):  # unhashable / wrong arity / invalid id: the slow path says which
        return None
    if set(map(type, dates)) != {date} or set(map(type, nums)) != {int}:
        return None
    if min(nums) < BIGINT_MIN or max(nums) > BIGINT_MAX:
        return None
    assert isinstance(kol_id, str) and isinstance(increase_type, str)
    ordinals = list(map(date.toordinal, dates))
    first, n = ordinals[0], len(ordinals)
    if ordinals[-1] - first == n - 1 and ordinals == list(range(first, first + n)):
        return [Run(kol_id, increase_type, first, nums)]
    return split_consecutive(kol_id, increase_type, ordinals, nums)


def to_runs(batch: list[TrendPoint], start_index: int, good_kols: set[str], *, background: bool = False) -> list[Run]:
    """Validate `batch` (points start_index...) and cut it into runs; raise LoadRejected on the first bad point.

    `good_kols` caches ids already validated, across batches. With `background` (the loader runs this in a
    thread beside the connection's thread) it yields the GIL every few groups: otherwise each wake-up of the
    loading thread after a query waits out CPython's 5 ms switch interval, which doubled every round trip.
    """
    try:
        groups = [(key, list(group)) for key, group in groupby(batch, key=_series_key)]
    except (TypeError, IndexError, KeyError):
        for i, point in enumerate(batch):
            check_point(start_index + i, point)
        raise AssertionError("a point failed grouping but passed validation") from None
    runs: list[Run] = []
    position = start_index
    for count, ((kol_id, increase_type), rows) in enumerate(groups, 1):
        if background and count % 16 == 0:
            time.sleep(0)  # hand the GIL to the loading thread if its query has returned (see below)
        fast = _fast_runs(kol_id, increase_type, rows, good_kols)
        if fast is None:
            checked = [check_point(position + i, point) for i, point in enumerate(rows)]
            fast = split_consecutive(
                checked[0].kol_id,
                checked[0].increase_type,
                [p.date_key.toordinal() for p in checked],
                [p.num for p in checked],
            )
        runs.extend(fast)
        position += len(rows)
    return runs


def copy_rows(run: Run, skip: int, fetch_log_id: int | None) -> bytes:
    """Binary COPY rows (kol_id, date_key, increase_type, num, fetch_log_id) for run.nums[skip:].

    Everything but the date and num is the same on every row of a run, so each row is
    <constant prefix><date><constant middle><num><constant suffix>: one struct.pack for the whole run.
    """
    kol = run.kol_id.encode()
    series = run.increase_type.encode()
    prefix = struct.pack(">hi", 5, len(kol)) + kol + _INT.pack(4)
    middle = _INT.pack(len(series)) + series + _INT.pack(8)
    suffix = struct.pack(">iq", 8, fetch_log_id) if fetch_log_id is not None else _INT.pack(-1)
    nums = run.nums[skip:]
    m = len(nums)
    first_day = run.first_ordinal + skip - PG_EPOCH_ORDINAL
    row_format = f"{len(prefix)}si{len(middle)}sq{len(suffix)}s"
    fields = zip(
        repeat(prefix, m), range(first_day, first_day + m), repeat(middle, m), nums, repeat(suffix, m), strict=True
    )
    return struct.pack(">" + row_format * m, *chain.from_iterable(fields))


def int8_array(nums: Sequence[int]) -> bytes:
    """nums in PostgreSQL's binary int8[] format (sent as a bytea-typed COPY field into a bigint[] column).

    Header: 1 dimension, no nulls, element type int8 (oid 20), length, lower bound 1; then (length 8, value)
    per element -- built by one struct.pack instead of psycopg's per-element list dumper.
    """
    n = len(nums)
    return struct.pack(f">5i{n * 'iq'}", 1, 0, 20, n, 1, *chain.from_iterable(zip(repeat(8, n), nums, strict=True)))
