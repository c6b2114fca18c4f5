"""Recording every API call attempt in `pgy.fetch_log`, and every body received in the raw archive.

One row per attempt (retries included), so the log answers "what did the API say, and when" exactly; the last
attempt of a call carries the call's outcome and what it delivered. Ids are reserved from the sequence first,
then the rows go in with two COPYs in one transaction: all of a chunk's calls, or none. Bodies go to the
raw archive (raw_archive.py). See docs/warehouse.md (tables and the raw-body archive).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, text

from pgy_pipeline.model import Attempt, CallResult, Outcome, SeriesKey, storable_text
from pgy_pipeline.warehouse.engine import PgConnection, psycopg_connection
from pgy_pipeline.warehouse.migrate import ensure_schema
from pgy_pipeline.warehouse.raw_archive import archive_packed, body_kind

_LOG_COLUMNS = (
    "id", "run_id", "partition_start", "partition_end", "kol_id", "increase_type", "endpoint", "window_days",
    "days_wanted", "attempt", "outcome", "is_final", "http_status", "api_code", "api_message", "request_id",
    "record_time", "billed", "rows_received", "first_date_key", "last_date_key", "fans_num_inc",
    "fans_num_inc_rate", "duration_ms", "error",
)  # fmt: skip
_BODY_COLUMNS = ("fetch_log_id", "body", "body_text", "body_bytes")
# JSON that Python reads but jsonb refuses: NUL characters and UTF-16 surrogates in escapes (paired ones are
# fine for jsonb but cheaper to send to text than to tell apart), and numbers beyond Postgres numeric (131,072
# digits before the point, 16,383 after): any run of 1,000+ digits takes the safe path too. Exponents are
# checked by _finite_numeric, since jsonb reads 1e999999 as numeric where Python reads it as inf.
_JSONB_UNSAFE = re.compile(r"\\u0000|\\u[dD][89a-fA-F][0-9a-fA-F]{2}|[0-9]{1000}")
_EXPONENT = re.compile(r"[eE]([-+]?[0-9]+)$")
_MAX_EXPONENT = 1000  # far inside numeric's range whatever the mantissa (at most 999 digits, see above)


# One narrow row per call (a heap tuple and a primary-key entry): marking a day's 20,000 calls writes a couple
# of MB of WAL, where setting a flag on their full fetch_log rows rewrote each row and all four of its indexes.
# Ids already marked are skipped, so loading the same calls again is harmless; nothing else can insert the same
# id meanwhile (loads hold the load lock, and record_calls marks only ids it has just drawn).
_MARK_LOADED = """
INSERT INTO pgy.fetch_log_loaded (fetch_log_id)
SELECT DISTINCT i.id FROM unnest(%s::bigint[]) AS i(id)
 WHERE NOT EXISTS (SELECT FROM pgy.fetch_log_loaded l WHERE l.fetch_log_id = i.id)
"""


def mark_loaded(conn: PgConnection, fetch_log_ids: Iterable[int]) -> None:
    """Record in pgy.fetch_log_loaded that these calls' rows are committed: call it in the transaction that
    commits them, so the mark is there exactly when the rows are. Runs do not read the marks (a rerun decides from
    the stored dates); they are the audit of billed calls whose rows a crash lost."""
    conn.execute(_MARK_LOADED, (list(fetch_log_ids),))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_numeric(literal: str) -> float:
    """A float literal jsonb's numeric reads as surely as Python; ValueError for one it might refuse."""
    exponent = _EXPONENT.search(literal)
    if exponent and abs(int(exponent.group(1))) > _MAX_EXPONENT:
        raise ValueError(f"exponent of {literal[:20]} is beyond Postgres numeric")
    return 0.0  # the value itself is not needed


