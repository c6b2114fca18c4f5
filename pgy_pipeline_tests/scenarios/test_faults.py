"""Faults on the bad days: Postgres stopped or restarted mid-run, the run SIGKILLed inside its merge, the API
going away mid-run. Each time: a clear failure, nothing half-written, and a rerun that heals with exactly
the right rows while billing only the calls whose rows were not committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterEventType, DagsterInstance, materialize
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.model import Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.errors import WarehouseUnavailable, reports_unreachable_warehouse
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.support.dagster import dagster_resources
from pgy_pipeline_tests.support.db import fresh_database, libpq_url
from pgy_pipeline_tests.support.faults import GatedSimulator, backend_alive, blocked_merge, wait_until
from pgy_pipeline_tests.support.owned_pg import OwnedPostgres, owned_postgres
from pgy_pipeline_tests.support.simulator import SIM_TODAY, client_for, fast_client
from pgy_pipeline_tests.support.warehouse import stored, track

DAY = SIM_TODAY - timedelta(days=1)  # the partition the runs below materialise


@pytest.fixture(scope="module")
def own_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnedPostgres]:
    """A Postgres only this module uses, so its tests may stop and restart it."""
    with owned_postgres(tmp_path_factory.mktemp("owned-pg")) as server:
        yield server


@pytest.fixture
def own_engine(own_pg: OwnedPostgres) -> Iterator[Engine]:
    """A migrated, empty warehouse on the owned server, through make_engine as production connects."""
    with fresh_database(own_pg.url) as url:
        eng = make_engine(url)
        upgrade(eng)
        yield eng
        eng.dispose()
        if not own_pg.running:
            own_pg.start()  # so fresh_database can drop it


def _expect_truth(engine: Engine, sim: Simulator, kols: list[str], first: date, last: date) -> None:
    """The warehouse holds exactly these KOLs' dates first..last, each with the simulator's current value."""
    rows = stored(engine, first - timedelta(days=400), last)
    want = {
        (k, first + timedelta(days=i), s.value): sim.truth(k, s, first + timedelta(days=i))
        for k in kols
        for s in Series
        for i in range((last - first).days + 1)
    }
    assert rows == want


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def _ok_calls(engine: Engine, run_id: str, *, marked: bool) -> int:
    """Successful calls of `run_id` in pgy.fetch_log, those marked loaded (rows committed) or those not."""
    sql = """
        select count(*) from pgy.fetch_log f
         where f.run_id = :run_id and f.is_final and f.outcome = 'ok'
           and exists (select from pgy.fetch_log_loaded l where l.fetch_log_id = f.id) = :marked
    """
    with engine.connect() as conn:
        return int(conn.execute(text(sql), {"run_id": run_id, "marked": marked}).scalar_one())


def test_postgres_down_mid_run_fails_clearly_and_rerun_bills_only_uncommitted_calls(
    own_pg: OwnedPostgres, own_engine: Engine
) -> None:
    kols = track(own_engine, 8)
    sim = GatedSimulator(today=SIM_TODAY, held=kols[4:])
    with sim, ThreadPoolExecutor(1) as pool:
        client = fast_client(sim, concurrency=2, max_attempts=2)
        run = pool.submit(run_range, own_engine, client, DAY, DAY, run_id="r1", today=SIM_TODAY, chunk_calls=4)
        # KOLs 0-3 (two chunks of 4 calls) are committed while the calls for KOL 4 on are on the wire.
        wait_until(lambda: _count(own_engine, "select count(*) from pgy.kol_fans_trend") == 4 * 2 * 30, "2 chunks")
        wait_until(lambda: sim.held_in_flight >= 1, "held calls in flight")
        own_pg.stop()
        sim.release.set()
        error = run.exception(timeout=60)
        client.close()

        assert isinstance(error, WarehouseUnavailable)
        message = str(error)
        assert message.startswith("The warehouse database 'pgy_t_")  # names the database
        assert "unreachable" in message and "PGY_DATABASE_URL" in message and "rerun" in message
        assert "\n" not in message and len(message) < 700  # one paragraph, not a traceback

        own_pg.start()
        _expect_truth(own_engine, sim, kols[:4], DAY - timedelta(days=29), DAY)  # committed chunks kept
        billed = sim.billed_calls
        with fast_client(sim) as again:
            rerun = run_range(own_engine, again, DAY, DAY, run_id="r2", today=SIM_TODAY)
        assert rerun.problems == []
        assert sim.billed_calls - billed == 4 * 2  # KOLs 4-7 only: the committed calls are not billed again
        _expect_truth(own_engine, sim, kols, DAY - timedelta(days=29), DAY)


def test_postgres_restarted_inside_a_load_leaves_no_partial_batch_and_rerun_heals(
    own_pg: OwnedPostgres, own_engine: Engine
) -> None:
    kols = track(own_engine, 8)
    restated = DAY - timedelta(days=5)
    with Simulator(today=SIM_TODAY - timedelta(days=1)) as sim:
        with fast_client(sim) as client:
            first = run_range(
                own_engine, client, DAY - timedelta(days=1), DAY - timedelta(days=1), run_id="d0", today=sim.today
            )
            assert first.problems == []
        old = sim.truth(kols[5], Series.TOTAL_FANS, restated)
        assert old is not None
        sim.restate(kols[5], Series.TOTAL_FANS, restated, old + 7)
        sim.set_today(SIM_TODAY)
        before = stored(own_engine, DAY - timedelta(days=60), DAY)
        url = libpq_url(own_engine.url.render_as_string(hide_password=False))
        locker, watcher = psycopg.connect(url), psycopg.connect(url, autocommit=True)
        with ThreadPoolExecutor(1) as pool:
            try:
                # Hold the restated row: the load of the chunk with KOLs 4-5 blocks inside its merge (UPDATE).
                locker.execute(
                    "select 1 from pgy.kol_fans_trend where kol_id = %s and date_key = %s and increase_type = %s "
                    "for update",
                    (kols[5], restated, Series.TOTAL_FANS.value),
                )
                client = fast_client(sim, concurrency=1)
                run = pool.submit(run_range, own_engine, client, DAY, DAY, run_id="r1", today=SIM_TODAY, chunk_calls=4)
                wait_until(lambda: blocked_merge(watcher), "the load of KOLs 4-5 blocked in its merge")
                own_pg.stop()  # fast shutdown: the load's transaction is cut off mid-merge
                own_pg.start()
                error = run.exception(timeout=60)
                client.close()
            finally:
                locker.close()  # (terminated by the shutdown; closing also frees the run if we failed earlier)
                watcher.close()
        assert isinstance(error, WarehouseUnavailable), error
        assert "closed the connection" in str(error)

        after = stored(own_engine, DAY - timedelta(days=60), DAY)
        assert {k for k, d, _ in after.keys() - before.keys()} == set(kols[:4])  # chunks 1-2 only: no partial batch
        assert after[(kols[5], restated, "total_fans")] == old  # the interrupted update is not visible
        assert _count(own_engine, "select count(*) from pgy.kol_fans_trend_revision") == 0
        assert _ok_calls(own_engine, "r1", marked=True) == 4 * 2  # chunks 1-2; KOLs 4-5's calls logged, unmarked
        assert _ok_calls(own_engine, "r1", marked=False) >= 2 * 2

        billed = sim.billed_calls
        with fast_client(sim) as again:
            rerun = run_range(own_engine, again, DAY, DAY, run_id="r2", today=SIM_TODAY)
        assert rerun.problems == []
        assert sim.billed_calls - billed == 4 * 2  # KOLs 4-7: their rows were never committed
        _expect_truth(own_engine, sim, kols, DAY - timedelta(days=30), DAY)
        with own_engine.connect() as conn:
            revisions = conn.execute(
                text("select date_key, increase_type, old_num, new_num from pgy.kol_fans_trend_revision")
            ).all()
        new_before = [before[(kols[5], d, "new_fans")] for d in (restated, restated + timedelta(days=1))]
        assert sorted(revisions) == [
            (restated, "new_fans", new_before[0], new_before[0] + 7),
            (restated, "total_fans", old, old + 7),
            (restated + timedelta(days=1), "new_fans", new_before[1], new_before[1] - 7),
        ]


def test_dagster_run_with_postgres_down_fails_in_one_sentence_then_materialises(
    own_pg: OwnedPostgres, own_engine: Engine, yesterday: date
) -> None:
    track(own_engine, 2)
    url = own_engine.url.render_as_string(hide_password=False)
    with Simulator() as sim, DagsterInstance.ephemeral() as instance:  # real clock: Dagster's partitions
        own_pg.stop()
        failed = materialize(
            [kol_fans_trend],
            resources=dagster_resources(sim, url),
            instance=instance,
            partition_key=yesterday.isoformat(),
            raise_on_error=False,
        )
        assert not failed.success
        (event,) = [e for e in failed.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
        info = event.step_failure_data.user_failure_data
        assert info is not None and (info.description or "").startswith("The warehouse database")
        assert sim.billed_calls == 0

        own_pg.start()
        done = materialize(
            [kol_fans_trend],
            resources=dagster_resources(sim, url),
            instance=instance,
            partition_key=yesterday.isoformat(),
        )
        assert done.success
        assert sim.billed_calls == 4
        assert len(stored(own_engine, yesterday, yesterday)) == 4


@pytest.mark.subprocess
def test_sigkill_inside_the_merge_leaves_no_partial_batch_and_rerun_heals(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    kols = track(engine, 100)
    first_today = SIM_TODAY - timedelta(days=1)
    restated = DAY - timedelta(days=3)
    with Simulator(today=first_today) as sim:
        with client_for(sim, concurrency=8) as client:
            run_range(engine, client, DAY - timedelta(days=1), DAY - timedelta(days=1), run_id="d0", today=first_today)
        olds = {k: sim.truth(k, Series.TOTAL_FANS, restated) for k in kols[::10]}
        for k, old in olds.items():
            sim.restate(k, Series.TOTAL_FANS, restated, (old or 0) + 5)
        sim.set_today(SIM_TODAY)
        before = stored(engine, DAY - timedelta(days=60), DAY)
        url = libpq_url(database_url)
        with psycopg.connect(url) as locker, psycopg.connect(url, autocommit=True) as watcher:
            locker.execute(
                "select 1 from pgy.kol_fans_trend where kol_id = %s and date_key = %s and increase_type = 'total_fans' "
                "for update",
                (kols[50], restated),
            )
            child = subprocess.Popen(  # one chunk: 200 calls, 6,000 points in one load
                [sys.executable, "-m", "pgy_pipeline_tests.support.child_run", "--database-url", database_url,
                 "--base-url", sim.base_url, "--token", sim.token, "--start", str(DAY), "--end", str(DAY),
                 "--today", str(SIM_TODAY), "--run-id", "killed", "--concurrency", "8"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
            )  # fmt: skip
            try:
                pid = wait_until(lambda: blocked_merge(watcher), "the child's load blocked in its merge")
                os.kill(child.pid, signal.SIGKILL)
                assert child.wait(timeout=30) == -signal.SIGKILL
            finally:
                if child.poll() is None:
                    child.kill()
                child.communicate()
            assert stored(engine, DAY - timedelta(days=60), DAY) == before  # mid-merge: nothing visible
            locker.rollback()  # let the orphaned backend run on: it must still never commit
            wait_until(lambda: not backend_alive(watcher, pid), "the killed run's backend to end")
        assert stored(engine, DAY - timedelta(days=60), DAY) == before
        assert _count(engine, "select count(*) from pgy.kol_fans_trend_revision") == 0
        # Its 200 calls were logged before the load, and none is marked loaded: that mark dies with the load.
        assert (_ok_calls(engine, "killed", marked=False), _ok_calls(engine, "killed", marked=True)) == (200, 0)

        billed = sim.billed_calls
        with client_for(sim, concurrency=8) as client:
            rerun = run_range(engine, client, DAY, DAY, run_id="heal", today=SIM_TODAY)
        assert rerun.problems == []
        assert sim.billed_calls - billed == 200  # none of the killed load's rows were committed
        assert (_ok_calls(engine, "heal", marked=False), _ok_calls(engine, "heal", marked=True)) == (0, 200)
        _expect_truth(engine, sim, kols, DAY - timedelta(days=30), DAY)
        assert _count(engine, "select count(*) from pgy.kol_fans_trend_revision") == 3 * len(olds)


def test_api_going_away_mid_run_fails_calls_then_rerun_bills_only_those(engine: Engine) -> None:
    kols = track(engine, 8)
    sim = GatedSimulator(today=SIM_TODAY, held=kols[4:])
    with sim, ThreadPoolExecutor(1) as pool:
        client = fast_client(sim, concurrency=2, max_attempts=3)
        run = pool.submit(run_range, engine, client, DAY, DAY, run_id="r1", today=SIM_TODAY, chunk_calls=4)
        wait_until(lambda: sim.held_in_flight >= 2, "calls for KOL 4 in flight")
        sim.stop()  # the API goes away: in-flight connections are cut, new ones refused
        sim.release.set()
        report = run.result(timeout=60)
        client.close()
        wait_until(lambda: sim.settled, "the cut-off calls to be answered (and billed) into the void")

        assert report.stop is None  # connection errors are transient: retried, then failed, never "stopped"
        assert (report.calls_ok, report.calls_failed, report.calls_not_attempted) == (8, 8, 0)
        assert report.problems == [
            "4 KOL(s) failed after retries (see failed_kols), up to 1 partition date(s) behind; a KOL is "
            "quarantined (and no longer holds the run back) at 3. Rerun the partition to retry only those; "
            "successful calls are not billed again."
        ]
        with engine.connect() as conn:
            outcomes = conn.execute(
                text(
                    "select kol_id, increase_type, count(*), bool_and(http_status is null), "
                    "max(outcome) filter (where is_final), bool_or(error ilike '%connection%') "
                    "from pgy.fetch_log where run_id = 'r1' and kol_id = any(:k) group by 1, 2"
                ),
                {"k": kols[4:]},
            ).all()
        assert len(outcomes) == 8
        assert all(o[2:] == (3, True, "failed", True) for o in outcomes)  # bounded: exactly max_attempts
        _expect_truth(engine, sim, kols[:4], DAY - timedelta(days=29), DAY)  # completed calls kept

        sim.start()  # back (on a new port)
        billed = sim.billed_calls
        with fast_client(sim) as again:
            rerun = run_range(engine, again, DAY, DAY, run_id="r2", today=SIM_TODAY)
        assert rerun.problems == []
        assert sim.billed_calls - billed == 8  # only the failed calls
        _expect_truth(engine, sim, kols, DAY - timedelta(days=29), DAY)


def test_a_query_error_is_not_reported_as_an_unreachable_database(engine: Engine) -> None:
    @reports_unreachable_warehouse
    def broken(eng: Engine) -> None:
        with eng.connect() as conn:
            conn.execute(text("select * from pgy.no_such_table"))

    with pytest.raises(ProgrammingError, match="no_such_table"):  # a bug stays a bug, with its own message
        broken(engine)
