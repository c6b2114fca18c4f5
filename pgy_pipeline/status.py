"""`pgy-pipeline status`: is the warehouse complete for the last days, and how did the last run go?

Answers only from the warehouse (never from Dagster's storage), so cron, monitoring and people at a
terminal see what analysts' queries will see. The exit code is the contract for machines: non-zero
when yesterday (China time) is incomplete for any active KOL the API serves.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from pgy_pipeline.china_time import china_midnight, china_today, latest_served_date
from pgy_pipeline.model import NOT_FAILED_OUTCOMES, Endpoint
from pgy_pipeline.plan import oldest_reachable_date
from pgy_pipeline.warehouse.completeness import DAYS_SQL, EXPECTED_SQL, SETTLED_SQL, lacking
from pgy_pipeline.warehouse.fetch_log import billed_since
from pgy_pipeline.warehouse.health import lost_for_good, quarantined

MAX_NAMED = 20  # missing KOL ids named per date; the counts are always complete

_PARTITIONS_SQL = f"""
WITH days AS ({DAYS_SQL}),
expected AS ({EXPECTED_SQL}),
not_served AS (  -- covered by a successful window that did not contain them: settled, not missing
    SELECT n.date_key, n.kol_id
      FROM pgy.kol_fans_not_served n JOIN expected USING (kol_id)
     WHERE n.date_key BETWEEN :start AND :end
),
landed AS (
    SELECT s.date_key, s.kol_id
      FROM ({SETTLED_SQL}) s JOIN expected USING (kol_id)
     GROUP BY s.date_key, s.kol_id
    HAVING count(*) = 2
),
calls AS (
    SELECT days.day, f.api_code, f.http_status, f.outcome, f.billed, f.is_final, f.attempt
      FROM days JOIN pgy.fetch_log f ON f.partition_start <= days.day AND f.partition_end >= days.day
)
SELECT days.day,
       (SELECT count(*) FROM expected) AS kols_expected,
       (SELECT count(*) FROM landed l WHERE l.date_key = days.day) AS kols_complete,
       (SELECT array_agg(e.kol_id ORDER BY e.kol_id) FROM expected e
         WHERE NOT EXISTS (SELECT 1 FROM landed l WHERE l.date_key = days.day AND l.kol_id = e.kol_id)) AS missing,
       (SELECT array_agg(DISTINCT n.kol_id ORDER BY n.kol_id) FROM not_served n WHERE n.date_key = days.day)
           AS not_served,
       (SELECT count(*) FROM pgy.tracked_kol WHERE active AND last_error_at IS NOT NULL) AS kols_flagged,
       (SELECT count(*) FROM pgy.kol_quarantine) AS kols_quarantined,
       (SELECT count(*) FROM calls c WHERE c.day = days.day AND c.is_final) AS calls,
       (SELECT count(*) FROM calls c WHERE c.day = days.day AND c.billed) AS billed_calls,
       (SELECT coalesce(jsonb_object_agg(code, n), '{{}}'::jsonb) FROM (
            SELECT coalesce(c.api_code::text, 'http_' || c.http_status::text, c.outcome) AS code, count(*) AS n
              FROM calls c WHERE c.day = days.day AND c.attempt > 0 GROUP BY 1) codes) AS codes
  FROM days
 ORDER BY days.day DESC
"""

_LAST_RUN_SQL = """
WITH last AS (
    SELECT run_id FROM pgy.fetch_log WHERE run_id IS NOT NULL ORDER BY id DESC LIMIT 1
)
SELECT f.run_id,
       min(f.fetched_at) AS started_at,
       max(f.fetched_at) AS finished_at,
       min(f.partition_start) AS partition_start,
       max(f.partition_end) AS partition_end,
       count(*) FILTER (WHERE f.is_final) AS calls,
       count(*) FILTER (WHERE f.is_final AND f.outcome = 'ok') AS calls_ok,
       count(*) FILTER (WHERE f.is_final AND f.outcome <> ALL(:not_failed) AND q.kol_id IS NULL) AS calls_failed,
       count(*) FILTER (WHERE f.is_final AND f.outcome <> ALL(:not_failed) AND q.kol_id IS NOT NULL)
           AS calls_failed_quarantined,
       count(*) FILTER (WHERE f.is_final AND f.outcome = 'not_attempted') AS calls_not_attempted,
       count(*) FILTER (WHERE f.billed) AS billed_calls,
       max(f.api_code) FILTER (WHERE f.outcome = 'stopped') AS stop_code,
       max(coalesce(f.api_message, f.error)) FILTER (WHERE f.outcome = 'stopped') AS stop_message
  FROM pgy.fetch_log f JOIN last USING (run_id)
  LEFT JOIN pgy.kol_quarantine q USING (kol_id)
 GROUP BY f.run_id
