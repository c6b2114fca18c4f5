"""KOL health: failing streaks counted in partition dates, quarantine, and the way back.

A KOL that keeps failing falls behind, counted in partition dates, never the wall clock; at
PGY_QUARANTINE_AFTER_DAYS it is quarantined: no longer expected (warehouse/completeness.py), tried once per
partition date with the largest window, and released by its first answer with data. Every entry and exit is
appended to `pgy.kol_quarantine_event` for the chat alert. See docs/completeness.md (partial failure).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, text

from pgy_pipeline.tally import KolFailure
from pgy_pipeline.warehouse.completeness import newest_settled


@dataclass(frozen=True)
class Quarantined:
    """A quarantined KOL as `status`, the run's metadata and the report show it."""

    kol_id: str
    since: date  # partition date at which it was quarantined
    quarantined_at: datetime
    last_outcome: str
    last_code: int | None
    last_message: str | None
    last_tried_on: date | None


def lost_for_good(
    engine: Engine, quarantine: Mapping[str, Quarantined], oldest_reachable: date
) -> dict[str, tuple[date, date]]:
    """Per quarantined KOL, the dates it lacks since its newest settled date that are now older than any
    window reaches (first, last): lost for good because the KOL was quarantined. KOLs losing none are left out."""
    newest = newest_settled(engine, sorted(quarantine))
    out: dict[str, tuple[date, date]] = {}
    for kol_id, q in quarantine.items():
        first = newest[kol_id] + timedelta(days=1) if kol_id in newest else q.since
        if first < oldest_reachable:
            out[kol_id] = (first, oldest_reachable - timedelta(days=1))
    return out


@dataclass
class HealthChange:
    """What one run changed: KOLs now failing (days behind), entering and leaving quarantine."""

    failing: dict[str, int] = field(default_factory=dict)  # not quarantined, failing: days behind
    entered: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def quarantined(engine: Engine, kol_ids: Sequence[str] | None = None) -> dict[str, Quarantined]:
    """Active quarantined KOLs (all, or those of `kol_ids`), by id."""
    sql = (
        "SELECT kol_id, since, quarantined_at, last_outcome, last_code, last_message, last_tried_on "
        "FROM pgy.kol_quarantine WHERE CAST(:ids AS text[]) IS NULL OR kol_id = ANY(CAST(:ids AS text[])) "
        "ORDER BY kol_id"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"ids": None if kol_ids is None else list(kol_ids)})
        return {row[0]: Quarantined(*row) for row in rows}


def failing_kols(engine: Engine) -> set[str]:
    """KOLs whose calls failed since their last success (quarantined or not)."""
    with engine.connect() as conn:
        return set(conn.scalars(text("SELECT kol_id FROM pgy.kol_health")))


def resting(quarantine: Mapping[str, Quarantined], on: date) -> set[str]:
    """Quarantined KOLs already tried for partition date `on` (or a later one): not tried again for it."""
    return {k for k, q in quarantine.items() if q.last_tried_on is not None and q.last_tried_on >= on}


