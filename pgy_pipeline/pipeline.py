"""One run over partition dates D1..D2: plan → probe → fetch → record → load → judge, with no Dagster in sight.

The Dagster asset, the CLI and the tests all call `run_range`; it returns a `RunReport` (verdict.py) and never
raises for API trouble: those are facts the caller turns into metadata and, when `report.problems` is non-empty,
a failed run. Results stream from the fetcher and are recorded and loaded a chunk at a time, so nothing billed is
thrown away and memory holds one chunk. See docs/completeness.md (partial failure) and docs/api-client.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date

from sqlalchemy import Engine

from pgy_pipeline.api.client import TrendClient
from pgy_pipeline.budget import CallBudget
from pgy_pipeline.china_time import china_midnight, china_today, latest_served_date
from pgy_pipeline.config import Settings
from pgy_pipeline.fetch import FetchStream, fetch_iter
from pgy_pipeline.model import (
    MAX_LISTED,
    NOT_FAILED_OUTCOMES,
    Attempt,
    CallRequest,
    CallResult,
    Outcome,
    Series,
    StopRun,
)
from pgy_pipeline.plan import Plan, make_plan, oldest_reachable_date, reachable_range
from pgy_pipeline.tally import KolTally
from pgy_pipeline.verdict import FailedCall, RunReport
from pgy_pipeline.warehouse.completeness import complete_of, lacking, settled_pairs, stored_rows
from pgy_pipeline.warehouse.errors import reports_unreachable_warehouse
from pgy_pipeline.warehouse.fetch_log import billed_since, record_calls
from pgy_pipeline.warehouse.health import apply_run, failing_kols, lost_for_good, quarantined, resting
from pgy_pipeline.warehouse.kols import active_kol_ids, flag_kols, flagged_kols
from pgy_pipeline.warehouse.load import load_points
from pgy_pipeline.warehouse.migrate import ensure_schema
from pgy_pipeline.warehouse.not_served import not_served_dates
from pgy_pipeline.warehouse.raw_archive import expire_daily

log = logging.getLogger(__name__)

DEFAULT_CHUNK_CALLS = 1000
PROBE_CALLS = 2  # billed calls a lag probe may cost: one series of two KOLs
BREAKER_EVERY = 10  # KOLs tried between two looks at whether the run is being rejected as a whole


def _code_key(attempt: Attempt) -> str:
    if attempt.api_code is not None:
        return str(attempt.api_code)
    if attempt.http_status is not None:
        return f"http_{attempt.http_status}"
    return "no_response"


class _Loader:
    """Takes results as they stream in: records and loads them a chunk at a time, tallies and counts them.

    A full chunk is recorded and loaded in a second thread while the caller keeps taking results, so calls
    stay on the wire during the load instead of waiting for it (the load is mostly waiting for Postgres). At
    most one chunk is loading; a failed load raises at the next result, as a serial load would.
    """

    def __init__(self, report: RunReport, engine: Engine, client: TrendClient, chunk_calls: int) -> None:
        self.report, self.engine, self.client, self.chunk_calls = report, engine, client, chunk_calls
        self.tally = KolTally()
        self._chunk: list[CallResult] = []
        self._absorber = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pgy-absorb")
        self._loading: Future[None] | None = None

    def take(self, results: Iterable[CallResult]) -> None:
        """Absorb every result of `results`."""
        for result in results:
            if self._loading is not None and self._loading.done():
                self._loading.result()
                self._loading = None
            self.tally.add(result)
            if not self.report.breaker and len(self.tally.tried) % BREAKER_EVERY == 0:
                self._maybe_break()
            self._chunk.append(result)
            if len(self._chunk) >= self.chunk_calls:
                self._submit()

    def _maybe_break(self) -> None:
        rejected = self.tally.breaker()
        if rejected is not None:
            self.report.breaker = True
            log.error("run %s: stopping early: %s", self.report.run_id, rejected.sentence)
            self.client.halt(StopRun(rejected.sentence))

    def _submit(self) -> None:
        if self._loading is not None:
            self._loading.result()
        self._loading = self._absorber.submit(self._absorb, self._chunk)
        self._chunk = []

    def finish(self) -> None:
        try:
            if self._loading is not None:
                self._loading.result()
            self._absorb(self._chunk)
            self._chunk = []
        finally:
            self._absorber.shutdown(wait=True)

    def _absorb(self, results: Sequence[CallResult]) -> None:
        """Record one chunk's calls in the fetch log, load its points, and count."""
        if not results:
            return
        report, engine = self.report, self.engine
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
        report.load_s += time.perf_counter() - started
        for r in results:
            for a in r.attempts:
                report.api_codes[_code_key(a)] += 1
                report.billed_calls += a.billed
            report.calls_ok += r.outcome is Outcome.OK
            report.calls_not_attempted += r.outcome is Outcome.NOT_ATTEMPTED
            if r.outcome not in NOT_FAILED_OUTCOMES:
                report.calls_failed += 1
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


def _probe_requests(plan: Plan, avoid: set[str]) -> list[CallRequest]:
    """Up to PROBE_CALLS calls (one series of different KOLs, healthy ones first) that show whether the newest
    date is published; empty when the range does not reach the newest date."""
    if not plan.start <= plan.latest <= plan.end:
        return []
    candidates = [r for r in plan.requests if r.series is Series.TOTAL_FANS]
    candidates.sort(key=lambda r: r.kol_id in avoid)
    return candidates[:PROBE_CALLS]