"""


@dataclass(frozen=True)
class PartitionStatus:
    date: date
    kols_expected: int
    kols_complete: int
    kols_missing: int
    missing: list[str]  # the first MAX_NAMED missing ids
    kols_not_served: int  # KOLs whose date (one or both series) the API covered but does not serve
    not_served: list[str]  # the first MAX_NAMED of them
    kols_flagged: int
    calls: int
    billed_calls: int
    codes: dict[str, int]

    @property
    def complete(self) -> bool:
        return self.kols_missing == 0


@dataclass(frozen=True)
class LastRun:
    run_id: str
    started_at: datetime
    finished_at: datetime
    partition_start: date | None
    partition_end: date | None
    calls: int
    calls_ok: int
    calls_failed: int  # of KOLs not in quarantine now
    calls_failed_quarantined: int  # of KOLs in quarantine now: expected, they are tried once a day
    calls_not_attempted: int
    billed_calls: int
    stop_code: int | None
    stop_message: str | None
    # Judged from the warehouse over the run's partition range (up to yesterday), as the run judged itself:
    kols_incomplete: int = 0  # served KOLs still lacking a date the API serves
    dates_lost: list[date] = field(default_factory=list)  # dates some KOL lacks that are too old to fetch

    @property
    def outcome(self) -> str:
        if self.stop_code is not None or self.stop_message:
            return f"stopped (code {self.stop_code}: {self.stop_message})"
        if self.calls_failed:
            return f"partial ({self.calls_failed} call(s) failed)"
        if self.dates_lost:
            return f"failed ({len(self.dates_lost)} date(s) lost for good: older than the API serves)"
        if self.kols_incomplete:
            return f"incomplete ({self.kols_incomplete} KOL(s) lack dates the API has not published yet)"
        return "succeeded"


@dataclass(frozen=True)
class QuarantineLine:
    """A quarantined KOL as status names it: why, since when, and what it has lost for good."""

    kol_id: str
    since: date
    last_outcome: str
    last_code: int | None
    last_message: str | None
    lost_first: date | None = None
    lost_last: date | None = None


@dataclass(frozen=True)
class Status:
    today: date
    yesterday: date
    partitions: list[PartitionStatus]
    last_run: LastRun | None = None
    problems: list[str] = field(default_factory=list)
    quarantined: list[QuarantineLine] = field(default_factory=list)
    billed_today: int = 0  # billed calls since midnight China time, all runs
    daily_call_budget: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["ok"] = self.ok
        if self.last_run is not None:
            data["last_run"]["outcome"] = self.last_run.outcome
        return json.dumps(data, default=str, indent=2)


def read_status(
    engine: Engine,
    *,
    days: int = 7,
    today: date | None = None,
    daily_call_budget: int | None = None,
    endpoint: Endpoint = Endpoint.LEGACY_V1,
) -> Status:
    """The last `days` partitions ending at China-yesterday, the most recent run, quarantine and today's spend."""
    if days < 1:
        raise ValueError(f"--days must be at least 1, not {days}")
    today = today or china_today()
    end = latest_served_date(today)
    start = end - timedelta(days=days - 1)
    with engine.connect() as conn:
        rows = conn.execute(text(_PARTITIONS_SQL), {"start": start, "end": end}).mappings().all()
        not_failed = [o.value for o in NOT_FAILED_OUTCOMES]
        run = conn.execute(text(_LAST_RUN_SQL), {"not_failed": not_failed}).mappings().first()
    partitions = [
        PartitionStatus(
            date=r["day"],
            kols_expected=r["kols_expected"],
            kols_complete=r["kols_complete"],
            kols_missing=len(r["missing"] or []),
            missing=list(r["missing"] or [])[:MAX_NAMED],
            kols_not_served=len(r["not_served"] or []),
            not_served=list(r["not_served"] or [])[:MAX_NAMED],
            kols_flagged=r["kols_flagged"],
            calls=r["calls"],
            billed_calls=r["billed_calls"],
            codes=dict(r["codes"]),
        )
        for r in rows
    ]
    problems: list[str] = []
    newest = partitions[0]
    if not newest.complete:
        named = ", ".join(newest.missing) + (" …" if newest.kols_missing > len(newest.missing) else "")
        problems.append(
            f"yesterday ({newest.date}) is incomplete: {newest.kols_missing} of {newest.kols_expected} KOL(s) "
            f"missing ({named}); materialise partition {newest.date} to fetch them"
        )
    in_quarantine = quarantined(engine)
    lost = lost_for_good(engine, in_quarantine, oldest_reachable_date(today, endpoint))
    lines = [
        QuarantineLine(k, q.since, q.last_outcome, q.last_code, q.last_message, *lost.get(k, (None, None)))
        for k, q in in_quarantine.items()
    ]
    return Status(
        today,
        end,
        partitions,
        _judged(engine, LastRun(**run), today) if run else None,
        problems,
        quarantined=lines,
        billed_today=billed_since(engine, china_midnight(china_today())),
        daily_call_budget=daily_call_budget,
    )


