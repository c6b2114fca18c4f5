"""Running a producer one item ahead in a thread: the loader's pipeline of validate -> look up -> load.

The loading connection's thread spends most of a load waiting on the socket (which releases the GIL), so
validating the next batch and looking up its series on a second connection can overlap it. One queued item
per stage keeps memory at a few batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetched(produce: Iterator[T], name: str) -> Generator[T, None, None]:
    """Yield what `produce` yields, computed one item ahead in a thread named `name`.

    Exceptions in the producer are re-raised in the consumer. Closing this generator (use
    contextlib.closing) stops the thread and closes `produce` in it, so a failed load leaves nothing behind.
    """
    results: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: object) -> bool:
        """Hand one item over; False once the consumer has gone away."""
        while not stop.is_set():
            try:
                results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def worker() -> None:
        try:
            for item in produce:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(exc)
        finally:
            close = getattr(produce, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=worker, name=name, daemon=True)
    thread.start()
    try:
        while (item := results.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
