"""Trend points checked and cut into spans: one series' points on consecutive dates, checked a span at a time.

Points arrive grouped per series in date order, so whole-span checks that CPython runs in C (`set(map(type,
...))`, `min`/`max`, ordinals against a `range`) replace per-point bytecode; anything unusual drops that group to
the per-point path, which names the bad point (`LoadRejected`) or cuts the group where a date is missing.
See docs/warehouse.md (the loader).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import date
from itertools import groupby
from operator import itemgetter
from typing import NamedTuple

from pgy_pipeline.errors import PgyError
from pgy_pipeline.model import BIGINT_MAX, BIGINT_MIN, InvalidKolId, Series, TrendPoint, check_kol_id

SERIES_VALUES = frozenset(s.value for s in Series)
_series_key = itemgetter(0, 2)


class LoadRejected(PgyError, ValueError):
    """The input cannot be loaded as given; nothing was written. The message names the row and the rule."""


class Span(NamedTuple):
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


def split_consecutive(kol_id: str, increase_type: str, ordinals: list[int], nums: Sequence[int]) -> list[Span]:
    """One series' points (in input order) as spans, cut wherever a date is not the day after the previous."""
    spans: list[Span] = []
    start = 0
    for i in range(1, len(ordinals) + 1):
        if i == len(ordinals) or ordinals[i] != ordinals[i - 1] + 1:
            spans.append(Span(kol_id, increase_type, ordinals[start], tuple(nums[start:i])))
            start = i
    return spans


def group_spans(points: Iterable[TrendPoint]) -> list[Span]:
    """Points as spans WITHOUT validating them (each series' points must be adjacent, as a run delivers them)."""
    spans: list[Span] = []
    for (kol_id, increase_type), group in groupby(points, key=_series_key):
        rows = list(group)
        spans += split_consecutive(kol_id, increase_type, [p.date_key.toordinal() for p in rows], [p.num for p in rows])
    return spans


def _fast_spans(
    kol_id: object, increase_type: object, rows: Sequence[object], good_kols: set[str]
) -> list[Span] | None:
    """Spans of one series group using only whole-span checks; None when anything needs a closer look."""
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
        return [Span(kol_id, increase_type, first, nums)]
    return split_consecutive(kol_id, increase_type, ordinals, nums)


def to_spans(batch: list[TrendPoint], start_index: int, good_kols: set[str], *, background: bool = False) -> list[Span]:
    """Validate `batch` (points start_index...) and cut it into spans; raise LoadRejected on the first bad point.

    `good_kols` caches ids already validated, across batches. With `background` (the loader runs this in a
    thread beside the connection's thread) it yields the GIL every few groups: otherwise each wake-up of the
    loading thread after a query waits out CPython's 5 ms switch interval (see docs/warehouse.md, the loader).
    """
    try:
        groups = [(key, list(group)) for key, group in groupby(batch, key=_series_key)]
    except (TypeError, IndexError, KeyError):
        for i, point in enumerate(batch):
            check_point(start_index + i, point)
        raise AssertionError("a point failed grouping but passed validation") from None
    spans: list[Span] = []
    position = start_index
    for count, ((kol_id, increase_type), rows) in enumerate(groups, 1):
        if background and count % 16 == 0:
            time.sleep(0)  # hand the GIL to the loading thread if its query has returned (see below)
        fast = _fast_spans(kol_id, increase_type, rows, good_kols)
        if fast is None:
            checked = [check_point(position + i, point) for i, point in enumerate(rows)]
            fast = split_consecutive(
                checked[0].kol_id,
                checked[0].increase_type,
                [p.date_key.toordinal() for p in checked],
                [p.num for p in checked],
            )
        spans.extend(fast)
        position += len(rows)
    return spans
