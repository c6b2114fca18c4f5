"""One run over partition dates D1..D2: plan → fetch → record → load → judge, with no Dagster in sight.

The Dagster asset, the CLI and the tests all call `run_range`; it returns a `RunReport` and never
raises for API trouble (a stop code, failed calls, unreachable dates): those are facts the caller
turns into metadata and, when `report.problems` is non-empty, into a failed run. Whatever was fetched
before a stop is recorded and loaded first, so nothing billed is ever thrown away.

Results stream from the fetcher and are recorded and loaded a chunk at a time, so a run over 10,000 KOLs
holds one chunk of responses in memory, not all of them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Engine

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.china_time import china_today
from pgy_pipeline.fetch import fetch_iter
from pgy_pipeline.model import NOT_FAILED_OUTCOMES, Attempt, CallResult, Outcome, StopRun
from pgy_pipeline.plan import Plan, date_range, make_plan, reachable_range
from pgy_pipeline.warehouse.errors import reports_unreachable_warehouse
from pgy_pipeline.warehouse.fetch_log import record_calls
from pgy_pipeline.warehouse.kols import flag_results
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline.warehouse.migrate import ensure_schema
from pgy_pipeline.warehouse.not_served import not_served_dates
from pgy_pipeline.warehouse.runs import (
    MAX_LISTED,
    active_kol_ids,
    fetched_pairs,
    flagged_kols,
    missing_dates,
    stored_rows,
)

log = logging.getLogger(__name__)

DEFAULT_CHUNK_CALLS = 1000


@dataclass(frozen=True)
class FailedCall:
    """A (KOL, series) call that ended without data, as listed in the run's metadata."""

    kol_id: str
    series: str
    outcome: str
    code: int | None
    message: str


@dataclass
class RunReport:
    """Everything a run did, aggregated (never one entry per successful call)."""

    plan: Plan
    run_id: str
    api_codes: Counter[str] = field(default_factory=Counter)  # per attempt: "0", "301", "http_503", "timeout"…
    calls_ok: int = 0
    calls_failed: int = 0
    calls_not_attempted: int = 0
    billed_calls: int = 0
    rows_received: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    failed_calls: list[FailedCall] = field(default_factory=list)  # capped at MAX_LISTED
    failed_calls_total: int = 0
    not_served: dict[str, str] = field(default_factory=dict)  # KOLs the API flags (201/400) → message
    missing: dict[str, list[date]] = field(default_factory=dict)  # served KOL → dates neither stored nor not served
    dates_not_served: dict[str, list[date]] = field(default_factory=dict)  # KOL → dates a window covered, unserved
    rows_stored: int = 0  # rows in the warehouse for the partition range after the run (all KOLs)
    stop: StopRun | None = None
    load_s: float = 0.0  # seconds spent recording calls and loading rows (the rest of a run is mostly waiting)

    @property
    def kols_requested(self) -> int:
        return len(self.plan.kol_ids)

    @property
    def kols_complete(self) -> int:
        return self.kols_requested - len(self.not_served) - len(self.missing)

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated

    @property
    def out_of_reach_missing(self) -> list[date]:
        """Dates too old for any window that some served KOL still lacks (already-stored ones are fine)."""
        old = set(self.plan.out_of_reach)
        return sorted({d for days in self.missing.values() for d in days if d in old})

    @property
    def unpublished(self) -> list[date]:
        """Reachable dates some served KOL lacks although every call succeeded: not published by the API yet.

        Every successful window settles the dates it covers (stored or not served), so what is still
        missing lies after the newest date the API served: publish lag. Empty when a stop or failed
        calls explain the gaps instead.
        """
        if self.stop is not None or self.failed_calls_total:
            return []
        old = set(self.plan.out_of_reach)
        return sorted({d for days in self.missing.values() for d in days if d not in old})

    @property
    def complete_dates(self) -> list[date]:
        """Dates of the range (up to the newest the API serves) that no served KOL lacks: done, whatever else failed."""
        p = self.plan
        lacking = {d for days in self.missing.values() for d in days}
        if self.stop is not None or self.failed_calls_total:
            return []  # which dates the failed or unattempted calls would have brought is unknown
        return [d for d in date_range(p.start, min(p.end, p.latest)) if d not in lacking]

    @property
    def problems(self) -> list[str]:
        """One sentence per reason this run must not count as done; empty when the range is complete."""
        out: list[str] = []
        p = self.plan
        if self.stop is not None:
            out.append(
                f"The API stopped the run: {self.stop.reason} ({self.calls_not_attempted} call(s) not attempted; "
                f"the {self.calls_ok} successful call(s) were loaded and will not be billed again on rerun)."
            )
        old = self.out_of_reach_missing
        if old:
            out.append(
                f"{len(old)} date(s) {_span(old)} are older than the {p.window_days} days the {p.endpoint.value} "
                "endpoint serves and cannot be fetched any more (lost for good); everything newer was loaded."
            )
        if p.not_yet_served:
            out.append(
                f"{len(p.not_yet_served)} date(s) {_span(list(p.not_yet_served))} are after {p.latest}, the newest "
                "date the API serves (China-yesterday); run them again tomorrow."
            )
        if self.failed_calls_total and self.stop is None:
            out.append(
                f"{self.failed_calls_total} call(s) failed after retries (see failed_kols); rerun the partition "
                "to retry only those, successful calls are not billed again."
            )
        lagging = self.unpublished
        if lagging:
            kols = sum(1 for days in self.missing.values() if set(days) & set(lagging))
            out.append(
                f"{len(lagging)} date(s) {_span(lagging)} not published by the API yet for {kols} KOL(s) "
                "(see missing_dates); a later run fetches them, billing only the KOLs that lack them."
            )
        return out


