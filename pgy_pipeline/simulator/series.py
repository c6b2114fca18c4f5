"""Deterministic follower series per KOL: the simulator's ground truth.

Each KOL's total-fans series is a random walk seeded by a stable hash of (seed, kol_id) — never
Python's per-process randomised `hash()` — starting on ANCHOR, so every process, test and rerun sees
the same numbers. New fans on d = total[d] - total[d-1], as on the platform. Restatements (a past
value changing between two fetches) are explicit overrides on top of the walk.
"""

from __future__ import annotations

import hashlib
import random
import threading
from array import array
from collections import OrderedDict
from datetime import date, timedelta

from pgy_pipeline.model import Series

ANCHOR = date(2024, 1, 1)  # first date any simulated KOL has data for
CACHE_KOLS = 1024  # walks kept in memory (their size: docs/api-client.md, the simulator)


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from the parts' text, identical in every process."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _walk(seed: int, kol_id: str, days: int) -> array[int]:
    """Totals for ANCHOR-1 .. ANCHOR+days-1: a drifting walk from a seeded base, some days negative."""
    rng = random.Random(stable_seed(seed, kol_id))
    total = int(10 ** rng.uniform(2.5, 6.0))
    drift = total * rng.uniform(-0.0005, 0.002)
    spread = max(1.5, total * 0.001)
    totals = array("q", [total])
    for _ in range(days):
        total = max(0, total + round(rng.gauss(drift, spread)))
        totals.append(total)
    return totals


class SeriesBook:
    """Ground truth for every KOL: the seeded walk plus restated values (thread-safe)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._walks: OrderedDict[str, array[int]] = OrderedDict()
        self._overrides: dict[tuple[str, Series, date], int] = {}
        self._jumps: dict[str, list[tuple[date, int]]] = {}
        self._first_dates: dict[str, date] = {}  # young accounts: no data before this date
        self._holes: set[tuple[str, date]] = set()  # dates the platform never serves for a KOL
        self._lock = threading.Lock()

    def _total_walk(self, kol_id: str, until: date) -> array[int]:
        needed = (until - ANCHOR).days + 2
        with self._lock:
            walk = self._walks.get(kol_id)
            if walk is not None and len(walk) >= needed:
                self._walks.move_to_end(kol_id)
                return walk
        walk = _walk(self.seed, kol_id, max(needed, 366) + 365)  # a year of headroom: rare recomputes
        with self._lock:
            self._walks[kol_id] = walk
            while len(self._walks) > CACHE_KOLS:
                self._walks.popitem(last=False)
        return walk

    def truth(self, kol_id: str, series: Series, day: date) -> int | None:
        """The value the platform would report today for `day` (None before the KOL's first date or in a hole)."""
        if day < max(ANCHOR, self._first_dates.get(kol_id, ANCHOR)) or (kol_id, day) in self._holes:
            return None
        override = self._overrides.get((kol_id, series, day))
        if override is not None:
            return override
        if series is Series.TOTAL_FANS:
            return self._total_walk(kol_id, day)[(day - ANCHOR).days + 1] + self._jumped(kol_id, day)
        today = self.truth(kol_id, Series.TOTAL_FANS, day)
        before = self._overrides.get((kol_id, Series.TOTAL_FANS, day - timedelta(days=1)))
        if before is None:
            before = self._total_walk(kol_id, day)[(day - ANCHOR).days] + self._jumped(kol_id, day - timedelta(days=1))
        assert today is not None
        return today - before

    def window(self, kol_id: str, series: Series, latest: date, days: int) -> list[tuple[date, int]]:
        """(date, num) for the `days` dates ending at `latest`, oldest first, skipping dates before ANCHOR."""
        out: list[tuple[date, int]] = []
        for offset in range(days - 1, -1, -1):
            day = latest - timedelta(days=offset)
            num = self.truth(kol_id, series, day)
            if num is not None:
                out.append((day, num))
        return out

    def _jumped(self, kol_id: str, day: date) -> int:
        return sum(delta for since, delta in self._jumps.get(kol_id, ()) if since <= day)

    def jump(self, kol_id: str, day: date, delta: int) -> None:
        """From `day` on, the KOL's total is `delta` higher (a bought batch) or lower (followers removed).

        New fans on `day` move by `delta` too, as on the platform; it is how tests and the demo plant a
        spike (a positive jump) or the loss after one (a negative jump a few days later).
        """
        with self._lock:
            self._jumps.setdefault(kol_id, []).append((day, delta))

    def start_history(self, kol_id: str, first_date: date) -> None:
        """Make `kol_id` a young account: nothing is served for dates before `first_date` (both series)."""
        with self._lock:
            self._first_dates[kol_id] = first_date

    def punch_hole(self, kol_id: str, day: date) -> None:
        """Never serve `day` for `kol_id` (both series), as the platform sometimes leaves a date out."""
        with self._lock:
            self._holes.add((kol_id, day))

    def restate(self, kol_id: str, series: Series, day: date, new_num: int) -> None:
        """From now on report `new_num` for that date (a restated total also moves new fans on d and d+1)."""
        with self._lock:
            self._overrides[(kol_id, series, day)] = new_num
