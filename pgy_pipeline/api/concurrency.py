"""How many calls a client keeps in flight: found at run time, because the API's real limit is unknown.

The Just One API enforces a rate limit it does not publish, and a fixed concurrency is either too low or too
high. `ConcurrencyLimit` finds the level the way TCP finds a link's capacity: slow start (double per full round
of clean answers until the first rate-limit answer), then additive increase and a cut per rate-limit episode,
with ever more patience near a level that was limited, so a run settles just below the limit yet still climbs.
Always within the configured [minimum, maximum]. See docs/api-client.md (how many calls at once).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

# Production bounds (the Dagster resource's defaults): start modestly, never above what one process
# sensibly keeps open against one API.
DEFAULT_START = 4
DEFAULT_MIN = 1
DEFAULT_MAX = 64

CUT_FRACTION = 0.25  # a rate-limit answer removes a quarter of the level (at least one slot)
FIRST_PROBE_ROUNDS = 4  # clean rounds just below a limited level before trying it again
MAX_PROBE_ROUNDS = 64
_WAIT_SLICE_S = 0.1  # how often a waiting thread looks at the cancel event


class Slot(NamedTuple):
    """A permission to send one request; `epoch` says which level it was granted under."""

    epoch: int


class ConcurrencyLimit:
    """A semaphore whose size adapts to the answers (see the module docstring). Thread-safe."""

    def __init__(self, initial: int, minimum: int, maximum: int) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(
                f"min_concurrency ({minimum}) must be at least 1 and at most max_concurrency ({maximum}): "
                "fix the trend_api resource config (min = max fixes the level)"
            )
        self.minimum = minimum
        self.maximum = maximum
        self._limit = min(max(initial, minimum), maximum)
        self._in_flight = 0
        self._epoch = 0
        self._clean = 0  # clean answers in the current round
        self._filled = False  # the current level was reached during this round
        self._rounds = 0  # clean rounds at the current level
        self._limited_at: int | None = None  # the level of the last cut
        self._probe_rounds = FIRST_PROBE_ROUNDS
        self._cond = threading.Condition()
        self.peak = self._limit  # highest level reached (run metadata)
        self.cuts = 0  # rate-limit episodes that lowered the level
        self.busy_s = 0.0  # time with at least one call in flight: how long the run spent fetching
        self._busy_since = 0.0

    @property
    def adaptive(self) -> bool:
        return self.minimum < self.maximum

    @property
    def limit(self) -> int:
        """Calls that may be in flight now."""
        return self._limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def acquire(self, cancel: threading.Event | None = None) -> Slot | None:
        """Wait until fewer than `limit` calls are in flight; None if `cancel` was set first."""
        with self._cond:
            while self._in_flight >= self._limit:
                if cancel is not None and cancel.is_set():
                    return None
                self._cond.wait(_WAIT_SLICE_S)
            if cancel is not None and cancel.is_set():
                return None
            if self._in_flight == 0:
                self._busy_since = time.monotonic()
            self._in_flight += 1
            if self._in_flight >= self._limit:
                self._filled = True
            return Slot(self._epoch)

    def release(self, slot: Slot, *, clean: bool = False, limited: bool = False) -> None:
        """The request sent under `slot` was answered: `clean` (loaded data), `limited` (302 / 429), or neither."""
        with self._cond:
            self._in_flight -= 1
            if self._in_flight == 0:
                self.busy_s += time.monotonic() - self._busy_since
            if limited:
                self._cut(slot)
            elif clean:
                self._count_clean()
            self._cond.notify()

    def _cut(self, slot: Slot) -> None:
        if slot.epoch != self._epoch:
            return  # sent before the last cut: that cut already answered this episode
        level = self._limit
        if self._limited_at is not None and abs(level - self._limited_at) <= 2:
            self._probe_rounds = min(MAX_PROBE_ROUNDS, self._probe_rounds * 2)  # about the same limit again
        else:
            self._probe_rounds = FIRST_PROBE_ROUNDS
        self._limited_at = level
        cut = level // 2 if self.cuts == 0 else max(1, int(level * CUT_FRACTION))  # slow start overshot: halve
        self._limit = max(self.minimum, level - cut)
        self._epoch += 1
        self.cuts += 1
        self._new_round()
        self._rounds = 0

    def _count_clean(self) -> None:
        self._clean += 1
        if self._clean < self._limit:
            return
        filled = self._filled
        self._new_round()
        if not filled or self._limit >= self.maximum:
            return
        self._rounds += 1
        if self._limited_at is not None and self._limit + 1 >= self._limited_at and self._rounds < self._probe_rounds:
            return  # just below the level that was limited: wait before probing it again
        if self._limited_at is not None and self._limit >= self._limited_at:
            self._probe_rounds = max(FIRST_PROBE_ROUNDS, self._probe_rounds // 2)  # the limited level held
        self._limit = min(self.maximum, self._limit * 2) if self.cuts == 0 else self._limit + 1
        self._rounds = 0
        self.peak = max(self.peak, self._limit)
        self._cond.notify_all()

    def _new_round(self) -> None:
        self._clean = 0
        self._filled = self._in_flight >= self._limit
