"""A cap on billed calls per China day across all runs (PGY_DAILY_CALL_BUDGET), never exceeded.

The fetcher takes one unit before it sends a call (a call is billed at most once: codes 0 and 201 on its
final answer), so concurrent calls can never overshoot; what was billed earlier today comes from
`pgy.fetch_log`. A refused call is reported as not attempted and the run fails with a sentence naming the
budget. The day is the China calendar day of the wall clock, not a partition date. See docs/operations.md.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class CallBudget:
    """`limit` billed calls for today, of which `spent_before` were billed before this run started."""

    limit: int
    spent_before: int
    taken: int = 0
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> bool:
        """Reserve one billed call; False (and counted as refused) when the budget is spent."""
        with self._lock:
            if self.spent_before + self.taken >= self.limit:
                self.refused += 1
                return False
            self.taken += 1
            return True

    def settle(self, billed: int) -> None:
        """A call that took one unit finished having billed `billed` calls: return what it did not use."""
        with self._lock:
            self.taken += billed - 1

    @property
    def left(self) -> int:
        return max(0, self.limit - self.spent_before - self.taken)
