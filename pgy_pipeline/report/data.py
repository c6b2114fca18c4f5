"""What the report and `kols show` draw, read from the warehouse alone in a handful of queries.

Series come back as one array per KOL and series (Postgres aggregates them), so 10,000 KOLs x 60 days is
20,000 rows to Python rather than 1.2 million. Quarantined KOLs come from `pgy.kol_quarantine`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text

from pgy_pipeline.errors import UsageError
from pgy_pipeline.plan import date_range
from pgy_pipeline.report.coverage import classify
from pgy_pipeline.warehouse.anomaly import Anomaly, stored_anomalies
from pgy_pipeline.warehouse.health import quarantined


class UnknownKol(UsageError):
    """A KOL id the warehouse has never heard of."""


@dataclass(frozen=True)
class KolSeries:
    """One KOL over the report's dates: values are None where nothing is stored."""

    kol_id: str
    label: str | None
    total: list[int | None]
    new: list[int | None]
    cells: str  # one coverage.Cell letter per date


@dataclass(frozen=True)
class Revision:
    kol_id: str
    date_key: date
    increase_type: str
    old_num: int
    new_num: int
    changed_at: datetime


@dataclass(frozen=True)
class HealthDay:
    """One China day of API calls: the figures of pgy.fetch_health for that day."""

    fetch_date: date
    calls: int
    calls_ok: int
    calls_failed: int
    billed_calls: int
    codes: dict[str, int]


@dataclass(frozen=True)
class ReportData:
    start: date
    end: date
    kols: list[KolSeries]
    anomalies: list[Anomaly]
    revisions: list[Revision]
    health: list[HealthDay]
    budget: int | None = None
    generated_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    @property
    def dates(self) -> list[date]:
        return date_range(self.start, self.end)

    def window(self, end: date, days: int) -> ReportData:
        """The same data cut to the `days` dates ending at `end` (within start..end)."""
        start = max(self.start, end - timedelta(days=days - 1))
        lo, hi = (start - self.start).days, (end - self.start).days + 1
        kols = [replace(k, total=k.total[lo:hi], new=k.new[lo:hi], cells=k.cells[lo:hi]) for k in self.kols]
        return replace(
            self,
            start=start,
            end=end,
            kols=kols,
            anomalies=[a for a in self.anomalies if start <= a.date_key <= end],
            revisions=[r for r in self.revisions if start <= r.date_key <= end],
            health=[h for h in self.health if start < h.fetch_date <= end + timedelta(days=1)],
        )


_KOLS_SQL = """
SELECT kol_id, label, last_error_at IS NOT NULL AS refused
  FROM pgy.tracked_kol
 WHERE (CAST(:only AS text[]) IS NULL AND active) OR kol_id = ANY(CAST(:only AS text[]))
 ORDER BY kol_id
"""

_SERIES_SQL = """
SELECT kol_id, increase_type,
       array_agg(date_key - CAST(:start AS date) ORDER BY date_key), array_agg(num ORDER BY date_key)
  FROM pgy.kol_fans_trend
 WHERE date_key BETWEEN :start AND :end AND kol_id = ANY(:kols)
 GROUP BY kol_id, increase_type
"""

_NOT_SERVED_SQL = """
SELECT kol_id, date_key, count(*) FROM pgy.kol_fans_not_served
 WHERE date_key BETWEEN :start AND :end AND kol_id = ANY(:kols)
 GROUP BY kol_id, date_key
"""

_REVISIONS_SQL = """
SELECT kol_id, date_key, increase_type, old_num, new_num, changed_at FROM pgy.kol_fans_trend_revision
 WHERE date_key BETWEEN :start AND :end AND kol_id = ANY(:kols)
 ORDER BY kol_id, date_key, changed_at
"""

