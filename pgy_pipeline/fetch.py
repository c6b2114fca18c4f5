"""Running many trend calls concurrently through one TrendClient, with a prompt, clean stop.

Requests are consumed lazily and only a few per worker are queued, and `fetch_iter` yields results as they
complete, so memory stays bounded whatever the KOL count. On a stop-the-run condition no new call is dispatched,
calls in flight finish their current attempt without retrying, and every request never sent is reported as
NOT_ATTEMPTED. See docs/api-client.md (fetching many calls at once).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import chain

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.budget import CallBudget
from pgy_pipeline.model import CallRequest, CallResult, StopRun

QUEUE_FACTOR = 2  # calls queued per worker thread: keeps workers busy without buffering the whole run


class FetchStream:
    """Results of `requests` as they complete; after iteration, `stop` holds the stop condition if any.

    Iterate it once. `indexed()` yields `(position in requests, result)` pairs instead.
    """

    def __init__(self, client: TrendClient, requests: Iterable[CallRequest], budget: CallBudget | None = None) -> None:
        self.client = client
        self._requests = requests
        self.budget = budget
        self.stop: StopRun | None = None

    def __iter__(self) -> Iterator[CallResult]:
        return (result for _, result in self.indexed())

    def _call(self, request: CallRequest) -> CallResult:
        try:
            result = self.client.call(request)
        except StopRun as stop:
            if self.stop is None:
                self.stop = stop
            result = stop.result if stop.result is not None else self.client.not_attempted(request)
        if self.budget is not None:
            self.budget.settle(sum(a.billed for a in result.attempts))
        return result

    def indexed(self) -> Iterator[tuple[int, CallResult]]:
        client = self.client
        todo = enumerate(self._requests)
        pending: dict[Future[CallResult], int] = {}
        refused: list[tuple[int, CallRequest]] = []
        # One thread per slot the client may ever open; how many of them send at once is the client's
        # ConcurrencyLimit's call (fixed, or adapted to the API's answers).
        limit = client.max_concurrency * QUEUE_FACTOR
        with ThreadPoolExecutor(max_workers=client.max_concurrency, thread_name_prefix="pgy-fetch") as pool:
            exhausted = False
            try:
                while True:
                    while not exhausted and not client.stop_event.is_set() and len(pending) < limit:
                        item = next(todo, None)
                        if item is None:
                            exhausted = True
                        elif self.budget is not None and not self.budget.take():
                            exhausted = True
                            refused.append(item)
                        else:
                            pending[pool.submit(self._call, item[1])] = item[0]
                    if not pending:
                        break
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield pending.pop(future), future.result()
            finally:
                # The consumer gave up (an exception, or it stopped iterating): drop the queued calls
                # rather than sending them; only the calls already on the wire are waited for.
                for future in pending:
                    future.cancel()
        if self.stop is None and client.stopped is not None:
            self.stop = client.stopped  # stopped by an earlier run of the same client
        for index, request in chain(refused, todo):
            yield index, client.not_attempted(request)


def fetch_iter(client: TrendClient, requests: Iterable[CallRequest], budget: CallBudget | None = None) -> FetchStream:
    """Stream results as calls complete (completion order); see FetchStream. With a `budget`, no call is sent
    once it is spent: the rest come back not attempted (and `budget.refused` counts the refusal)."""
    return FetchStream(client, requests, budget)