def apply_run(
    engine: Engine,
    *,
    on: date,
    run_id: str,
    healthy: Collection[str],
    failing: Mapping[str, KolFailure],
    tried_in_quarantine: Collection[str],
    after_days: int,
) -> HealthChange:
    """Record one (non-systemic) run at partition date `on`: streaks, quarantine entries and exits."""
    change = HealthChange()
    behind_from = newest_settled(engine, sorted(failing))
    with engine.begin() as conn:
        # The table holds only KOLs failing now (a few): read it whole rather than send every healthy id.
        rows = conn.execute(text("SELECT kol_id, quarantined_since IS NOT NULL FROM pgy.kol_health")).all()
        recorded = {k for k, _ in rows}
        recovered = sorted(k for k, was_quarantined in rows if was_quarantined and k in healthy)
        if recovered:
            conn.execute(
                text(
                    "INSERT INTO pgy.kol_quarantine_event (kol_id, event, on_date, run_id) "
                    "SELECT id, 'left', :on, :run FROM unnest(CAST(:ids AS text[])) id"
                ),
                {"ids": recovered, "on": on, "run": run_id},
            )
            change.left = recovered
        back = sorted(recorded.intersection(healthy))
        if back:
            conn.execute(text("DELETE FROM pgy.kol_health WHERE kol_id = ANY(:ids)"), {"ids": back})
        for kol_id, why in sorted(failing.items()):
            row = conn.execute(
                text(
                    """
                    INSERT INTO pgy.kol_health AS h (kol_id, failing_since, last_failed_on, failing_days, last_outcome,
                                                     last_code, last_message, last_run_id)
                    VALUES (:kol, :on, :on, 1, :outcome, :code, :message, :run)
                    ON CONFLICT (kol_id) DO UPDATE SET
                        failing_since = least(h.failing_since, excluded.failing_since),
                        last_failed_on = greatest(h.last_failed_on, excluded.last_failed_on),
                        last_outcome = excluded.last_outcome, last_code = excluded.last_code,
                        last_message = excluded.last_message, last_run_id = excluded.last_run_id,
                        updated_at = now()
                    RETURNING failing_since, quarantined_since
                    """
                ),
                {"kol": kol_id, "on": on, "outcome": why.outcome, "code": why.code, "message": why.message,
                 "run": run_id},
            ).one()  # fmt: skip
            failing_since, already = row
            newest = behind_from.get(kol_id)
            # Behind by the longer of its failing streak and the distance to its newest settled date: a replayed
            # week counts its days one by one, a backfill ending far past the KOL's data counts them all at once.
            days = max((on - failing_since).days + 1, (on - newest).days if newest is not None else 0)
            enters = already is None and days >= after_days
            conn.execute(
                text(
                    "UPDATE pgy.kol_health SET failing_days = :days, "
                    "quarantined_since = CASE WHEN :enters THEN CAST(:on AS date) ELSE quarantined_since END, "
                    "quarantined_at = CASE WHEN :enters THEN now() ELSE quarantined_at END, "
                    "last_tried_on = CASE WHEN :enters THEN CAST(:on AS date) ELSE last_tried_on END "
                    "WHERE kol_id = :kol"
                ),
                {"days": days, "enters": enters, "on": on, "kol": kol_id},
            )
            if enters:
                conn.execute(
                    text(
                        "INSERT INTO pgy.kol_quarantine_event (kol_id, event, on_date, code, message, run_id) "
                        "VALUES (:kol, 'entered', :on, :code, :message, :run)"
                    ),
                    {"kol": kol_id, "on": on, "code": why.code, "message": why.message, "run": run_id},
                )
                change.entered.append(kol_id)
            elif already is None:
                change.failing[kol_id] = days
        tried = sorted(k for k in tried_in_quarantine if k not in healthy)
        if tried:
            conn.execute(
                text(
                    "UPDATE pgy.kol_health SET last_tried_on = greatest(last_tried_on, CAST(:on AS date)) "
                    "WHERE kol_id = ANY(:ids) AND quarantined_since IS NOT NULL"
                ),
                {"ids": tried, "on": on},
            )
    return change


@dataclass(frozen=True)
class QuarantineEvent:
    """One row of `pgy.kol_quarantine_event`."""

    id: int
    kol_id: str
    event: str
    on_date: date
    at: datetime
    code: int | None
    message: str | None


def newest_event_id(engine: Engine) -> int:
    """The id of the newest quarantine event (0 when none): where a new alert cursor starts."""
    with engine.connect() as conn:
        return int(conn.scalar(text("SELECT coalesce(max(id), 0) FROM pgy.kol_quarantine_event")) or 0)


def events_after(engine: Engine, last_id: int, limit: int = 500) -> list[QuarantineEvent]:
    """Quarantine events with an id above `last_id`, oldest first (the alert sensor's cursor)."""
    sql = (
        "SELECT id, kol_id, event, on_date, at, code, message FROM pgy.kol_quarantine_event "
        "WHERE id > :last ORDER BY id LIMIT :limit"
    )
    with engine.connect() as conn:
        return [QuarantineEvent(*row) for row in conn.execute(text(sql), {"last": last_id, "limit": limit})]
