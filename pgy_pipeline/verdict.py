"""The run's report and its verdict: what a run did, and one sentence per reason it must not count as done.

`run_range` fills a `RunReport`; the Dagster asset turns it into metadata, a retry, partitions marked
materialised and, when `problems` is not empty, a failed run. Completeness is judged by the warehouse
(warehouse/completeness.py) over every expected KOL, not only the run's. See docs/completeness.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from pgy_pipeline.budget import CallBudget
from pgy_pipeline.model import StopRun
from pgy_pipeline.plan import Plan
from pgy_pipeline.tally import Systemic
from pgy_pipeline.warehouse.health import HealthChange, Quarantined


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
    quarantine_after_days: int  # the threshold the run applied (PGY_QUARANTINE_AFTER_DAYS)
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
    not_served: dict[str, str] = field(default_factory=dict)  # KOLs the API flags (201/400) → message
    missing: dict[str, list[date]] = field(default_factory=dict)  # expected KOL of the run → dates not settled
    dates_not_served: dict[str, list[date]] = field(default_factory=dict)  # KOL → dates a window covered, unserved
    complete_dates: list[date] = field(default_factory=list)  # dates of the range every expected KOL has (all KOLs)
    rows_stored: int = 0  # rows in the warehouse for the partition range after the run (all KOLs)
    stop: StopRun | None = None
    systemic: Systemic | None = None
    failing: set[str] = field(default_factory=set)  # KOLs of this run whose calls failed (retries, malformed, empty)
    health: HealthChange = field(default_factory=HealthChange)
    quarantined: dict[str, Quarantined] = field(default_factory=dict)  # in the run's scope, after the run
    lost_in_quarantine: dict[str, tuple[date, date]] = field(default_factory=dict)  # KOL → dates lost for good
    resting: list[str] = field(default_factory=list)  # quarantined, already tried for this partition date
    lag_probe: str = ""  # "", "published", "not published", "inconclusive"
    breaker: bool = False  # the run stopped itself because most KOLs got the same rejection
    budget: CallBudget | None = None
    load_s: float = 0.0  # seconds spent recording calls and loading rows (the rest of a run is mostly waiting)

    @property
    def kols_requested(self) -> int:
        return len(self.plan.kol_ids)

    @property
    def kols_complete(self) -> int:
        """KOLs of this run that are expected and have every date of the range."""
        out = {*self.not_served, *self.missing, *self.quarantined}
        return sum(1 for k in self.plan.kol_ids if k not in out)

    @property
    def rows_written(self) -> int:
        return self.rows_inserted + self.rows_updated

    @property
    def budget_spent(self) -> bool:
        return self.budget is not None and self.budget.refused > 0

    @property
    def billed_today(self) -> int | None:
        """Billed calls this China day across all runs, when a budget is kept."""
        return None if self.budget is None else self.budget.spent_before + self.budget.taken

    @property
    def out_of_reach_missing(self) -> list[date]:
        """Dates too old for any window that some expected KOL still lacks (already-stored ones are fine)."""
        old = set(self.plan.out_of_reach)
        return sorted({d for days in self.missing.values() for d in days if d in old})

    @property
    def unpublished(self) -> list[date]:
        """Reachable dates that KOLs whose calls all succeeded still lack: not published by the API yet.

        Every successful window settles the dates it covers (stored or not served), so what such a KOL
        still lacks lies after the newest date the API served: publish lag. Empty when the run was stopped,
        rejected as a whole or ran out of budget, since those explain the gaps instead.
        """
        if self.stop is not None or self.systemic is not None or self.budget_spent:
            return []
        old = set(self.plan.out_of_reach)
        days = {d for k, ds in self.missing.items() if k not in self.failing for d in ds if d not in old}
        return sorted(days)

    @property
    def retry_for_lag(self) -> bool:
        """Whether waiting for the API to publish could complete the run (nothing else stands in the way)."""
        return bool(self.unpublished)

    @property
    def problems(self) -> list[str]:
        """One sentence per reason this run must not count as done; empty when the range is complete."""
        out: list[str] = []
        p = self.plan
        if self.stop is not None and not self.breaker:
            out.append(
                f"The API stopped the run: {self.stop.reason} ({self.calls_not_attempted} call(s) not attempted; "
                f"the {self.calls_ok} successful call(s) were loaded and will not be billed again on rerun)."
            )
        if self.systemic is not None:
            stopped = (
                f" The run stopped calling after {self.calls_ok + self.calls_failed} call(s) to bill no more; "
                f"{self.calls_not_attempted} were not attempted."
                if self.breaker
                else ""
            )
            out.append(self.systemic.sentence + stopped)
        if self.budget_spent and self.budget is not None:
            out.append(
                f"The daily call budget of {self.budget.limit} billed call(s) is spent: {self.billed_today} billed "
                f"today (China time), {self.billed_calls} by this run; {self.calls_not_attempted} call(s) still "
                "needed were not made. Raise PGY_DAILY_CALL_BUDGET (or the run's daily_call_budget) or run again "
                "after midnight China time; what was fetched is loaded."
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
        failing = self.health.failing
        if failing and self.stop is None and self.systemic is None:
            worst = max(failing.values())
            out.append(
                f"{len(failing)} KOL(s) failed after retries (see failed_kols), up to {worst} partition date(s) "
                f"behind; a KOL is quarantined (and no longer holds the run back) at "
                f"{self.quarantine_after_days}. Rerun the partition to retry only those; successful calls are not "
                "billed again."
            )
        lagging = self.unpublished
        if lagging:
            kols = sum(1 for k, days in self.missing.items() if k not in self.failing and set(days) & set(lagging))
            out.append(
                f"{len(lagging)} date(s) {_span(lagging)} not published by the API yet for {kols} KOL(s) "
                "(see missing_dates); a later run fetches them, billing only the KOLs that lack them."
            )
        return out


def _span(days: Sequence[date]) -> str:
    return f"{days[0]}" if len(days) == 1 else f"{days[0]}..{days[-1]}"
