"""A partition's report in a few lines of markdown: the day's top gainers and its new suspicions.

What the Dagster UI shows on the `kol_fans_report` materialisation, next to the file's path and URL.
"""

from __future__ import annotations

from pgy_pipeline.report.data import ReportData
from pgy_pipeline.report.rankings import movers, top
from pgy_pipeline.warehouse.anomaly import Anomaly

TOP_GAINERS = 10


def new_suspicions(data: ReportData) -> list[Anomaly]:
    """The suspicions dated on the report's last date."""
    return [a for a in data.anomalies if a.date_key == data.end]


def summary_markdown(data: ReportData, url: str | None = None) -> str:
    """The top gainers of the last date (against the day before) and the suspicions dated on it."""
    link = f"[{data.end}]({url})" if url else str(data.end)
    gainers = top(movers(data.kols, 1), TOP_GAINERS, relative=False, losers=False)
    lines = [f"**Top {TOP_GAINERS} gainers on {link}**", "", "| # | kol_id | total fans | gain | rate |"]
    lines.append("|---|---|---|---|---|")
    lines += [f"| {i} | {m.kol_id} | {m.after:,} | {m.gain:+,} | {m.rate:+.2%} |" for i, m in enumerate(gainers, 1)]
    if not gainers:
        lines.append("| - | no KOL has totals for both this day and the day before | | | |")
    new = new_suspicions(data)
    lines += ["", f"**New suspicions on {data.end}** ({len(new)}; suspicions, not proof)", ""]
    if new:
        lines += ["| kol_id | rule | summary |", "|---|---|---|"]
        lines += [f"| {a.kol_id} | {a.rule} | {a.summary} |" for a in new]
    else:
        lines.append("none")
    return "\n".join(lines)
