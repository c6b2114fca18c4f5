"""The loader on real Postgres: one row per key, revisions for restatements, nothing written for bad input."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.model import BIGINT_MAX, TrendPoint
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.load import LoadCounts, LoadRejected, load_points
from pgy_pipeline_tests.support.warehouse import KOL, LAST, NEW, TOTAL, stored, window


def revisions(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select kol_id, date_key, increase_type, old_num, new_num, fetch_log_id, changed_at is not null"
                " from pgy.kol_fans_trend_revision order by id"
            )
        )
        return [tuple(r) for r in rows]


def test_overlapping_30_60_90_day_windows_give_one_row_per_key(engine: Engine) -> None:
    assert load_points(engine, window(KOL, TOTAL, 30)) == LoadCounts(30, 0, 0)
    assert load_points(engine, window(KOL, TOTAL, 60)) == LoadCounts(30, 0, 30)
    assert load_points(engine, window(KOL, TOTAL, 90)) == LoadCounts(30, 0, 60)
    rows = stored(engine)
    assert len(rows) == 90
    assert rows == {(p.kol_id, p.date_key, p.increase_type): p.num for p in window(KOL, TOTAL, 90)}
    assert revisions(engine) == []


def test_overlapping_windows_in_one_load_collapse(engine: Engine) -> None:
    points = window(KOL, TOTAL, 30) + window(KOL, TOTAL, 90) + window(KOL, TOTAL, 60) + window(KOL, NEW, 30)
    assert load_points(engine, points) == LoadCounts(120, 0, 0)
    assert len(stored(engine)) == 120
    assert load_points(engine, points, batch_size=7) == LoadCounts(0, 0, 120)


def test_next_day_window_inserts_one_row_and_leaves_the_rest(engine: Engine) -> None:
    load_points(engine, window(KOL, TOTAL, 30) + window(KOL, NEW, 30))
    counts = load_points(engine, window(KOL, TOTAL, 30, LAST + timedelta(days=1)) + window(KOL, NEW, 30, LAST))
    assert counts == LoadCounts(1, 0, 59)
    assert len(stored(engine)) == 61


def test_restated_value_is_one_update_and_one_revision(engine: Engine) -> None:
    load_points(engine, window(KOL, TOTAL, 30), fetch_ids={(KOL, TOTAL): 11})
    restated = window(KOL, TOTAL, 30)
    old = restated[10]
    restated[10] = old._replace(num=old.num + 5)
    assert load_points(engine, restated, fetch_ids={(KOL, TOTAL): 12}) == LoadCounts(0, 1, 29)
    assert revisions(engine) == [(KOL, old.date_key, TOTAL, old.num, old.num + 5, 12, True)]
    assert stored(engine)[(KOL, old.date_key, TOTAL)] == old.num + 5
    with engine.connect() as conn:
        provenance: dict[date, int] = dict(
            conn.execute(text("select date_key, fetch_log_id from pgy.kol_fans_trend")).all()
        )
    assert provenance[old.date_key] == 12  # the restating call
    assert set(provenance.values()) == {11, 12}  # the rest keeps the call that delivered it first


def test_identical_reload_changes_nothing(engine: Engine) -> None:
    points = [p for kol in ("a", "b", "c") for series in (TOTAL, NEW) for p in window(kol, series, 60)]
    assert load_points(engine, points) == LoadCounts(360, 0, 0)
    with engine.connect() as conn:
        before = conn.execute(text("select ctid::text, xmin::text from pgy.kol_fans_trend order by 1")).all()
    assert load_points(engine, points) == LoadCounts(0, 0, 360)
    with engine.connect() as conn:
        after = conn.execute(text("select ctid::text, xmin::text from pgy.kol_fans_trend order by 1")).all()
    assert after == before  # no row version was rewritten
    assert revisions(engine) == []


def test_identical_duplicates_collapse(engine: Engine) -> None:
    point = window(KOL, TOTAL, 1)[0]
    assert load_points(engine, [point, point, point]) == LoadCounts(1, 0, 0)
    assert load_points(engine, [point, point]) == LoadCounts(0, 0, 1)


def test_gaps_and_any_order_are_accepted(engine: Engine) -> None:
    points = window(KOL, TOTAL, 20)
    shuffled = points[15:] + points[::3][::-1] + points[:15]
    counts = load_points(engine, shuffled)
    assert counts.inserted == 20 and counts.updated == 0
    assert stored(engine) == {(p.kol_id, p.date_key, p.increase_type): p.num for p in points}


def test_plain_tuples_are_accepted(engine: Engine) -> None:
    assert load_points(engine, [(KOL, LAST, NEW, 3)]) == LoadCounts(1, 0, 0)  # type: ignore[list-item]


def test_empty_input_is_a_no_op(engine: Engine) -> None:
    assert load_points(engine, []) == LoadCounts(0, 0, 0)


BAD_POINTS = [
    pytest.param(("", LAST, TOTAL, 1), r"invalid KOL id ''", id="empty-kol"),
    pytest.param(("k" * 65, LAST, TOTAL, 1), "invalid KOL id", id="long-kol"),
    pytest.param(("x'); drop table pgy.kol_fans_trend;--", LAST, TOTAL, 1), "invalid KOL id", id="sql-kol"),
    pytest.param(("kol id", LAST, TOTAL, 1), "invalid KOL id", id="space-kol"),
    pytest.param((None, LAST, TOTAL, 1), "invalid KOL id None", id="none-kol"),
    pytest.param((KOL, datetime(2026, 3, 1, 12), TOTAL, 1), "date_key must be a datetime.date, not datetime", id="dt"),
    pytest.param((KOL, "2026-03-01", TOTAL, 1), "date_key must be a datetime.date, not str", id="str-date"),
    pytest.param((KOL, LAST, "followers", 1), "increase_type must be one of", id="bad-series"),
    pytest.param((KOL, LAST, TOTAL, True), "num must be an int, not bool", id="bool-num"),
    pytest.param((KOL, LAST, TOTAL, 1.0), "num must be an int, not float", id="float-num"),
    pytest.param((KOL, LAST, TOTAL, "5"), "num must be an int, not str", id="str-num"),
    pytest.param((KOL, LAST, TOTAL, BIGINT_MAX + 1), "outside the bigint range", id="huge-num"),
    pytest.param((KOL, LAST, TOTAL), r"expected \(kol_id, date_key, increase_type, num\)", id="short"),
    pytest.param(42, r"expected \(kol_id, date_key, increase_type, num\)", id="not-a-tuple"),
]


@pytest.mark.parametrize(("bad", "rule"), BAD_POINTS)
@pytest.mark.parametrize("batch_size", [100_000, 3])
def test_invalid_point_rejects_the_whole_load(engine: Engine, bad: Any, rule: str, batch_size: int) -> None:
    good = window(KOL, TOTAL, 5)  # with batch_size 3 the first batch is COPYed before the bad point is seen
    with pytest.raises(LoadRejected, match=rf"point #6 .*{rule}.*nothing was loaded"):
        load_points(engine, [*good, bad, *window(KOL, NEW, 5)], batch_size=batch_size)
    assert stored(engine) == {}


@pytest.mark.parametrize("batch_size", [100_000, 4])
def test_conflicting_duplicate_rejects_the_whole_load(engine: Engine, batch_size: int) -> None:
    load_points(engine, window(KOL, NEW, 10))  # existing rows must stay as they are
    points = window(KOL, TOTAL, 10)
    clash = points[2]._replace(num=points[2].num + 1)
    with pytest.raises(LoadRejected, match=rf"kol_id='{KOL}', date_key={clash.date_key}, increase_type='total_fans'"):
        load_points(engine, [*points, *window(KOL, NEW, 10), clash], batch_size=batch_size)
    assert stored(engine) == {(p.kol_id, p.date_key, p.increase_type): p.num for p in window(KOL, NEW, 10)}
    assert revisions(engine) == []


def test_conflict_inside_the_stored_range_is_rejected_not_treated_as_a_restatement(engine: Engine) -> None:
    load_points(engine, window(KOL, TOTAL, 10))
    first = window(KOL, TOTAL, 10)[4]
    with pytest.raises(LoadRejected, match="appears more than once in this load with different nums"):
        load_points(engine, [first._replace(num=1), first._replace(num=2)])
    assert revisions(engine) == []


def _load_in_child(url: str, days: int, last: date, barrier: Any) -> tuple[int, int, int]:
    engine = make_engine(url)
    points = [p for k in range(40) for s in (TOTAL, NEW) for p in window(f"kol{k:03d}", s, days, last)]
    barrier.wait(timeout=60)
    counts = load_points(engine, points, batch_size=500)
    engine.dispose()
    return tuple(counts)  # type: ignore[return-value]


def test_two_processes_loading_overlapping_keys_both_succeed(database_url: str, engine: Engine) -> None:
    ctx = multiprocessing.get_context("spawn")
    # An executor shuts its workers down by asking them to finish (a Pool's __exit__ terminates them, which
    # once hung this test for its whole timeout in a busy suite).
    with ctx.Manager() as manager, ProcessPoolExecutor(2, mp_context=ctx) as pool:
        barrier = manager.Barrier(2)
        jobs = [
            pool.submit(_load_in_child, database_url, 60, LAST, barrier),
            pool.submit(_load_in_child, database_url, 60, LAST + timedelta(days=30), barrier),
        ]
        results = [LoadCounts(*job.result(timeout=120)) for job in jobs]
    # Serialised by the advisory lock: whichever ran second found the 30 overlapping days already there.
    assert sorted(results) == sorted([LoadCounts(4800, 0, 0), LoadCounts(2400, 0, 2400)])
    expected = {
        (p.kol_id, p.date_key, p.increase_type): p.num
        for k in range(40)
        for s in (TOTAL, NEW)
        for p in window(f"kol{k:03d}", s, 90, LAST + timedelta(days=30))
    }
    assert stored(engine) == expected
    assert revisions(engine) == []


def test_failing_input_writes_nothing_and_leaves_no_thread(engine: Engine) -> None:
    def points() -> Iterator[TrendPoint]:
        yield from window(KOL, TOTAL, 30)
        raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        load_points(engine, points(), batch_size=10)
    assert stored(engine) == {}
    assert not [t.name for t in threading.enumerate() if t.name.startswith("pgy-load")]
    assert load_points(engine, window(KOL, TOTAL, 30)) == LoadCounts(30, 0, 0)  # the pool is still usable
