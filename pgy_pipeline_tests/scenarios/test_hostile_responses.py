"""Hostile API answers, each through the simulator and the real run path (`run_range` → fetch log → loader).

Every case runs a partition for three KOLs against real Postgres; one of them gets the hostile answer, the
other two are clean. The table `CASES` is the single source of truth: the test asserts each row, and
`python -m pgy_pipeline_tests.scenarios.test_hostile_responses` prints it as the hostile table of
docs/reliability.md, so the docs cannot drift from what is tested.

All cases share one migrated database (module scope): each uses its own KOL ids, so they cannot see each
other's rows, and the suite stays within seconds instead of paying a CREATE DATABASE + migrations per case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from pgy_pipeline.model import Outcome, Series
from pgy_pipeline.pipeline import run_range
from pgy_pipeline.simulator import Simulator
from pgy_pipeline.simulator.faults import HUGE_LIST_ITEMS
from pgy_pipeline.verdict import RunReport
from pgy_pipeline.warehouse.kols import add_kols
from pgy_pipeline.warehouse.migrate import upgrade
from pgy_pipeline_tests.support.db import fresh_database
from pgy_pipeline_tests.support.simulator import SIM_TODAY, MakeClient

MAX_ATTEMPTS = 3
# Generous for a loaded CI box (a clean answer must never time out), yet well under the slow faults' delay.
READ_TIMEOUT_S = 1.0
SLOW_S = 2.5
WINDOW = 30  # a one-day partition ending yesterday asks the legacy endpoint's 30-day window
DAY = SIM_TODAY - timedelta(days=1)
FIRST_DAY = DAY - timedelta(days=WINDOW - 1)

OK, MALFORMED, FAILED, STOPPED = Outcome.OK, Outcome.MALFORMED, Outcome.FAILED, Outcome.STOPPED
RETRY, RATE_LIMITED = Outcome.RETRY, Outcome.RATE_LIMITED


@dataclass(frozen=True)
class Hostile:
    """One hostile answer and what the pipeline must make of it (a row of the README table)."""

    kind: str  # what the answer is, in README words
    fault: str  # the simulator's fault name (pgy_pipeline/simulator/faults.py)
    outcome: Outcome  # the call's final outcome in pgy.fetch_log
    rows: int  # rows of the hostile series in pgy.kol_fans_trend afterwards (0: nothing loaded)
    raw: str | None  # how the final attempt's body is kept (pgy.raw_body): json / text / bytes / None
    http_status: int | None = 200  # of the final attempt (None: no HTTP answer arrived)
    api_code: int | None = 0  # of the final attempt (None: no readable code)
    attempts: int = 1  # requests made for the call (retries count as attempts)
    earlier: Outcome | None = None  # outcome of the attempts before the final one
    times: int | None = None  # hostile answers per series before clean ones (None: every answer)
    series: Series | None = None  # only this series is hostile (None: both)
    concurrency: int = 4  # 1 for stop cases: clean KOLs (sorted first) are fetched before the stop

    @property
    def loads(self) -> str:
        return (
            "none" if self.rows == 0 else f"{self.rows:,} per series" if self.rows != WINDOW else f"all {WINDOW} days"
        )


def _malformed(kind: str, fault: str, raw: str = "json", api_code: int | None = 0) -> Hostile:
    return Hostile(kind, fault, MALFORMED, 0, raw, api_code=api_code)


def _storm(kind: str, fault: str, status: int | None, code: int | None, raw: str | None, earlier: Outcome) -> Hostile:
    return Hostile(kind, fault, FAILED, 0, raw, status, code, MAX_ATTEMPTS, earlier)


CASES: list[Hostile] = [
    # --- bodies that are not the envelope ---------------------------------------------------------------
    _malformed("invalid JSON (single quotes, trailing comma)", "invalid_json", "text", None),
    _malformed("HTML maintenance page with HTTP 200", "html", "text", None),
    _malformed("empty body with HTTP 200", "empty_body", "text", None),
    _malformed("truncated JSON body", "truncated_json", "text", None),
    _malformed("invalid UTF-8 in the body", "invalid_utf8", "bytes", None),
    _malformed("a JSON array instead of the envelope", "not_an_object", "json", None),
    _malformed("envelope without `code`", "no_code", "json", None),
    Hostile('`code` as the string "0" (accepted)', "code_as_string", OK, WINDOW, "json"),
    Hostile("undocumented code 602", "code_602", FAILED, 0, "json", api_code=602),
    Hostile("unknown code 999", "code_999", FAILED, 0, "json", api_code=999),
    Hostile("extra fields in envelope, data and items (accepted)", "extra_fields", OK, WINDOW, "json"),
    # --- data and items ----------------------------------------------------------------------------------
    _malformed("`data` null with code 0", "data_null"),
    _malformed("`data.list` an object, not a list", "list_not_list"),
    _malformed("item without `dateKey`", "date_missing"),
    _malformed("item without `num`", "num_missing"),
    _malformed("dateKey `20260207` (no dashes)", "date_bad_format"),
    _malformed("dateKey `2026/03/08`", "date_slashes"),
    _malformed("dateKey as epoch milliseconds", "date_epoch_ms"),
    _malformed("impossible date 2026-02-30", "date_impossible"),
    _malformed("future date 2999-01-01", "date_future"),
    _malformed("same dateKey twice with different nums", "duplicate_conflict"),
    Hostile("same dateKey twice with the same num (accepted, merged)", "duplicate_same", OK, WINDOW, "json"),
    Hostile("list in reverse date order (accepted)", "unsorted", OK, WINDOW, "json"),
    _malformed("num 8430.0 (a float)", "num_float"),
    _malformed("num 84.3", "num_fraction"),
    _malformed('num "84.3" (a fraction string)', "num_fraction_string"),
    Hostile('num "8430" (a digit string, accepted)', "num_string", OK, WINDOW, "json"),
    _malformed("num true (a bool)", "num_bool"),
    _malformed("num null", "num_null"),
    _malformed("num 2^63 (beyond bigint)", "num_too_big"),
    Hostile("negative total fans", "num_negative", MALFORMED, 0, "json", series=Series.TOTAL_FANS),
    Hostile("negative new fans (accepted: unfollows)", "num_negative", OK, WINDOW, "json", series=Series.NEW_FANS),
    Hostile("empty list with code 0 (billed, counts as the KOL failing)", "empty", Outcome.EMPTY, 0, "json"),
    Hostile("10,000-item list (accepted)", "huge_list", OK, HUGE_LIST_ITEMS, "json"),
    # --- JSON that Python reads and Postgres jsonb refuses, or that exhausts a parser ------------------------
    Hostile("fansNumIncRate `NaN` (0 fans at the window start; accepted, rate null)", "rate_nan", OK, WINDOW, "text"),
    Hostile("fansNumIncRate `Infinity` (accepted, rate null)", "rate_infinity", OK, WINDOW, "text"),
    Hostile(
        "fansNumIncRate `1e999999`, beyond numeric (accepted, rate null)", "rate_exponent_huge", OK, WINDOW, "text"
    ),
    Hostile("fansNumIncRate a 401-digit integer (accepted, rate null)", "rate_huge_int", OK, WINDOW, "json"),
    Hostile("fansNumInc 2^63, beyond bigint (accepted, inc null)", "inc_beyond_bigint", OK, WINDOW, "json"),
    Hostile(
        "message with `\\u0000` and a lone surrogate (accepted, both U+FFFD)",
        "message_nul_surrogate",
        OK,
        WINDOW,
        "text",
    ),
    _malformed("num `NaN`", "num_nan", "text"),
    _malformed("num `-Infinity`", "num_minus_infinity", "text"),
    _malformed("num of 5,000 digits (beyond Python's int parsing)", "num_huge_digits", "text", None),
    _malformed("`code` 2^31, beyond integer", "code_beyond_integer", "json", None),
    _malformed("`data` nested 100,000 arrays deep", "deep_nesting", "text", None),
    # --- codes and HTTP statuses that ask for patience -----------------------------------------------------
    Hostile("HTTP 200 with code 302, once", "code_302", OK, WINDOW, "json", 200, 0, 2, RATE_LIMITED, times=1),
    _storm("HTTP 200 with code 302, every time", "code_302", 200, 302, "json", RATE_LIMITED),
    Hostile("HTTP 429 with Retry-After, once", "http_429", OK, WINDOW, "json", 200, 0, 2, RATE_LIMITED, times=1),
    Hostile("HTTP 503 storm that clears", "http_503", OK, WINDOW, "json", 200, 0, 3, RETRY, times=2),
    _storm("HTTP 503 storm outlasting the retries", "http_503", 503, 503, "json", RETRY),
    _storm("HTTP 502 HTML page from a proxy", "http_502_html", 502, None, "text", RETRY),
    _storm("HTTP 500 page echoing the URL (token masked)", "html_echo", 500, None, "text", RETRY),
    _storm("answer slower than the read timeout", "slow", None, None, None, RETRY),
    _storm("body stalling mid-way past the read timeout", "slow_body", None, None, None, RETRY),
    _storm("connection reset mid-body", "reset_mid_body", None, None, None, RETRY),
    _storm("connection closed without an answer", "drop", None, None, None, RETRY),
    Hostile("HTTP 429 carrying code 303 (quota)", "http_429_quota", STOPPED, 0, "json", 429, 303, concurrency=1),
]


@pytest.fixture(scope="module")
def warehouse(admin_url: str) -> Iterator[Engine]:
    """One migrated database for the whole module (every case uses its own KOL ids)."""
    with fresh_database(admin_url, prefix="pgy_hostile") as url:
        engine = create_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def _kols(index: int) -> tuple[str, str, str]:
    """Two clean KOLs and the hostile one, which sorts last (the run fetches in id order)."""
    return f"a{index:023x}", f"b{index:023x}", f"f{index:023x}"


def _rows(engine: Engine, kol_id: str, series: Series) -> dict[date, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("select date_key, num from pgy.kol_fans_trend where kol_id = :k and increase_type = :s"),
            {"k": kol_id, "s": series.value},
        )
        return {d: n for d, n in rows}


def _attempts(engine: Engine, run_id: str, kol_id: str, series: Series) -> list[tuple[object, ...]]:
    """(attempt, outcome, is_final, http_status, api_code, raw kind) per fetch_log row of one call."""
    sql = """
        select f.attempt, f.outcome, f.is_final, f.http_status, f.api_code,
               case r.kind when 'j' then 'json' when 't' then 'text' when 'b' then 'bytes' end
          from pgy.fetch_log f left join pgy.raw_body r on r.fetch_log_id = f.id
         where f.run_id = :run and f.kol_id = :k and f.increase_type = :s
         order by f.attempt
    """
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql), {"run": run_id, "k": kol_id, "s": series.value})]


def _truth(sim: Simulator, kol_id: str, series: Series) -> dict[date, int]:
    days = (FIRST_DAY + timedelta(days=n) for n in range(WINDOW))
    return {d: n for d in days if (n := sim.truth(kol_id, series, d)) is not None}


def _check_hostile_call(
    case: Hostile, engine: Engine, report: RunReport, sim: Simulator, kol_id: str, series: Series
) -> None:
    attempts = _attempts(engine, report.run_id, kol_id, series)
    *earlier, final = attempts
    assert [a[0] for a in attempts] == list(range(1, case.attempts + 1))  # every retry is a logged attempt
    assert final[1:5] == (case.outcome.value, True, case.http_status, case.api_code)
    assert final[5] == case.raw  # the body as received (token masked), or none when nothing arrived
    assert all(a[1] == (case.earlier.value if case.earlier else None) and a[2] is False for a in earlier)
    sent = [c for c in sim.calls if c.kol_id == kol_id and c.series is series]
    assert len(sent) == case.attempts  # no hidden retries, no retry of a billed malformed body
    rows = _rows(engine, kol_id, series)
    assert len(rows) == case.rows  # a rejected answer writes no row at all
    if case.rows == WINDOW and case.fault not in ("num_negative",):
        assert rows == _truth(sim, kol_id, series)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.fault}-{c.outcome.value}" for c in CASES])
def test_hostile_answer_is_recorded_and_contained(
    index: int, warehouse: Engine, sim_fixed_date: Simulator, make_client: MakeClient
) -> None:
    case = CASES[index]
    *clean, hostile = kols = _kols(index)
    add_kols(warehouse, kols)
    hostile_series = [case.series] if case.series else list(Series)
    for series in hostile_series:
        sim_fixed_date.inject(hostile, case.fault, times=case.times, series=series)
    sim_fixed_date.config.slow_s = SLOW_S
    client = make_client(max_attempts=MAX_ATTEMPTS, concurrency=case.concurrency, read_timeout_s=READ_TIMEOUT_S)
    report = run_range(warehouse, client, DAY, DAY, run_id=f"hostile-{index}", kol_ids=kols, today=SIM_TODAY)

    for series in hostile_series[:1] if case.outcome is STOPPED else hostile_series:
        _check_hostile_call(case, warehouse, report, sim_fixed_date, hostile, series)
    for series in Series:  # the clean KOLs, and the hostile KOL's clean series, load in full
        for kol_id in clean + ([hostile] if series not in hostile_series and case.outcome is not STOPPED else []):
            assert _rows(warehouse, kol_id, series) == _truth(sim_fixed_date, kol_id, series), (kol_id, series)

    if case.outcome is STOPPED:  # a stop code stops: the hostile KOL's other series is never sent
        assert report.stop is not None and report.stop.api_code == case.api_code
        assert _attempts(warehouse, report.run_id, hostile, Series.NEW_FANS) == [
            (0, "not_attempted", True, None, None, None)
        ]
        assert report.problems[0].startswith("The API stopped the run: Daily quota exceeded (code 303)")
    else:
        assert report.stop is None
        complete = case.outcome is OK and case.rows >= WINDOW
        assert (report.problems == []) == complete, report.problems


TABLE_START, TABLE_END = "<!-- hostile-table:start -->", "<!-- hostile-table:end -->"


RELIABILITY_DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def test_docs_table_matches_the_cases() -> None:
    """The hostile table in docs/reliability.md, with its fault count, must be exactly `readme_table()`."""
    doc = RELIABILITY_DOC.read_text(encoding="utf-8")
    assert TABLE_START in doc and TABLE_END in doc, f"put the hostile table between {TABLE_START} and {TABLE_END}"
    pasted = doc.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert pasted == readme_table(), (
        "docs/reliability.md's hostile table is stale: python -m pgy_pipeline_tests.scenarios.test_hostile_responses"
    )


def readme_table() -> str:
    """The docs' table of hostile answers (and how many faults it uses), rendered from CASES."""
    lines = [
        "| # | hostile answer (simulator fault) | final outcome | HTTP / code | attempts "
        "| rows loaded | raw body kept |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, c in enumerate(CASES, start=1):
        target = f", {c.series.value} only" if c.series else ""
        status = f"{c.http_status or '-'} / {'-' if c.api_code is None else c.api_code}"
        earlier = f" ({c.attempts - 1} x {c.earlier.value})" if c.earlier and c.attempts > 1 else ""
        lines.append(
            f"| {n} | {c.kind} (`{c.fault}`{target}) | `{c.outcome.value}` | {status} | {c.attempts}{earlier} "
            f"| {c.loads} | {c.raw or 'no body arrived'} |"
        )
    faults = len({c.fault for c in CASES})
    lines += ["", f"The {len(CASES)} rows use {faults} different simulator faults."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(readme_table())
