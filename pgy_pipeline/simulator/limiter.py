"""The simulator's hidden rate limit: requests per second and requests in flight, never published.

The real API limits callers without saying by how much, and the client has to find the level from the answers;
this limiter stands in for that limit so the client's adaptive concurrency can be tested and measured against a
real HTTP server: a token bucket for the rate, a count of requests whose answer is not yet due for the in-flight
limit. A refused request is answered at once with the limit's `reply` fault and is not billed.
See docs/api-client.md (the simulator).
"""

from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass

LIMIT_REPLIES = ("code_302", "http_429")


@dataclass(frozen=True)
class HiddenLimit:
    """What the simulated API allows one token; None: no limit of that kind."""

    max_rps: float | None = None
    max_in_flight: int | None = None
    reply: str = "code_302"
    burst: float | None = None  # token bucket size; default max(1, max_rps / 4)

    def __post_init__(self) -> None:
        if self.reply not in LIMIT_REPLIES:
            raise ValueError(f"a hidden limit answers with one of {', '.join(LIMIT_REPLIES)}, not {self.reply!r}")
        if self.max_rps is not None and self.max_rps <= 0:
            raise ValueError(f"max_rps must be positive, got {self.max_rps}")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")

    @property
    def bucket_size(self) -> float:
        if self.burst is not None:
            return self.burst
        return max(1.0, (self.max_rps or 0) / 4)

    def allowed_rps(self, latency_s: float) -> float | None:
        """The best rate a client can sustain under this limit at `latency_s` per answer (None: unlimited)."""
        rates: list[float] = []
        if self.max_rps is not None:
            rates.append(self.max_rps)
        if self.max_in_flight is not None and latency_s > 0:
            rates.append(self.max_in_flight / latency_s)
        return min(rates) if rates else None


class Limiter:
    """Admits or refuses each request against a HiddenLimit. Thread-safe."""

    def __init__(self, limit: HiddenLimit) -> None:
        self.limit = limit
        self._tokens = limit.bucket_size
        self._refilled_at = time.monotonic()
        self._due: list[float] = []  # answer times of admitted requests still in flight (a min-heap)
        self._lock = threading.Lock()
        self.admitted = 0
        self.refused = 0

    def admit(self, latency_s: float) -> bool:
        """True if a request arriving now may be served (its answer due in `latency_s`)."""
        limit = self.limit
        with self._lock:
            now = time.monotonic()
            if limit.max_rps is not None:
                self._tokens = min(limit.bucket_size, self._tokens + (now - self._refilled_at) * limit.max_rps)
                self._refilled_at = now
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            full = limit.max_in_flight is not None and len(self._due) >= limit.max_in_flight
            if full or (limit.max_rps is not None and self._tokens < 1):
                self.refused += 1
                return False
            if limit.max_rps is not None:
                self._tokens -= 1
            if limit.max_in_flight is not None:
                heapq.heappush(self._due, now + latency_s)
            self.admitted += 1
            return True
