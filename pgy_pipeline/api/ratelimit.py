"""The client-wide gate every request passes: a steady rate limit plus an adaptive slow-down.

One gate is shared by all worker threads, so when any call sees 302 / HTTP 429 the *whole client*
pauses (honouring Retry-After) and then sends at a lower pace that relaxes again as calls succeed —
slowing only the unlucky call would let the other threads keep hammering the limit.
"""

from __future__ import annotations

import threading
import time

# Pace after the first slow-down when no rate limit is configured: 20 requests/s across all threads.
FIRST_SLOW_INTERVAL_S = 0.05
RELAX_FACTOR = (
    0.97  # each success shortens the interval by 3 % (halved after ~23 successes) back to the configured pace
)


class RateGate:
    """Hands out send slots no closer together than the current interval, and not before a pause ends."""

    def __init__(self, rate_limit_per_s: float | None, max_interval_s: float) -> None:
        if rate_limit_per_s is not None and rate_limit_per_s <= 0:
            raise ValueError(f"rate_limit_per_s must be positive, got {rate_limit_per_s}")
        self._base = 1.0 / rate_limit_per_s if rate_limit_per_s else 0.0
        self._max = max(max_interval_s, self._base)
        self._interval = self._base
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self.slowdowns = 0  # how many times a 302/429 slowed the client (for metadata and tests)
        self.waits = 0  # how many sends had to wait for their slot

    @property
    def interval_s(self) -> float:
        """Current minimum gap between two requests from this client."""
        return self._interval

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Wait for the next send slot; False if `cancel` was set while waiting (the run stopped)."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next_slot, self._paused_until)
            self._next_slot = slot + self._interval
            delay = slot - now
            if delay > 0:
                self.waits += 1
        if delay <= 0:
            return not (cancel is not None and cancel.is_set())
        if cancel is None:
            time.sleep(delay)
            return True
        return not cancel.wait(delay)

    def slow_down(self, pause_s: float) -> None:
        """Pause every thread for `pause_s` and halve the pace (bounded by the maximum interval)."""
        with self._lock:
            self.slowdowns += 1
            self._paused_until = max(self._paused_until, time.monotonic() + pause_s)
            self._interval = min(self._max, max(self._interval * 2, self._base, FIRST_SLOW_INTERVAL_S))

    def relax(self) -> None:
        """A call succeeded: move the pace back towards the configured rate."""
        if self._interval <= self._base:
            return
        with self._lock:
            relaxed = self._interval * RELAX_FACTOR
            self._interval = self._base if relaxed < max(self._base, FIRST_SLOW_INTERVAL_S / 4) else relaxed

    def pause(self, pause_s: float) -> None:
        """Hold every thread's next send for `pause_s` (the server's Retry-After), without changing the pace."""
        with self._lock:
            self.slowdowns += 1
            self._paused_until = max(self._paused_until, time.monotonic() + pause_s)