# pgy.fetch_health's figures for the China days after :start up to the day after :end (when :end was fetched).
# Read from pgy.fetch_log within that time range (its time index) rather than from the view, which aggregates the
# whole log before any filter applies: a year of calls is millions of rows.
_HEALTH_SQL = """
WITH attempts AS (
    SELECT (fetched_at AT TIME ZONE 'Asia/Shanghai')::date AS fetch_date, attempt, outcome, is_final, billed,
           coalesce(api_code::text, 'http_' || http_status::text, outcome) AS code
      FROM pgy.fetch_log
     WHERE fetched_at >= (CAST(:start AS date) + 1)::timestamp AT TIME ZONE 'Asia/Shanghai'
       AND fetched_at < (CAST(:end AS date) + 2)::timestamp AT TIME ZONE 'Asia/Shanghai'
),
codes AS (
    SELECT fetch_date, jsonb_object_agg(code, n ORDER BY code) AS codes
      FROM (SELECT fetch_date, code, count(*) AS n FROM attempts WHERE attempt > 0 GROUP BY 1, 2) c
     GROUP BY fetch_date
)
SELECT a.fetch_date,
       count(*) FILTER (WHERE a.is_final) AS calls,
       count(*) FILTER (WHERE a.is_final AND a.outcome = 'ok') AS calls_ok,
       count(*) FILTER (WHERE a.is_final AND a.outcome NOT IN ('ok', 'not_attempted')) AS calls_failed,
       count(*) FILTER (WHERE a.billed) AS billed_calls,
       coalesce(c.codes, '{}'::jsonb) AS codes
  FROM attempts a LEFT JOIN codes c USING (fetch_date)
 GROUP BY a.fetch_date, c.codes
 ORDER BY a.fetch_date
"""


def _unknown(ids: Sequence[str], known: set[str]) -> None:
    unknown = [k for k in ids if k not in known]
    if unknown:
        raise UnknownKol(
            f"KOL {', '.join(unknown)} is not in pgy.tracked_kol: check the id (`pgy-pipeline kols list` shows "
            "the tracked ones) or track it with `pgy-pipeline kols add`"
        )


def load_report_data(
    engine: Engine,
    start: date,
    end: date,
    *,
    oldest_reachable: date,
    kol_ids: Sequence[str] | None = None,
    budget: int | None = None,
) -> ReportData:
    """Everything the report shows about start..end, for the active KOLs (or exactly `kol_ids`)."""
    dates = date_range(start, end)
    window = {"start": start, "end": end}
    with engine.connect() as conn:
        kols = conn.execute(text(_KOLS_SQL), {"only": list(kol_ids) if kol_ids else None}).all()
        if kol_ids:
            _unknown(kol_ids, {k for k, _, _ in kols})
        params: dict[str, Any] = {**window, "kols": [k for k, _, _ in kols]}
        series: dict[tuple[str, str], list[int | None]] = {}
        for kol_id, increase_type, offsets, nums in conn.execute(text(_SERIES_SQL), params):
            values: list[int | None] = [None] * len(dates)
            for i, num in zip(offsets, nums, strict=True):
                values[i] = num
            series[kol_id, increase_type] = values
        not_served: dict[str, dict[date, int]] = defaultdict(dict)
        for kol_id, day, n in conn.execute(text(_NOT_SERVED_SQL), params):
            not_served[kol_id][day] = n
        revisions = [Revision(*row) for row in conn.execute(text(_REVISIONS_SQL), params)]
        health = [HealthDay(*row) for row in conn.execute(text(_HEALTH_SQL), window)]
    chosen = {k for k, _, _ in kols}
    quarantine = quarantined(engine)  # warehouse/health.py: the KOLs in pgy.kol_quarantine now
    empty: list[int | None] = [None] * len(dates)
    rows = []
    for kol_id, label, refused in kols:
        total, new = series.get((kol_id, "total_fans"), empty), series.get((kol_id, "new_fans"), empty)
        stored = {day: (t is not None) + (n is not None) for day, t, n in zip(dates, total, new, strict=True)}
        cells = classify(
            kol_id,
            dates,
            stored=stored,
            not_served=not_served.get(kol_id, {}),
            oldest_reachable=oldest_reachable,
            refused=refused,
            quarantined_since=quarantine[kol_id].since if kol_id in quarantine else None,
        )
        rows.append(KolSeries(kol_id, label, total, new, cells))
    anomalies = [a for a in stored_anomalies(engine, start, end) if a.kol_id in chosen]
    return ReportData(start, end, rows, anomalies, revisions, health, budget)