def _span(days: Sequence[date]) -> str:
    return f"{days[0]}" if len(days) == 1 else f"{days[0]}..{days[-1]}"


def _code_key(attempt: Attempt) -> str:
    if attempt.api_code is not None:
        return str(attempt.api_code)
    if attempt.http_status is not None:
        return f"http_{attempt.http_status}"
    return "no_response"


def _absorb(report: RunReport, engine: Engine, results: Sequence[CallResult]) -> None:
    """Record one chunk's calls in the fetch log, load its points, flag KOLs, and count."""
    if not results:
        return
    started = time.perf_counter()
    p = report.plan
    fetch_ids = record_calls(engine, results, run_id=report.run_id, partition_start=p.start, partition_end=p.end)
    points = [pt for r in results if r.outcome is Outcome.OK for pt in r.points]
    if points:
        counts = load_points(engine, points, fetch_ids=fetch_ids)
        report.rows_inserted += counts.inserted
        report.rows_updated += counts.updated
        report.rows_unchanged += counts.unchanged
    report.rows_received += len(points)
    flag_results(engine, results)
    report.load_s += time.perf_counter() - started
    for r in results:
        for a in r.attempts:
            report.api_codes[_code_key(a)] += 1
            report.billed_calls += a.billed
        report.calls_ok += r.outcome is Outcome.OK
        report.calls_not_attempted += r.outcome is Outcome.NOT_ATTEMPTED
        if r.outcome not in NOT_FAILED_OUTCOMES:
            report.calls_failed += 1
            if r.outcome not in (Outcome.NO_CONTENT, Outcome.INVALID_PARAMS, Outcome.STOPPED):
                report.failed_calls_total += 1
            if len(report.failed_calls) < MAX_LISTED:
                last = r.last
                report.failed_calls.append(
                    FailedCall(
                        r.kol_id,
                        r.series.value,
                        r.outcome.value,
                        last.api_code if last else None,
                        ((last.api_message or last.error) if last else None) or r.outcome.value,
                    )
                )


@reports_unreachable_warehouse  # Postgres gone mid-run: WarehouseUnavailable, one actionable sentence
def run_range(
    engine: Engine,
    client: TrendClient,
    start: date,
    end: date,
    *,
    run_id: str,
    force: bool = False,
    kol_ids: Sequence[str] | None = None,
    today: date | None = None,
    chunk_calls: int = DEFAULT_CHUNK_CALLS,
) -> RunReport:
    """Fetch and load partition dates start..end for every active KOL (or the active ones of `kol_ids`).

    `today` is the China date the API is assumed to be at (default: now in Asia/Shanghai).
    """
    ensure_schema(engine)
    today = today or china_today()
    kols = active_kol_ids(engine, kol_ids)
    reach = reachable_range(start, end, endpoint=client.endpoint, today=today)
    done = fetched_pairs(engine, kols, *reach) if reach and not force else set()
    plan = make_plan(kols, start, end, endpoint=client.endpoint, today=today, already_fetched=done, force=force)
    report = RunReport(plan=plan, run_id=run_id)
    log.info(
        "run %s: %s..%s, %d KOL(s), %d call(s) planned (%d already fetched), window %d days",
        run_id, start, end, len(kols), len(plan.requests), plan.skipped, plan.window_days,
    )  # fmt: skip
    stream = fetch_iter(client, plan.requests)
    chunk: list[CallResult] = []
    # A full chunk is recorded and loaded in a second thread while this one keeps taking results, so calls
    # stay on the wire during the load instead of waiting for it (the load is mostly waiting for Postgres).
    # At most one chunk is loading; a failed load raises here at the next result, as a serial load would.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgy-absorb") as absorber:
        loading: Future[None] | None = None
        for result in stream:
            if loading is not None and loading.done():
                loading.result()
                loading = None
            chunk.append(result)
            if len(chunk) >= chunk_calls:
                if loading is not None:
                    loading.result()
                loading = absorber.submit(_absorb, report, engine, chunk)
                chunk = []
        if loading is not None:
            loading.result()
    _absorb(report, engine, chunk)
    report.stop = stream.stop
    flagged = flagged_kols(engine, kols)
    report.not_served = {k: f"{c}: {m}" for k, (c, m) in flagged.items()}
    served = [k for k in kols if k not in flagged]
    last_day = min(end, plan.latest)
    if start <= last_day:
        report.missing = missing_dates(engine, served, start, last_day)
        report.dates_not_served = not_served_dates(engine, kols, start, last_day)
    report.rows_stored = stored_rows(engine, start, end)
    log.info(
        "run %s: %d ok, %d failed, %d not attempted; rows %d inserted, %d updated, %d unchanged",
        run_id, report.calls_ok, report.calls_failed, report.calls_not_attempted,
        report.rows_inserted, report.rows_updated, report.rows_unchanged,
    )  # fmt: skip
    return report
