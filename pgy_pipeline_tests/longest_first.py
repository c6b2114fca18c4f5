"""Pytest plugin: under xdist, every worker starts with its share of the slow tests, longest first.

pytest-xdist's `worksteal` scheduler hands each worker one contiguous slice of the collection and lets idle
workers steal from the end of the others' queues. Left in file order, a 4-minute daemon test can start last
and set the whole suite's wall time. Here the tests marked `slow` or `subprocess`, grouped by module so a
module-scoped fixture (the wheel build) is made once, are spread over the slices so each worker begins with
them. Their expected cost is their `timeout` mark: the longest tests carry the longest limits. Without xdist,
files keep their order.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict

import pytest

HEAVY = ("slow", "subprocess")  # the markers of tests that take seconds to minutes


def _heavy(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(name) is not None for name in HEAVY)


def _cost(item: pytest.Item) -> float:
    """The test's own `timeout` mark; else pyproject's 300 s for a slow test, a guess of 30 s for the rest."""
    mark = item.get_closest_marker("timeout")
    if mark is not None and mark.args:
        return float(mark.args[0])
    return 300.0 if item.get_closest_marker("slow") is not None else 30.0


def _slices(total: int, workers: int) -> list[int]:
    """The sizes of the slices xdist's worksteal scheduler first sends to `workers` idle workers."""
    sizes, left = [], total
    for i in range(workers):
        size = left // (workers - i)
        sizes.append(size)
        left -= size
    return sizes


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2 or not items:
        return
    by_module: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        if _heavy(item):
            by_module[item.nodeid.split("::")[0]].append(item)
    groups = sorted(by_module.values(), key=lambda group: -max(map(_cost, group)))
    sizes = _slices(len(items), workers)
    heads: list[list[pytest.Item]] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for group in groups:  # longest first, each to the least-loaded slice with room
        fits = [w for w in range(workers) if len(heads[w]) + len(group) <= sizes[w]] or list(range(workers))
        w = min(fits, key=lambda i: load[i])
        heads[w] += sorted(group, key=lambda item: -_cost(item))
        load[w] += max(map(_cost, group))  # a module's tests mostly share its costly fixture
    placed = {id(item) for head in heads for item in head}
    rest = iter([item for item in items if id(item) not in placed])
    ordered: list[pytest.Item] = []
    for w in range(workers):
        ordered += heads[w]
        ordered += itertools.islice(rest, max(0, sizes[w] - len(heads[w])))
    ordered += list(rest)
    items[:] = ordered
