"""Replaying the parser over the retained raw bodies: a parsing fix reaches the warehouse without re-billing.

Every successful call whose body is still retained is parsed again and loaded like a run's points. Calls are
read newest first and each (KOL, date, series) is taken from the NEWEST body that has it, so a replay never
flips a restated value back and forth; calls whose body has expired are counted, not replayed. Memory: one page
of bodies at a time plus the dates already claimed per series. See docs/warehouse.md (the raw-body archive).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine, text

from pgy_pipeline.api.parse import Malformed, decode_envelope, parse_trend
from pgy_pipeline.china_time import china_today
from pgy_pipeline.model import Series, SeriesKey, TrendPoint
from pgy_pipeline.warehouse.load import LoadCounts, load_points
from pgy_pipeline.warehouse.raw_archive import retained_bodies

_PAGE = 2_000
_LOAD_POINTS = 200_000

_CALLS_SQL = """
SELECT id, kol_id, increase_type, fetched_at FROM pgy.fetch_log
 WHERE is_final AND outcome = 'ok' AND last_date_key IS NOT NULL AND fetched_at >= :since
   AND id < coalesce(CAST(:before AS bigint), 9223372036854775807)
 ORDER BY id DESC
 LIMIT :page
"""


@dataclass
class ReplayReport:
    calls: int = 0  # successful calls in the window
    replayed: int = 0  # whose body was parsed and loaded
    expired: int = 0  # whose body is no longer retained
    rejected: int = 0  # whose body the parser now refuses (listed in `rejected_ids`)
    rejected_ids: list[int] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, counts: LoadCounts) -> None:
        self.inserted += counts.inserted
        self.updated += counts.updated
        self.unchanged += counts.unchanged


def _calls(engine: Engine, since: datetime) -> Iterator[list[tuple[int, str, str, datetime]]]:
    """Successful calls recorded since `since`, newest first, a page at a time."""
    before: int | None = None
    while True:
        with engine.connect() as conn:
            page = [
                (int(i), k, s, t)
                for i, k, s, t in conn.execute(text(_CALLS_SQL), {"since": since, "before": before, "page": _PAGE})
            ]
        if not page:
            return
        yield page
        before = page[-1][0]


def replay(engine: Engine, since: datetime) -> ReplayReport:
    """Parse again every retained body of a successful call recorded since `since` and load its points."""
    report = ReplayReport()
    claimed: dict[SeriesKey, set[date]] = {}
    points: list[TrendPoint] = []
    fetch_ids: dict[SeriesKey, int] = {}

    def flush() -> None:
        if fetch_ids:
            report.add(load_points(engine, points, fetch_ids=fetch_ids))
        points.clear()
        fetch_ids.clear()

    for page in _calls(engine, since):
        bodies = retained_bodies(engine, (call[0] for call in page))
        for fetch_log_id, kol_id, series, fetched_at in page:
            report.calls += 1
            body = bodies.get(fetch_log_id)
            if body is None:
                report.expired += 1
                continue
            try:
                envelope = decode_envelope(body.raw)
                if envelope.code != 0:
                    raise Malformed(f"code {envelope.code}")
                trend = parse_trend(envelope.data, kol_id, Series(series), china_today(fetched_at))
            except Malformed:
                report.rejected += 1
                report.rejected_ids.append(fetch_log_id)
                continue
            key = (kol_id, series)
            if key in fetch_ids:  # one call per series per load (its provenance)
                flush()
            seen = claimed.setdefault(key, set())
            new = [p for p in trend.points if p.date_key not in seen]
            seen.update(p.date_key for p in new)
            points.extend(new)
            fetch_ids[key] = fetch_log_id
            report.replayed += 1
        if len(points) >= _LOAD_POINTS:
            flush()
    flush()
    return report