def _shows(results: Sequence[CallResult], latest: date) -> str:
    """What probe results say about `latest`: published, not published, or inconclusive (no data came back)."""
    answered = [r for r in results if r.outcome is Outcome.OK and r.points]
    if not answered:
        return "inconclusive"
    return "published" if any(max(pt.date_key for pt in r.points) >= latest for r in answered) else "not published"


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
    final_attempt: bool = True,
    daily_call_budget: int | None = None,
    quarantine_after_days: int = Settings.quarantine_after_days.default,
    raw_retention_days: int = Settings.raw_retention_days.default,
) -> RunReport:
    """Fetch and load partition dates start..end for every active KOL (or the active ones of `kol_ids`).

    `today` is the China date the API is assumed to be at (default: now in Asia/Shanghai). When the range
    reaches the newest date, a probe of at most two calls first asks whether it is published; unless this is
    the `final_attempt` (no lag retry left), an unpublished newest date ends the run there, billing only the
    probe. `daily_call_budget` caps billed calls per China day (wall clock) across all runs. Raw bodies of
    successful calls older than `raw_retention_days` expire first (at most once a day per engine).
    """
    ensure_schema(engine)
    expire_daily(engine, raw_retention_days)
    today = today or china_today()
    kols = active_kol_ids(engine, kol_ids)
    reach = reachable_range(start, end, endpoint=client.endpoint, today=today)
    on = min(end, latest_served_date(today))  # the partition date this run stands for (streaks count these)
    in_quarantine = quarantined(engine, kol_ids)  # the view lists active KOLs only
    rest = resting(in_quarantine, on)
    to_fetch = [k for k in kols if k not in rest]
    done = settled_pairs(engine, to_fetch, *reach) if reach and not force else set()
    plan = make_plan(
        to_fetch, start, end, endpoint=client.endpoint, today=today, already_fetched=done, force=force,
        widest_for=set(in_quarantine),
    )  # fmt: skip
    budget = None
    if daily_call_budget is not None:
        budget = CallBudget(daily_call_budget, billed_since(engine, china_midnight(china_today())))
    report = RunReport(plan=plan, run_id=run_id, quarantine_after_days=quarantine_after_days, budget=budget)
    report.resting = sorted(rest)
    log.info(
        "run %s: %s..%s, %d KOL(s), %d call(s) planned (%d already fetched, %d quarantined KOL(s) resting), "
        "window %d days",
        run_id, start, end, len(to_fetch), len(plan.requests), plan.skipped, len(rest), plan.window_days,
    )  # fmt: skip
    loader = _Loader(report, engine, client, chunk_calls)
    streams: list[FetchStream] = []
    try:
        requests: Iterable[CallRequest] = plan.requests
        probe = (
            []
            if in_quarantine.keys() >= set(to_fetch)
            else _probe_requests(plan, set(in_quarantine) | failing_kols(engine))
        )
        if probe:
            streams.append(fetch_iter(client, probe, budget))
            answers = list(streams[-1])  # at most PROBE_CALLS
            loader.take(answers)
            report.lag_probe = _shows(answers, plan.latest)
            log.info("run %s: lag probe of %d call(s): newest date %s %s", run_id, len(probe), plan.latest,
                     report.lag_probe)  # fmt: skip
            probed = set(probe)
            requests = (r for r in plan.requests if r not in probed)
            if report.lag_probe == "not published" and not final_attempt:
                requests = ()  # a lag retry follows: fetching the rest now would bill them twice
        streams.append(fetch_iter(client, requests, budget))
        loader.take(streams[-1])
    finally:
        loader.finish()
    report.stop = next((s.stop for s in streams if s.stop is not None), None)
    _judge(report, engine, kols, kol_ids, on, today, set(in_quarantine), loader.tally)
    log.info(
        "run %s: %d ok, %d failed, %d not attempted; rows %d inserted, %d updated, %d unchanged",
        run_id, report.calls_ok, report.calls_failed, report.calls_not_attempted,
        report.rows_inserted, report.rows_updated, report.rows_unchanged,
    )  # fmt: skip
    return report


def _judge(
    report: RunReport, engine: Engine, kols: list[str], kol_ids: Sequence[str] | None, on: date, today: date,
    was_quarantined: set[str], tally: KolTally,
) -> None:  # fmt: skip
    """Flag, record health (unless the whole run was rejected), then judge the range from the warehouse."""
    plan = report.plan
    report.systemic = tally.systemic()
    report.failing = set(tally.failing)
    if report.systemic is None:
        flag_kols(engine, tally.with_data, tally.flagged)
        report.health = apply_run(
            engine,
            on=on,
            run_id=report.run_id,
            healthy=tally.healthy,
            failing=tally.failing,
            tried_in_quarantine=tally.tried & was_quarantined,
            after_days=report.quarantine_after_days,
        )
    flagged = flagged_kols(engine, kols)
    report.not_served = {k: f"{c}: {m}" for k, (c, m) in flagged.items()}
    report.quarantined = quarantined(engine, kol_ids)
    report.lost_in_quarantine = lost_for_good(engine, report.quarantined, oldest_reachable_date(today, plan.endpoint))
    last_day = min(plan.end, plan.latest)
    if plan.start <= last_day:
        everyone = lacking(engine, plan.start, last_day)
        report.missing = lacking(engine, plan.start, last_day, kols) if kol_ids is not None else everyone
        report.complete_dates = complete_of(everyone, plan.start, last_day)
        report.dates_not_served = not_served_dates(engine, kols, plan.start, last_day)
    report.rows_stored = stored_rows(engine, plan.start, plan.end)