def _judged(engine: Engine, run: LastRun, today: date) -> LastRun:
    """The run with what its partition range lacks now: the same verdict the run's own judgement reached."""
    if run.partition_start is None or run.partition_end is None:
        return run
    last = min(run.partition_end, latest_served_date(today))
    if last < run.partition_start:
        return run
    missing = lacking(engine, run.partition_start, last)
    oldest = oldest_reachable_date(today, _endpoint_of(engine, run.run_id))
    lost = sorted({d for days in missing.values() for d in days if d < oldest})
    recent = sum(1 for days in missing.values() if any(d >= oldest for d in days))
    return replace(run, kols_incomplete=recent, dates_lost=lost)


def _endpoint_of(engine: Engine, run_id: str) -> Endpoint:
    with engine.connect() as conn:
        value = conn.scalar(text("SELECT max(endpoint) FROM pgy.fetch_log WHERE run_id = :r"), {"r": run_id})
    return Endpoint(value) if value else Endpoint.LEGACY_V1


def format_table(status: Status) -> str:
    """A plain table for people; `Status.to_json()` is the machine form."""
    header = (
        f"{'date':<10}  {'complete':>9}  {'missing':>7}  {'not served':>10}  {'flagged':>7}  {'calls':>6}  "
        f"{'billed':>6}  codes"
    )
    lines = [f"pgy-pipeline status (today in China: {status.today})", "", header, "-" * len(header)]
    for p in status.partitions:
        codes = " ".join(f"{code}:{n}" for code, n in sorted(p.codes.items())) or "-"
        lines.append(
            f"{p.date!s:<10}  {f'{p.kols_complete}/{p.kols_expected}':>9}  {p.kols_missing:>7}  "
            f"{p.kols_not_served:>10}  {p.kols_flagged:>7}  {p.calls:>6}  {p.billed_calls:>6}  {codes}"
        )
    lines.append("")
    run = status.last_run
    if run is None:
        lines.append("last run: none recorded yet")
    else:
        lines.append(
            f"last run: {run.run_id} at {run.finished_at:%Y-%m-%d %H:%M:%S %Z} over partitions "
            f"{run.partition_start}..{run.partition_end}: {run.calls} call(s), {run.calls_ok} ok, "
            f"{run.calls_failed} failed (+{run.calls_failed_quarantined} of quarantined KOLs), "
            f"{run.calls_not_attempted} not attempted, {run.billed_calls} billed "
            f"-> {run.outcome}"
        )
    budget = "no daily budget" if status.daily_call_budget is None else f"budget {status.daily_call_budget}"
    lines.append(f"billed today (China time): {status.billed_today} call(s), {budget}")
    if status.quarantined:
        lines.append(f"quarantined: {len(status.quarantined)} KOL(s) (tried once a day; not holding partitions back)")
    for q in status.quarantined:
        code = "" if q.last_code is None else f" code {q.last_code}"
        lost = f"; lost for good: {q.lost_first}..{q.lost_last}" if q.lost_first else ""
        lines.append(f"  QUARANTINED {q.kol_id} since {q.since}: {q.last_outcome}{code}: {q.last_message}{lost}")
    lines.extend(f"PROBLEM: {p}" for p in status.problems)
    if status.ok:
        lines.append(f"OK: yesterday ({status.yesterday}) is complete")
    return "\n".join(lines)
