"""Secret hygiene and SQL safety, end to end.

* After runs full of faults (timeouts, resets, HTTP 401/403/429/500, malformed bodies, an error page that
  echoes the request URL, a rejected token), the token is nowhere: not in captured logs (DEBUG, urllib3 and
  Dagster included), not on stdout/stderr, not in the run report or exception texts, not in the Dagster event
  log or materialisation metadata, not in any column of any table in schema `pgy` (the raw payload archive
  included).
* A KOL id carrying SQL is refused at every entry point with a message saying what an id may be; forced
  past validation into the layers below, it is stored verbatim as data (or refused by a CHECK constraint)
  and never executed.

The analysts' read-only role and the embedded Postgres' socket-only listener are tested where they are
built: test_views.py (`test_reader_role…`) and test_config.py (`test_embedded_postgres_listens_on_a_unix_socket_only`).
"""

from __future__ import annotations

import socket
import zlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from dagster import DagsterInstance, EnvVar, materialize, serialize_value
from sqlalchemy import Engine, text

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.cli import main as cli_main
from pgy_pipeline.config import Secret
from pgy_pipeline.model import CallRequest, InvalidKolId, Series, TrendPoint, check_kol_id
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.verdict import RunReport
from pgy_pipeline.warehouse.engine import psycopg_connection
from pgy_pipeline.warehouse.kols import add_kols, import_kols
from pgy_pipeline.warehouse.load import LoadRejected, _Loader, load_points
from pgy_pipeline.warehouse.validate import Span
from pgy_pipeline_tests.support.simulator import FAST_CLIENT, SIM_TODAY, kol_ids

TOKEN = "tok-SECRET-4f2a9c"
WRONG_TOKEN = "tok-WRONG-77b1e0"  # a rejected token is still a secret (it may be a typo of the real one)
SECRETS = (TOKEN, WRONG_TOKEN)
EVIL = "x'); drop table pgy.kol_fans_trend;--"

# Faults a run rides out (or records) without stopping; each goes to its own KOL.
RIDE_OUT = [
    "slow", "drop", "reset_mid_body", "http_429", "http_500", "http_503", "http_502_html", "html_echo",
    "html", "truncated_json", "invalid_utf8", "code_201", "code_400", "http_400", "code_301", "empty_body",
]  # fmt: skip
STOPS = ["http_401", "http_403", "code_100", "code_303", "code_600", "code_601"]  # one run each
FAST = {**FAST_CLIENT, "read_timeout_s": 0.8, "max_attempts": 2}  # slow faults answer after 2 s


def warehouse_dump(engine: Engine) -> tuple[str, bytes]:
    """Every row of every table in schema pgy as text, plus every bytea value as raw bytes.

    A row's text form covers text, jsonb and every other column; bytea would show there only as hex,
    so its values are collected as bytes too, and the compressed packs of raw bodies decompressed.
    """
    with engine.connect() as conn:
        tables = conn.scalars(text("select tablename from pg_tables where schemaname = 'pgy' order by 1")).all()
        rows = [str(r) for t in tables for r in conn.scalars(text(f'select t::text from pgy."{t}" t'))]
        bytea = conn.execute(
            text(
                "select table_name, column_name from information_schema.columns "
                "where table_schema = 'pgy' and data_type = 'bytea'"
            )
        ).all()
        blobs = [
            b for t, c in bytea for b in conn.scalars(text(f'select "{c}" from pgy."{t}" where "{c}" is not null'))
        ]
        blobs += [zlib.decompress(p) for p in conn.scalars(text("select pack from pgy.raw_body_pack"))]
    assert "pgy.raw_response" in {f"pgy.{t}" for t in tables}
    return "\n".join(rows), b"\n".join(bytes(b) for b in blobs)


def report_texts(report: RunReport) -> list[str]:
    """Everything a run hands back: the report, its problems, the stop and the call it carries."""
    texts = [repr(report), *report.problems, *(repr(f) for f in report.failed_calls)]
    if report.stop is not None:
        texts += [str(report.stop), repr(report.stop), repr(report.stop.result)]
    return texts


def assert_no_secret(places: list[tuple[str, str | bytes]]) -> None:
    """No secret in any of the (where, text) places; the failure names the place, never prints the text."""
    for where, blob in places:
        for secret in SECRETS:
            # A bool first: `assert secret not in blob` would make pytest print the blob, token and all.
            leaked = secret.encode() in blob if isinstance(blob, bytes) else secret in blob
            assert not leaked, f"the token leaked into {where}"


def _client(sim: Simulator, token: str = TOKEN, base_url: str | None = None) -> TrendClient:
    return TrendClient(base_url or sim.base_url, Secret(token), today=lambda: SIM_TODAY, **FAST)


