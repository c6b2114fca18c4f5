"""The raw-body archive: compressed packs of successful calls' bodies, expiry by dropping weeks, replay.

Real runs against the simulator and a real Postgres. The clock cannot be moved for real, so a test ages
bodies the only way the archive itself could see: it moves their pack into the partition of an old week
(as the schema owner), then runs the retention pass.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from pgy_pipeline.api.parse import decode_envelope
from pgy_pipeline.cli import main
from pgy_pipeline.model import Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.replay import replay
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline.warehouse.raw_archive import expire, retained_bodies, week_of
from pgy_pipeline_tests.support.db import libpq_url
from pgy_pipeline_tests.support.simulator import client_for
from pgy_pipeline_tests.support.warehouse import stored, track

OLD_WEEK = week_of(datetime.now(UTC).date()) - timedelta(weeks=10)


def _scalar(engine: Engine, sql: str) -> Any:
    with engine.connect() as conn:
        return conn.scalar(text(sql))


def _age_run(engine: Engine, run_id: str) -> None:
    """Move the packs holding this run's bodies into the partition of a week 10 weeks ago."""
    with engine.begin() as conn:
        conn.execute(text("select pgy.raw_body_week(:w)"), {"w": OLD_WEEK})
        conn.execute(
            text(
                "update pgy.raw_body_pack p set week = :w where exists (select 1 from pgy.fetch_log f"
                " where f.run_id = :r and f.id = any(p.fetch_log_ids))"
            ),
            {"w": OLD_WEEK, "r": run_id},
        )


def test_successful_bodies_are_packed_compressed_and_read_back_verbatim(
    engine: Engine, sim_today: Simulator, yesterday: date
) -> None:
    track(engine, 20)
    with client_for(sim_today) as client:
        run_range(engine, client, yesterday, yesterday, run_id="r1")
    ids = [int(i) for i in _scalar_list(engine, "select id from pgy.fetch_log where outcome = 'ok' order by id")]
    assert len(ids) == 40
    assert _scalar(engine, "select count(*) from pgy.raw_response") == 0  # none stored one row each
    kinds = _scalar(engine, "select string_agg(distinct kind || stored_in, ',') from pgy.raw_body")
    assert kinds == "jpack"
    bodies = retained_bodies(engine, ids)
    assert sorted(bodies) == ids
    for body in bodies.values():  # the bytes as received: the envelope decodes, with 30 days in it
        data = decode_envelope(body.raw).data
        assert isinstance(data, dict) and len(data["list"]) == 30
    packed = int(_scalar(engine, "select sum(octet_length(pack)) from pgy.raw_body_pack"))
    received = sum(len(b.raw) for b in bodies.values())
    assert packed * 3 < received  # compressed together: well under a third of the bodies' size


def _scalar_list(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.scalars(text(sql)))


def test_replay_after_a_retention_pass_restores_what_the_retained_bodies_hold(
    engine: Engine, sim_today: Simulator, today: date, yesterday: date
) -> None:
    track(engine, 4)
    sim_today.set_today(today - timedelta(days=40))  # a run 40 days ago: its bodies will have expired
    old_day = sim_today.latest_date
    with client_for(sim_today) as client:
        run_range(engine, client, old_day, old_day, run_id="old")
    sim_today.set_today(None)
    with client_for(sim_today) as client:
        run_range(engine, client, yesterday, yesterday, run_id="new")
    _age_run(engine, "old")
    gone = expire(engine, retention_days=60)
    assert gone.weeks_dropped == 1
    old_ids = [int(i) for i in _scalar_list(engine, "select id from pgy.fetch_log where run_id = 'old'")]
    assert retained_bodies(engine, old_ids) == {}  # expired with their week
    window = int(_scalar(engine, "select max(window_days) from pgy.fetch_log where run_id = 'new'"))
    first = min(d for _, d, _ in stored(engine, date(2000, 1, 1), yesterday))

    # A parser bug stored wrong values (and lost the newest rows) for both runs' dates.
    with engine.begin() as conn:
        conn.execute(text("update pgy.kol_fans_trend set num = num + 1000"))
        conn.execute(text("delete from pgy.kol_fans_trend where date_key = :d"), {"d": yesterday})
    report = replay(engine, since=datetime(2000, 1, 1, tzinfo=UTC))
    assert (report.calls, report.replayed, report.expired, report.rejected) == (16, 8, 8, 0)
    assert report.inserted == 4 * 2  # the newest rows, back
    assert report.updated == 4 * 2 * (window - 1)  # every other date of the retained window, one revision each
    retained_start = yesterday - timedelta(days=window - 1)
    for (kol, day, series), num in stored(engine, first, yesterday).items():
        truth = sim_today.truth(kol, Series(series), day)
        assert truth is not None
        # Dates only an expired body held keep what the warehouse has: nothing is left to replay them from.
        assert num == (truth if day >= retained_start else truth + 1000), (kol, day, series)


def test_pipeline_role_cannot_delete_bodies_but_can_expire_them(engine: Engine, database_url: str) -> None:
    upgrade(engine)
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute("SET ROLE pgy_etl")
        for statement in (
            "DELETE FROM pgy.raw_body_pack",
            "DELETE FROM pgy.raw_response",
            "DROP TABLE pgy.raw_body_pack",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        conn.execute("SELECT pgy.raw_body_week(%s)", (OLD_WEEK,))
        assert conn.execute("SELECT * FROM pgy.expire_raw_bodies(60, 365)").fetchone() == (1, 0)
        with pytest.raises(psycopg.errors.RaiseException, match="at least 7 days"):
            conn.execute("SELECT * FROM pgy.expire_raw_bodies(3, 365)")


def test_cli_replay_reloads_a_lost_day_from_the_retained_bodies(
    engine: Engine,
    database_url: str,
    sim_today: Simulator,
    yesterday: date,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    track(engine, 3)
    with client_for(sim_today) as client:
        run_range(engine, client, yesterday, yesterday, run_id="r1")
    with engine.begin() as conn:
        conn.execute(text("delete from pgy.kol_fans_trend where date_key = :d"), {"d": yesterday})
    billed = sim_today.billed_calls
    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    assert main(["db", "replay", "--since", (yesterday - timedelta(days=3)).isoformat()]) == 0
    assert "6 successful call(s)" in capsys.readouterr().out
    assert len(stored(engine, yesterday, yesterday)) == 3 * 2  # back, from the bodies
    assert sim_today.billed_calls == billed  # nothing asked of the API