def _body_columns(raw: bytes) -> tuple[str | None, str | None, bytes | None]:
    """(jsonb text, text, bytes): exactly one set, the most useful form Postgres accepts for this body.

    jsonb only for JSON that jsonb is certain to read (so the COPY of a whole chunk can never fail on one
    body); other UTF-8 without NUL is text; anything else is bytes.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, None, raw
    if "\x00" in text:
        return None, None, raw
    try:
        json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_numeric)
    except (ValueError, RecursionError):  # not JSON, NaN / Infinity, too long an integer, too deep
        return None, text, None
    if _JSONB_UNSAFE.search(text):
        return None, text, None
    return text, None, None


def _text(value: str | None) -> str | None:
    """Postgres text cannot hold NUL (nor psycopg send a lone surrogate); a hostile message keeps the rest."""
    return storable_text(value) if value else value


def _attempt_rows(result: CallResult) -> Iterator[tuple[Attempt | None, bool, str]]:
    """(attempt or None for never sent, is_final, outcome to store) for each row of one call."""
    if not result.attempts:
        yield None, True, result.outcome.value
        return
    last = len(result.attempts) - 1
    for i, attempt in enumerate(result.attempts):
        final = i == last
        yield attempt, final, (result.outcome if final else attempt.outcome).value


def record_calls(
    engine: Engine,
    results: Sequence[CallResult],
    *,
    run_id: str | None,
    partition_start: date | None,
    partition_end: date | None,
) -> dict[SeriesKey, int]:
    """Write every attempt of `results` (and their raw bodies); return (kol_id, series) → fetch_log id of the
    final attempt of each call that ended OK, to pass to `load_points(fetch_ids=...)` as provenance."""
    if not results:
        return {}
    ensure_schema(engine)
    rows_needed = sum(max(1, len(r.attempts)) for r in results)
    log_rows: list[tuple[Any, ...]] = []
    body_rows: list[tuple[Any, ...]] = []
    packed: list[tuple[int, str, bytes]] = []
    ok_ids: dict[SeriesKey, int] = {}
    empty_ids: list[int] = []
    with psycopg_connection(engine) as conn:
        try:
            ids = iter(
                row[0]
                for row in conn.execute(
                    "SELECT nextval('pgy.fetch_log_id_seq') FROM generate_series(1, %s)", (rows_needed,)
                )
            )
            for result in results:
                points = result.points
                for attempt, final, outcome in _attempt_rows(result):
                    log_id = next(ids)
                    delivered = final and bool(points)
                    log_rows.append(
                        (
                            log_id, run_id, partition_start, partition_end, result.kol_id, result.series.value,
                            result.endpoint.value, result.window_days, result.days_wanted,
                            attempt.attempt if attempt else 0, outcome, final,
                            attempt.http_status if attempt else None, attempt.api_code if attempt else None,
                            _text(attempt.api_message) if attempt else None,
                            _text(attempt.request_id) if attempt else None,
                            _text(attempt.record_time) if attempt else None, bool(attempt and attempt.billed),
                            len(points) if final and attempt else None,
                            points[0].date_key if delivered else None, points[-1].date_key if delivered else None,
                            result.fans_num_inc if final else None, result.fans_num_inc_rate if final else None,
                            round(attempt.duration_s * 1000) if attempt else None,
                            _text(attempt.error) if attempt else None,
                        )
                    )  # fmt: skip
                    if attempt is not None and attempt.raw_body is not None:
                        columns = _body_columns(attempt.raw_body)
                        if final and result.outcome is Outcome.OK:  # the raw bytes, with the form they would take
                            packed.append((log_id, body_kind(columns), attempt.raw_body))
                        else:
                            body_rows.append((log_id, *columns))
                    if final and result.outcome is Outcome.OK:
                        ok_ids[(result.kol_id, result.series.value)] = log_id
                        if not points:  # nothing to load: in hand as soon as this transaction commits
                            empty_ids.append(log_id)
            with conn.cursor().copy(f"COPY pgy.fetch_log ({', '.join(_LOG_COLUMNS)}) FROM STDIN") as copy:
                for row in log_rows:
                    copy.write_row(row)
            if body_rows:
                with conn.cursor().copy(f"COPY pgy.raw_response ({', '.join(_BODY_COLUMNS)}) FROM STDIN") as copy:
                    for row in body_rows:
                        copy.write_row(row)
            archive_packed(conn, packed)
            if empty_ids:
                mark_loaded(conn, empty_ids)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    return ok_ids


def billed_calls_of_run(engine: Engine, run_id: str) -> int:
    """Calls of one run the platform bills (codes 0 and 201), as recorded; 0 for a run that made none."""
    with engine.connect() as conn:
        count = conn.scalar(
            text("SELECT count(*) FROM pgy.fetch_log WHERE run_id = :run_id AND billed"), {"run_id": run_id}
        )
    return int(count or 0)


def billed_since(engine: Engine, since: datetime) -> int:
    """Billed attempts recorded since `since` (the start of the China day, for the daily call budget)."""
    sql = "SELECT count(*) FROM pgy.fetch_log WHERE billed AND fetched_at >= :since"
    with engine.connect() as conn:
        return int(conn.scalar(text(sql), {"since": since}) or 0)
