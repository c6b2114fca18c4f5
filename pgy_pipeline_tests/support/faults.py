"""Helpers for the fault and concurrency tests: hitting "mid-run" deterministically, and polling.

`GatedSimulator` holds the answers for chosen KOLs until the test releases them, so a test knows that
the calls before them completed (and their chunks were committed) while the held ones are in flight.
`blocked_merge` finds a loader stuck behind a row lock the test holds, i.e. a load caught inside its
merge transaction. Polling has generous deadlines that only guard against hanging: no test asserts
on time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import psycopg

from pgy_pipeline.simulator import Simulator
from pgy_pipeline.simulator.wire import Reply

T = TypeVar("T")
DEADLINE_S = 60.0


def wait_until(condition: Callable[[], T | None], what: str, deadline_s: float = DEADLINE_S) -> T:
    """Poll `condition` until it returns something truthy (returned); fail naming `what` at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what} after {deadline_s:.0f} s")
        time.sleep(0.02)


class GatedSimulator(Simulator):
    """A simulator whose answers for the `held` KOLs wait until `release` is set (then answer normally)."""

    def __init__(self, *args: Any, held: Collection[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = set(held)
        self.release = threading.Event()
        self._arrived = 0
        self._answered = 0
        self._arrived_lock = threading.Lock()

    @property
    def held_in_flight(self) -> int:
        """Requests for held KOLs that arrived and are waiting for the release."""
        with self._arrived_lock:
            return self._arrived

    @property
    def settled(self) -> bool:
        """Every held request that arrived has been answered (and billed, if it was a success)."""
        with self._arrived_lock:
            return self._answered == self._arrived

    def answer(self, path_and_query: str) -> tuple[Reply, float]:
        query = parse_qs(urlsplit(path_and_query).query)
        kol = (query.get("kolId") or query.get("userId") or [""])[0]
        if kol not in self.held or self.release.is_set():
            return super().answer(path_and_query)
        with self._arrived_lock:
            self._arrived += 1
        try:
            if not self.release.wait(DEADLINE_S):
                raise AssertionError("the test never released the held simulator calls")
            return super().answer(path_and_query)
        finally:
            with self._arrived_lock:
                self._answered += 1


_BLOCKED_UPDATE = r"""
select a.pid from pg_stat_activity a
 where a.datname = current_database() and a.wait_event_type = 'Lock'
   and a.query ~* '^\s*update\s+pgy\.kol_fans_trend\M'
   and exists (select 1 from pg_locks l where l.pid = a.pid and l.locktype = 'advisory' and l.granted)
"""


def blocked_merge(conn: psycopg.Connection[Any]) -> int | None:
    """pid of a loader inside its merge (holding the load lock) and waiting on a row lock, if any."""
    row = conn.execute(_BLOCKED_UPDATE).fetchone()
    return int(row[0]) if row else None


def backend_alive(conn: psycopg.Connection[Any], pid: int) -> bool:
    row = conn.execute("select count(*) from pg_stat_activity where pid = %s", (pid,)).fetchone()
    return bool(row and row[0])
