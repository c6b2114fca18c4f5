"""A RunReport as Dagster metadata: aggregated counts, a capped table of failures, never one entry per call."""

from __future__ import annotations

from datetime import date

from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from pgy_pipeline.api.concurrency import ConcurrencyLimit
from pgy_pipeline.model import MAX_LISTED
from pgy_pipeline.verdict import FailedCall, RunReport

FAILED_KOLS_SCHEMA = TableSchema(
    columns=[
        TableColumn("kol_id", "string"),
        TableColumn("series", "string"),
        TableColumn("outcome", "string"),
        TableColumn("code", "string"),
        TableColumn("message", "string"),
    ]
)


def _failed_record(f: FailedCall) -> TableRecord:
    code = "" if f.code is None else str(f.code)
    return TableRecord(
        {"kol_id": f.kol_id, "series": f.series, "outcome": f.outcome, "code": code, "message": f.message[:200]}
    )


def _dates_md(per_kol: dict[str, list[date]], what: str) -> str:
    if not per_kol:
        return f"nothing {what}"
    lines = [f"| kol_id | {what} dates |", "|---|---|"]
    for kol_id, days in list(per_kol.items())[:MAX_LISTED]:
        shown = ", ".join(str(d) for d in days[:10]) + (f" (+{len(days) - 10} more)" if len(days) > 10 else "")
        lines.append(f"| {kol_id} | {shown} |")
    if len(per_kol) > MAX_LISTED:
        lines.append(f"| … | {len(per_kol) - MAX_LISTED} more KOL(s) |")
    return "\n".join(lines)


def _quarantine_md(report: RunReport) -> str:
    if not report.quarantined:
        return "no KOL in quarantine"
    lines = ["| kol_id | since | last answer | lost for good |", "|---|---|---|---|"]
    for kol_id, q in list(report.quarantined.items())[:MAX_LISTED]:
        code = "" if q.last_code is None else f"code {q.last_code}: "
        lost = report.lost_in_quarantine.get(kol_id)
        gone = f"{lost[0]}..{lost[1]} (quarantined)" if lost else "nothing yet"
        lines.append(f"| {kol_id} | {q.since} | {q.last_outcome}, {code}{(q.last_message or '')[:120]} | {gone} |")
    if len(report.quarantined) > MAX_LISTED:
        lines.append(f"| … | {len(report.quarantined) - MAX_LISTED} more KOL(s) | | |")
    return "\n".join(lines)


def report_metadata(report: RunReport) -> dict[str, MetadataValue]:
    """The metadata of every materialisation (and of the failure when a run does not complete)."""
    p = report.plan
    return {
        "partition_range": MetadataValue.text(f"{p.start}..{p.end}"),
        "endpoint": MetadataValue.text(p.endpoint.value),
        "window_days": MetadataValue.int(p.window_days),
        "days_wanted": MetadataValue.int(p.days_wanted),
        "api_codes": MetadataValue.json(dict(sorted(report.api_codes.items()))),
        "calls_ok": MetadataValue.int(report.calls_ok),
        "calls_failed": MetadataValue.int(report.calls_failed),
        "calls_not_attempted": MetadataValue.int(report.calls_not_attempted),
        "calls_skipped": MetadataValue.int(p.skipped),
        "billed_calls": MetadataValue.int(report.billed_calls),
        "rows_received": MetadataValue.int(report.rows_received),
        "rows_inserted": MetadataValue.int(report.rows_inserted),
        "rows_updated": MetadataValue.int(report.rows_updated),
        "rows_unchanged": MetadataValue.int(report.rows_unchanged),
        "rows_written": MetadataValue.int(report.rows_written),
        # "Row count" on the asset page: what the partition range holds now, not what this run changed
        # (a rerun that finds everything in hand writes 0 rows; the table still holds them all).
        "dagster/row_count": MetadataValue.int(report.rows_stored),
        "kols_requested": MetadataValue.int(report.kols_requested),
        "kols_complete": MetadataValue.int(report.kols_complete),
        "kols_not_served": MetadataValue.json(dict(list(report.not_served.items())[:MAX_LISTED])),
        "failed_kols": MetadataValue.table(
            records=[_failed_record(f) for f in report.failed_calls], schema=FAILED_KOLS_SCHEMA
        ),
        "missing_dates": MetadataValue.md(_dates_md(report.missing, "missing")),
        "kol_dates_not_served": MetadataValue.int(sum(len(v) for v in report.dates_not_served.values())),
        "dates_not_served": MetadataValue.md(_dates_md(report.dates_not_served, "not served")),
        "dates_unpublished": MetadataValue.json([str(d) for d in report.unpublished]),
        "dates_out_of_reach": MetadataValue.json([str(d) for d in report.out_of_reach_missing]),
        "stop_reason": MetadataValue.text(report.stop.reason if report.stop else ""),
        "systemic_rejection": MetadataValue.text(report.systemic.sentence if report.systemic else ""),
        "kols_failing": MetadataValue.int(len(report.health.failing)),
        "kols_quarantined": MetadataValue.int(len(report.quarantined)),
        "kols_entered_quarantine": MetadataValue.json(report.health.entered[:MAX_LISTED]),
        "kols_left_quarantine": MetadataValue.json(report.health.left[:MAX_LISTED]),
        "kols_resting": MetadataValue.int(len(report.resting)),
        "quarantine": MetadataValue.md(_quarantine_md(report)),
        "lag_probe": MetadataValue.text(report.lag_probe or "not needed"),
        "billed_today": MetadataValue.int(report.billed_today)
        if report.billed_today is not None
        else MetadataValue.text("not counted (no daily budget)"),
        "daily_call_budget": MetadataValue.int(report.budget.limit) if report.budget else MetadataValue.text("none"),
        "load_seconds": MetadataValue.float(round(report.load_s, 3)),
    }


def concurrency_metadata(flow: ConcurrencyLimit) -> dict[str, MetadataValue]:
    """The calls-in-flight level the client found (highest, final, cuts) and how long calls were on the wire."""
    return {
        "concurrency_reached": MetadataValue.int(flow.peak),
        "concurrency_final": MetadataValue.int(flow.limit),
        "concurrency_cuts": MetadataValue.int(flow.cuts),
        "fetch_seconds": MetadataValue.float(round(flow.busy_s, 3)),  # time with calls on the wire
    }
