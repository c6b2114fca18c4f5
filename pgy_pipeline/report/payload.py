"""The report's per-KOL data as compact JSON: the page's script decodes it and draws curves on demand.

Sizes matter at 10,000 KOLs x 60 days (1.2 million numbers). New fans are stored as they are (small
numbers); a total is stored as its difference from the previous stored total plus that day's new fans, which
is 0 on nearly every day (the API's totals and new fans agree), so a total costs two characters instead of
eight. A KOL with nothing stored has empty lists; its coverage row is a string of one letter per date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pgy_pipeline.report.coverage import Cell
from pgy_pipeline.report.data import ReportData

# One colour per coverage state, used by the grid, its legend and the per-date table.
COLOURS = {
    Cell.STORED: "#3a9d5d",
    Cell.NOT_SERVED: "#b8b8b8",
    Cell.MISSING: "#f0a030",
    Cell.LOST: "#d04040",
    Cell.QUARANTINED: "#8e5bd0",
}


def encode_totals(total: Sequence[int | None], new: Sequence[int | None]) -> list[int | None]:
    """Each stored total minus (the previous stored total + the day's new fans); the first stored one as is."""
    out: list[int | None] = []
    previous: int | None = None
    for t, n in zip(total, new, strict=True):
        if t is None:
            out.append(None)
            continue
        out.append(t if previous is None else t - previous - (n or 0))
        previous = t
    return out


def decode_totals(encoded: Sequence[int | None], new: Sequence[int | None]) -> list[int | None]:
    """The inverse of encode_totals (the page's script does the same)."""
    out: list[int | None] = []
    previous: int | None = None
    for e, n in zip(encoded, new, strict=True):
        if e is None:
            out.append(None)
            continue
        previous = e if previous is None else previous + (n or 0) + e
        out.append(previous)
    return out


def _compact(values: list[int | None]) -> list[int | None]:
    return values if any(v is not None for v in values) else []


def payload(data: ReportData) -> dict[str, Any]:
    """The JSON object embedded in the page."""
    index = {k.kol_id: i for i, k in enumerate(data.kols)}
    anomalies: dict[int, list[list[Any]]] = {}
    for a in data.anomalies:
        anomalies.setdefault(index[a.kol_id], []).append([(a.date_key - data.start).days, a.rule, a.summary])
    revisions: dict[int, list[list[Any]]] = {}
    for r in data.revisions:
        if r.kol_id in index:
            revisions.setdefault(index[r.kol_id], []).append(
                [(r.date_key - data.start).days, r.increase_type, r.old_num, r.new_num]
            )
    return {
        "start": data.start.isoformat(),
        "days": len(data.dates),
        "ids": [k.kol_id for k in data.kols],
        "labels": {i: k.label for i, k in enumerate(data.kols) if k.label},
        "new": [_compact(k.new) for k in data.kols],
        "tot": [_compact(encode_totals(k.total, k.new)) for k in data.kols],
        "cov": [k.cells for k in data.kols],
        "anom": anomalies,
        "rev": revisions,
        "states": {cell.value: [cell.label, COLOURS[cell]] for cell in Cell},
    }


def script_json(value: Any) -> str:
    """JSON safe inside a <script> element: no '<' can close it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
