"""The loader on a cluster past its first 4 billion transactions (xid epoch 1), as a long-lived warehouse is.

The merge recognises rows its own transaction inserted by comparing `xmin` with the transaction's xid. From
PostgreSQL 16 on, `xid` input refuses values above 2^32, so any route through the 64-bit id's text breaks
every load with overlapping windows (every daily run) once the epoch is 1. A throwaway embedded cluster is
moved there with `pg_resetwal --epoch` (the server wheel's own binary) and then loads like a daily run.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from pgy_pipeline.warehouse.engine import make_engine
from pgy_pipeline.warehouse.load import LoadCounts, load_points
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.support.db import fresh_database, libpq_url
from pgy_pipeline_tests.support.owned_pg import owned_postgres
from pgy_pipeline_tests.support.warehouse import KOL, NEW, TOTAL, stored, window

EPOCH_1 = 2**32


@pytest.fixture(scope="module")
def epoch_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated warehouse on an embedded cluster whose transaction ids are past 2^32."""
    with owned_postgres(tmp_path_factory.mktemp("xid-epoch")) as server:
        server.set_xid_epoch(1)
        with fresh_database(server.url) as url:
            engine = make_engine(url)
            upgrade(engine)
            yield engine
            engine.dispose()


@pytest.mark.embedded
def test_cluster_is_past_epoch_0_where_xid_text_input_fails(epoch_engine: Engine) -> None:
    """The setup reproduces the deployment: 64-bit ids above 2^32, whose text `xid` input refuses."""
    url = libpq_url(epoch_engine.url.render_as_string(hide_password=False))
    with psycopg.connect(url) as conn:
        (full_xid,) = conn.execute("select pg_current_xact_id()::text::bigint").fetchone() or (0,)
        assert full_xid >= EPOCH_1
        with pytest.raises(psycopg.errors.NumericValueOutOfRange):
            conn.execute("select pg_current_xact_id()::text::xid")


@pytest.mark.embedded
def test_daily_overlapping_loads_work_after_xid_epoch_1(epoch_engine: Engine) -> None:
    first = window(KOL, TOTAL, 30) + window(KOL, NEW, 30)
    assert load_points(epoch_engine, first) == LoadCounts(60, 0, 0)
    # The next runs overlap what is stored, and one load carries the same days twice (collapsed).
    assert load_points(epoch_engine, window(KOL, TOTAL, 60)) == LoadCounts(30, 0, 30)
    again = window(KOL, TOTAL, 90) + window(KOL, TOTAL, 90) + window(KOL, NEW, 60)
    assert load_points(epoch_engine, again, batch_size=7) == LoadCounts(60, 0, 90)
    want = window(KOL, TOTAL, 90) + window(KOL, NEW, 60)
    assert stored(epoch_engine) == {(p.kol_id, p.date_key, p.increase_type): p.num for p in want}
