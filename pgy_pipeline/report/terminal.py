"""`pgy-pipeline kols show ID`: one KOL at a glance in the terminal, from the same data as the HTML report."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, text

from pgy_pipeline.china_time import CHINA_TZ
from pgy_pipeline.errors import UsageError
from pgy_pipeline.report.coverage import Cell
from pgy_pipeline.report.data import KolSeries, ReportData, load_report_data

BARS = "▁▂▃▄▅▆▇█"
LAST_ANSWERS = 6

_ANSWERS_SQL = """
SELECT fetched_at, increase_type, outcome, api_code, http_status, billed
  FROM pgy.fetch_log
 WHERE kol_id = :kol AND attempt > 0
 ORDER BY fetched_at DESC, id DESC
 LIMIT :n
"""


@dataclass(frozen=True)
class Answer:
    fetched_at: datetime
    increase_type: str
    outcome: str
    api_code: int | None
    http_status: int | None
    billed: bool

    @property
    def code(self) -> str:
        if self.api_code is not None:
            return str(self.api_code)
        return f"http_{self.http_status}" if self.http_status is not None else self.outcome


def sparkline(values: list[int | None]) -> str:
    """One block per value, scaled between the smallest and largest; a space where nothing is stored."""
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    lo, hi = min(known), max(known)
    span = hi - lo or 1
    return "".join(" " if v is None else BARS[(v - lo) * (len(BARS) - 1) // span] for v in values)


def last_answers(engine: Engine, kol_id: str, n: int = LAST_ANSWERS) -> list[Answer]:
    with engine.connect() as conn:
        return [Answer(*row) for row in conn.execute(text(_ANSWERS_SQL), {"kol": kol_id, "n": n})]


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_kol(data: ReportData, answers: list[Answer]) -> str:
    """The text `kols show` prints."""
    (kol,) = data.kols
    lines = [f"KOL {kol.kol_id}" + (f" ({kol.label})" if kol.label else "") + f", {data.start}..{data.end}", ""]
    lines += _curve(kol)
    lines += ["", "date        total_fans  new_fans  coverage"]
    for day, total, new, cell in reversed(list(zip(data.dates, kol.total, kol.new, kol.cells, strict=True))):
        lines.append(f"{day}  {_num(total):>10}  {_num(new):>8}  {Cell(cell).label}")
    lines.append("")
    counts = {c: kol.cells.count(c.value) for c in Cell}
    lines.append("coverage: " + ", ".join(f"{n} {c.label}" for c, n in counts.items() if n))
    lines.append(f"suspected anomalies ({len(data.anomalies)}; suspicions, not proof):")
    lines += [f"  {a.date_key}  {a.rule:15}  {a.summary}" for a in data.anomalies] or ["  none"]
    lines.append(f"revisions ({len(data.revisions)}):")
    lines += [
        f"  {r.date_key}  {r.increase_type:10}  {r.old_num:,} -> {r.new_num:,}  (on {r.changed_at:%Y-%m-%d %H:%M})"
        for r in data.revisions
    ] or ["  none"]
    lines.append("last answers from the API (China time):")
    lines += [
        f"  {a.fetched_at.astimezone(CHINA_TZ):%Y-%m-%d %H:%M}  {a.increase_type:10}  code {a.code:8}  {a.outcome}"
        + ("  billed" if a.billed else "")
        for a in answers
    ] or ["  none recorded"]
    return "\n".join(lines)


def _curve(kol: KolSeries) -> list[str]:
    stored = [v for v in kol.total if v is not None]
    if not stored:
        return ["total fans: nothing stored in this range"]
    change = stored[-1] - stored[0]
    return [
        f"total fans  {sparkline(kol.total)}  {stored[0]:,} -> {stored[-1]:,} ({change:+,})",
        f"new fans    {sparkline(kol.new)}",
    ]


def show_kol(engine: Engine, kol_id: str, *, end: date, days: int, oldest_reachable: date) -> str:
    """The KOL's text; UnknownKol (one sentence) when the warehouse does not track it."""
    if days < 1:
        raise UsageError(f"--days must be at least 1, not {days}")
    start = end - timedelta(days=days - 1)
    data = load_report_data(engine, start, end, oldest_reachable=oldest_reachable, kol_ids=[kol_id])
    return format_kol(data, last_answers(engine, kol_id))