def test_token_appears_nowhere_after_runs_with_faults(
    engine: Engine, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level("DEBUG")  # urllib3 logs every request line (with its query) at DEBUG
    day = SIM_TODAY - timedelta(days=1)
    kols = kol_ids(len(RIDE_OUT) + len(STOPS) + 1, start=900)
    add_kols(engine, kols)
    texts: list[str] = []
    with Simulator(token=TOKEN, today=SIM_TODAY, slow_s=2.0) as sim:
        for kol, fault in zip(kols, RIDE_OUT, strict=False):
            sim.inject(kol, fault)
        with _client(sim) as client:
            report = run_range(
                engine, client, day, day, run_id="faulty", kol_ids=kols[: len(RIDE_OUT) + 1], today=SIM_TODAY
            )
        texts += report_texts(report)
        assert report.calls_ok == 2 and report.calls_failed == 2 * len(RIDE_OUT)  # the faults really happened

        for kol, fault in zip(kols[len(RIDE_OUT) + 1 :], STOPS, strict=True):
            sim.inject(kol, fault)
            with _client(sim) as client:
                stopped = run_range(engine, client, day, day, run_id=f"stop-{fault}", kol_ids=[kol], today=SIM_TODAY)
            assert stopped.stop is not None, fault
            texts += report_texts(stopped)

        with _client(sim, token=WRONG_TOKEN) as wrong:
            rejected = run_range(engine, wrong, day, day, run_id="wrong-token", kol_ids=kols[:1], today=SIM_TODAY)
        assert rejected.stop is not None and rejected.stop.api_code == 100
        texts += report_texts(rejected)

    with socket.socket() as sock:  # a port nobody listens on: requests' ConnectionError quotes the full URL
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with _client(sim, base_url=closed) as refused:
        unreachable = run_range(engine, refused, day, day, run_id="refused", kol_ids=kols[:1], today=SIM_TODAY)
    texts += report_texts(unreachable)
    assert unreachable.calls_failed == 2  # kols[0] (the slow one) has nothing in hand yet

    rows, blobs = warehouse_dump(engine)
    out, err = capfd.readouterr()
    assert_no_secret(
        [
            ("captured logs", caplog.text),
            ("stdout/stderr", out + err),
            ("run reports and exceptions", "\n".join(texts)),
            ("warehouse tables", rows),
            ("warehouse bytea columns", blobs),
        ]
    )
    # Bools, not `in` asserts: on failure pytest would print the searched text.
    masked_in_archive, masked_in_logs = "token=***" in rows, "token=***" in caplog.text
    assert masked_in_archive  # the echoed URL is in the raw archive, masked
    assert masked_in_logs  # urllib3's request lines were logged, masked
    recorded = "ConnectionError" in rows and "ReadTimeout" in rows
    assert recorded  # timeouts and refusals were recorded (with their redacted messages)


def test_token_absent_from_dagster_event_log_and_metadata(
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from pgy_pipeline.defs.assets import kol_fans_trend
    from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource

    caplog.set_level("DEBUG")
    faults = ["html_echo", "slow", "drop", "http_500", "truncated_json", "http_429", "code_201"]
    kols = kol_ids(len(faults) + 1, start=950)
    add_kols(engine, kols)
    yesterday = None
    descriptions: list[str] = []
    with DagsterInstance.ephemeral() as instance, Simulator(token=TOKEN, slow_s=2.0) as sim:
        yesterday = (sim.today - timedelta(days=1)).isoformat()
        for kol, fault in zip(kols, faults, strict=False):
            sim.inject(kol, fault)
        for token in (TOKEN, WRONG_TOKEN):  # a run that fails on faults, then one stopped by a rejected token
            monkeypatch.setenv("PGY_API_TOKEN", token)
            api = TrendApiResource(
                token=EnvVar("PGY_API_TOKEN"), base_url=sim.base_url, max_attempts=2, backoff_base_s=0.001,
                backoff_max_s=0.02, read_timeout_s=0.8,
            )  # fmt: skip
            result = materialize(
                [kol_fans_trend],
                resources={"trend_api": api, "warehouse": WarehouseResource(database_url=database_url)},
                instance=instance,
                partition_key=yesterday,
                raise_on_error=False,
            )
            assert not result.success  # both runs fail, with a Failure naming why
            failure = result.get_step_failure_events()[0].step_failure_data
            descriptions.append(str(failure.error) + str(failure.user_failure_data))
        runs = instance.get_runs()
        events = [serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)]
        run_records = [serialize_value(run) for run in runs]
    rows, blobs = warehouse_dump(engine)
    out, err = capfd.readouterr()
    assert_no_secret(
        [
            ("Dagster event log and metadata", "\n".join(events)),
            ("Dagster run records", "\n".join(run_records)),
            ("step failure descriptions", "\n".join(descriptions)),
            ("captured logs", caplog.text),
            ("stdout/stderr", out + err),
            ("warehouse tables", rows),
            ("warehouse bytea columns", blobs),
        ]
    )
    assert len(runs) == 2
    stopped_by_token = "The Just One API rejected the token (code 100)" in descriptions[1]
    assert stopped_by_token
    metadata_logged = any("failed_kols" in e for e in events)
    assert metadata_logged  # the failure metadata is in the event log that was searched
    masked_in_archive = "token=***" in rows
    assert masked_in_archive


# --- SQL injection --------------------------------------------------------------------------------------


def _table_intact(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.scalar(text("select to_regclass('pgy.kol_fans_trend') is not null")) is True


def test_sql_in_a_kol_id_is_rejected_at_every_entry_point(
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    rule = "expected 1-64 characters of letters, digits, '_' or '-'"
    with pytest.raises(InvalidKolId, match=rule):
        check_kol_id(EVIL)

    monkeypatch.setenv("PGY_DATABASE_URL", database_url)
    assert cli_main(["kols", "add", EVIL]) == 2
    assert rule in capsys.readouterr().err
    listing = tmp_path / "kols.txt"
    listing.write_text(f"{kol_ids(1)[0]}\n{EVIL}\n", encoding="utf-8")
    assert cli_main(["kols", "import", str(listing)]) == 2
    assert f"{listing}:2: invalid KOL id" in capsys.readouterr().err

    with pytest.raises(InvalidKolId, match=rule):
        add_kols(engine, [kol_ids(1)[0], EVIL])
    with pytest.raises(InvalidKolId, match=":2: invalid KOL id"):
        import_kols(engine, listing)
    with pytest.raises(LoadRejected, match=r"invalid KOL id.*nothing was loaded"):
        load_points(engine, [TrendPoint(EVIL, date(2026, 3, 8), Series.TOTAL_FANS.value, 1)])
    with Simulator(today=SIM_TODAY) as sim, _client(sim, token=sim.token) as client:
        with pytest.raises(InvalidKolId, match=rule):
            client.call(CallRequest(EVIL, Series.TOTAL_FANS, 30))
        # Run config `kol_ids` (the sensor's, or typed in the launchpad) only filters the tracked set.
        report = run_range(engine, client, SIM_TODAY - timedelta(days=1), SIM_TODAY - timedelta(days=1),
                           run_id="evil", kol_ids=[EVIL], today=SIM_TODAY)  # fmt: skip
        assert sim.calls == [] and report.plan.requests == ()

    with engine.connect() as conn:
        assert conn.scalar(text("select count(*) from pgy.tracked_kol")) == 0  # all or nothing
        assert conn.scalar(text("select count(*) from pgy.kol_fans_trend")) == 0
    assert _table_intact(engine)


def test_sql_in_a_kol_id_forced_past_validation_is_stored_as_data(engine: Engine) -> None:
    day = date(2026, 3, 8)
    # 1. The loader below its validation: the binary COPY straight into the table, then (same key, new
    #    value) the staging COPY and the set-based merge with its revision.
    for num in (1, 2):
        with psycopg_connection(engine) as conn:
            loader = _Loader(conn, {})  # private on purpose: this is the layer validation protects
            loader.begin()
            loader.add_spans([Span(EVIL, Series.TOTAL_FANS.value, day.toordinal(), (num,))])  # never validated
            loader.merge()
            conn.commit()
    # 2. A hand-written parameterised statement, as an analyst's script would issue it.
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into pgy.kol_fans_trend (kol_id, date_key, increase_type, num) values (:k, :d, 'new_fans', 3)"
            ),
            {"k": EVIL, "d": day},
        )
    # 3. The tracked set has a CHECK constraint on the id format: the database itself refuses it.
    with pytest.raises(Exception, match="tracked_kol_kol_id_format"), engine.begin() as conn:
        conn.execute(text("insert into pgy.tracked_kol (kol_id) values (:k)"), {"k": EVIL})

    assert _table_intact(engine)
    with engine.connect() as conn:
        stored = conn.execute(text("select kol_id, increase_type, num from pgy.kol_fans_trend order by 2")).all()
        revisions = conn.execute(text("select kol_id, old_num, new_num from pgy.kol_fans_trend_revision")).all()
    assert [tuple(r) for r in stored] == [(EVIL, "new_fans", 3), (EVIL, "total_fans", 2)]  # verbatim
    assert [tuple(r) for r in revisions] == [(EVIL, 1, 2)]
