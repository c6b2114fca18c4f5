"""The report as one self-contained HTML file: tables written here, curves drawn by the page with uPlot.

Everything the page needs is inside it: uPlot's script and style (vendored, pinned), the page's own
script and style, and the data as JSON. Nothing is fetched, so it opens offline and from a mail attachment.
The sections that a reader scans (suspicions, rankings, per-date coverage, fetch health) are plain HTML;
the curves and the coverage grid are drawn by the script only when they scroll into view or are opened,
which keeps opening the page fast at 10,000 KOLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from importlib.resources import files

from pgy_pipeline.report.coverage import Cell, counts_per_date
from pgy_pipeline.report.data import HealthDay, ReportData
from pgy_pipeline.report.payload import COLOURS, payload, script_json
from pgy_pipeline.report.rankings import Mover, Ranking, movers, rankings, top
from pgy_pipeline.warehouse.anomaly import Anomaly

UPLOT_VERSION = "1.6.32"
TOP_MOVERS = 5  # full curves for this many 7-day gainers and as many losers


def asset_text(name: str) -> str:
    """A file shipped with this package (vendor/ or static/)."""
    return files("pgy_pipeline.report").joinpath(name).read_text(encoding="utf-8")


def _inline_script(source: str) -> str:
    if "</script" in source.lower():
        raise ValueError("an inlined script contains '</script' and would end its element early")
    return f"<script>{source}</script>"


def _kol_link(kol_id: str) -> str:
    return f'<a href="#kol-{escape(kol_id)}">{escape(kol_id)}</a>'


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table whose cells are already HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _legend() -> str:
    items = "".join(f'<span><i style="background:{COLOURS[c]}"></i>{c.label}</span>' for c in Cell)
    return f'<div class="legend">{items}</div>'


def _anomaly_section(data: ReportData, index: dict[str, int]) -> str:
    by_kol: dict[str, list[Anomaly]] = {}
    for a in data.anomalies:
        by_kol.setdefault(a.kol_id, []).append(a)
    revised: dict[str, set[str]] = {}
    for r in data.revisions:
        revised.setdefault(r.kol_id, set()).add(r.date_key.isoformat())
    cards = []
    newest_first = sorted(by_kol.items(), key=lambda kv: (-max(a.date_key for a in kv[1]).toordinal(), kv[0]))
    for kol_id, found in newest_first:
        items = "".join(
            f'<li><time class="mark {escape(a.rule)}" datetime="{a.date_key}">{a.date_key}</time> '
            f"<b>{escape(a.rule)}</b>: {escape(a.summary)}</li>"
            for a in sorted(found, key=lambda a: a.date_key)
        )
        restated = "".join(
            f'<time class="mark revised" datetime="{d}">{d}</time> ' for d in sorted(revised.get(kol_id, ()))
        )
        if restated:
            items += f"<li>restated dates: {restated}</li>"
        cards.append(
            f'<article class="kol-card" id="anomaly-{escape(kol_id)}" data-kol="{escape(kol_id)}">'
            f"<h3>{_kol_link(kol_id)}</h3><ul>{items}</ul>"
            f'<div class="chart" data-kol="{index[kol_id]}"></div></article>'
        )
    if not cards:
        return "<p>No suspected anomalies in this range.</p>"
    return f"<p>{len(cards)} KOL(s), newest suspicion first. Suspicions, never proof.</p>" + "".join(cards)


def _movers_section(data: ReportData, index: dict[str, int]) -> str:
    found = movers(data.kols, 7)
    chosen = top(found, TOP_MOVERS, relative=False, losers=False) + top(found, TOP_MOVERS, relative=False, losers=True)
    if not chosen:
        return "<p>No KOL has totals 7 days apart in this range.</p>"
    return "".join(
        f'<article class="kol-card"><h3>{_kol_link(m.kol_id)} <span class="gain">{m.gain:+,} in 7 days</span></h3>'
        f'<div class="chart" data-kol="{index[m.kol_id]}"></div></article>'
        for m in chosen
    )


def _ranking_table(ranking: Ranking, index: dict[str, int]) -> str:
    def row(m: Mover) -> list[str]:
        spark = f'<div class="spark" data-kol="{index[m.kol_id]}"></div>'
        return [_kol_link(m.kol_id), f"{m.after:,}", f"{m.gain:+,}", f"{m.rate:+.2%}", spark]

    table = _table(["KOL", "total", f"{ranking.days}-day change", "rate", "curve"], map(row, ranking.movers), "rank")
    return f'<div class="ranking"><h3>{escape(ranking.title)}</h3>{table if ranking.movers else "<p>none</p>"}</div>'


def _coverage_table(data: ReportData) -> str:
    counts = counts_per_date([k.cells for k in data.kols], len(data.dates))
    cells = list(Cell)
    rows = (
        [f"{day}", *(f'<span class="n-{c.value}">{n[c]}</span>' for c in cells)]
        for day, n in reversed(list(zip(data.dates, counts, strict=True)))
    )
    return _table(["date", *(c.label for c in cells)], rows, "coverage")


def _health_table(health: Sequence[HealthDay], budget: int | None) -> str:
    if not health:
        return "<p>No API calls recorded for these dates.</p>"

    def row(h: HealthDay) -> list[str]:
        codes = " ".join(f"{escape(code)}:{n}" for code, n in sorted(h.codes.items()))
        spend = "" if budget is None else f"{h.billed_calls / budget:.0%} of {budget:,}"
        over = ' class="over"' if budget is not None and h.billed_calls > budget else ""
        billed = f"<span{over}>{h.billed_calls:,}</span>"
        return [str(h.fetch_date), f"{h.calls:,}", f"{h.calls_ok:,}", f"{h.calls_failed:,}", billed, spend, codes]

    head = ["day of the calls (China)", "calls", "ok", "failed", "billed", "budget", "answer codes"]
    note = "" if budget is not None else "<p>No daily call budget is set (PGY_DAILY_CALL_BUDGET).</p>"
    return note + _table(head, map(row, reversed(health)), "health")


def build_html(data: ReportData, *, title: str = "Follower report") -> str:
    """The whole page."""
    index = {k.kol_id: i for i, k in enumerate(data.kols)}
    last = Cell.STORED, Cell.NOT_SERVED
    settled = sum(1 for k in data.kols if k.cells and k.cells[-1] in last)
    sections = [
        ("anomalies", "Suspected anomalies", _anomaly_section(data, index)),
        ("movers", "Top movers, 7 days", _movers_section(data, index)),
        ("rankings", "Rankings", "".join(_ranking_table(r, index) for r in rankings(data.kols))),
        (
            "coverage",
            "Coverage",
            _legend()
            + '<div id="grid-controls"></div><canvas id="grid"></canvas>'
            + "<h3>KOLs per state and date</h3>"
            + _coverage_table(data),
        ),
        ("health", "Fetch health", '<div id="health-chart"></div>' + _health_table(data.health, data.budget)),
    ]
    nav = " · ".join(f'<a href="#{key}">{name}</a>' for key, name, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{name}</h2>{html}</section>' for key, name, html in sections)
    health = [[h.fetch_date.isoformat(), h.billed_calls] for h in data.health]
    page = {**payload(data), "health": health, "budget": data.budget}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} {data.start}..{data.end}</title>
<style>{asset_text("vendor/uPlot.min.css")}</style>
<style>{asset_text("static/report.css")}</style>
</head><body>
<header><h1>{escape(title)}</h1>
<p>China dates {data.start} .. {data.end} · {len(data.kols):,} KOLs · {len(data.anomalies)} suspicion(s) ·
{settled:,} KOLs settled on {data.end} · generated {data.generated_at:%Y-%m-%d %H:%M %Z} by pgy-pipeline</p>
<nav>{nav} · <label>KOL id <input id="filter" placeholder="filter by id" autocomplete="off"></label>
<span id="matches"></span></nav></header>
<section id="kol" hidden></section>
{body}
<footer>Curves drawn with uPlot {UPLOT_VERSION} (MIT licence, embedded). Totals as a line, new fans as bars;
red marks: suspected anomalies, orange marks: restated (revised) dates.</footer>
<script type="application/json" id="pgy-data">{script_json(page)}</script>
{_inline_script(asset_text("vendor/uPlot.iife.min.js"))}
{_inline_script(asset_text("static/report.js"))}
</body></html>
"""
