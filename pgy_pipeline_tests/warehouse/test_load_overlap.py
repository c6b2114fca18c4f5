"""A run keeps fetching while the warehouse loads the previous chunk (the load does not stall the fetch)."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
from sqlalchemy import Engine

from pgy_pipeline.china_time import china_today
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.verdict import RunReport
from pgy_pipeline.warehouse.load import LOAD_LOCK_KEY
from pgy_pipeline_tests.support.db import libpq_url
from pgy_pipeline_tests.support.faults import wait_until
from pgy_pipeline_tests.support.simulator import client_for
from pgy_pipeline_tests.support.warehouse import track


def test_calls_stay_on_the_wire_while_a_chunk_loads(engine: Engine, database_url: str) -> None:
    """Fetching does not wait for the warehouse: while the first chunk's load is blocked, the next chunk's
    calls are still sent (a serial loader stops after the chunk plus the few calls already queued)."""
    yesterday = china_today() - timedelta(days=1)
    track(engine, 20)  # 40 calls, chunks of 10
    with Simulator() as sim, client_for(sim, concurrency=2) as client:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as blocker:
            blocker.execute("SELECT pg_advisory_lock(%s)", (LOAD_LOCK_KEY,))  # every load waits for this
            outcome: list[RunReport] = []
            runner = threading.Thread(
                target=lambda: outcome.append(
                    run_range(engine, client, yesterday, yesterday, run_id="overlap", chunk_calls=10)
                )
            )
            runner.start()
            # A serial loader would stop at 10 + 2 x 2 queued calls while the first load is blocked.
            wait_until(lambda: len(sim.calls) >= 20, "the second chunk's calls sent during the first load")
            blocker.execute("SELECT pg_advisory_unlock(%s)", (LOAD_LOCK_KEY,))
            runner.join(timeout=60)
        (report,) = outcome
    assert (report.calls_ok, report.billed_calls, report.rows_inserted) == (40, 40, 40 * 30)
