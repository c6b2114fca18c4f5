"""The tracked KOL set (`pgy.tracked_kol`): the single source of truth for whom the pipeline fetches.

Removing a KOL only deactivates it, so its history, error flags and fetch log stay joinable; adding it
again reactivates it. Every id is validated before anything is written, so a file with one bad line
changes nothing and the error names the line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from pgy_pipeline.model import InvalidKolId, check_kol_id


@dataclass(frozen=True)
class TrackedKol:
    """One row of `pgy.tracked_kol`, as `pgy-pipeline kols list` shows it."""

    kol_id: str
    active: bool
    label: str | None
    added_at: datetime
    deactivated_at: datetime | None
    last_error_code: int | None
    last_error_message: str | None


@dataclass(frozen=True)
class AddCounts:
    """What `add_kols` did: new ids, ids that were inactive and are tracked again, ids already active."""

    added: int
    reactivated: int
    already_active: int


@dataclass(frozen=True)
class RemoveCounts:
    """What `remove_kols` did; `unknown` are ids that were never tracked (nothing to do for them)."""

    deactivated: int
    already_inactive: int
    unknown: tuple[str, ...]


def validate_ids(ids: Iterable[str]) -> list[str]:
    """All ids checked (InvalidKolId on the first bad one), de-duplicated, in first-seen order."""
    seen: dict[str, None] = {}
    for raw in ids:
        seen.setdefault(check_kol_id(raw.strip() if isinstance(raw, str) else raw), None)
    return list(seen)


def _states(conn: Connection, kol_ids: list[str]) -> dict[str, bool]:
    rows = conn.execute(text("select kol_id, active from pgy.tracked_kol where kol_id = any(:ids)"), {"ids": kol_ids})
    return {kol_id: bool(active) for kol_id, active in rows}


def add_kols(engine: Engine, ids: Iterable[str], *, label: str | None = None) -> AddCounts:
    """Track `ids` (validated first); re-adding an active KOL changes nothing, an inactive one is reactivated.

    Reactivation moves `added_at` to now: the sensor watches `added_at` to backfill newly tracked KOLs,
    and a KOL that was away for a while needs that backfill as much as a new one.
    """
    kol_ids = validate_ids(ids)
    if not kol_ids:
        return AddCounts(0, 0, 0)
    with engine.begin() as conn:
        before = _states(conn, kol_ids)
        conn.execute(
            text(
                """
                insert into pgy.tracked_kol (kol_id, active, label, added_at)
                select id, true, :label, clock_timestamp() from unnest(cast(:ids as text[])) as id
                on conflict (kol_id) do update
                   set active = true,
                       deactivated_at = null,
                       added_at = case when pgy.tracked_kol.active then pgy.tracked_kol.added_at
                                       else clock_timestamp() end,
                       label = coalesce(excluded.label, pgy.tracked_kol.label)
                 where not pgy.tracked_kol.active
                    or (excluded.label is not null and excluded.label is distinct from pgy.tracked_kol.label)
                """
            ),
            {"ids": kol_ids, "label": label},
        )
    added = sum(1 for k in kol_ids if k not in before)
    reactivated = sum(1 for k in kol_ids if before.get(k) is False)
    return AddCounts(added=added, reactivated=reactivated, already_active=len(kol_ids) - added - reactivated)


def remove_kols(engine: Engine, ids: Iterable[str]) -> RemoveCounts:
    """Stop fetching `ids` (deactivate; history stays). Unknown ids are reported, not an error."""
    kol_ids = validate_ids(ids)
    with engine.begin() as conn:
        before = _states(conn, kol_ids)
        conn.execute(
            text(
                "update pgy.tracked_kol set active = false, deactivated_at = clock_timestamp() "
                "where kol_id = any(:ids) and active"
            ),
            {"ids": kol_ids},
        )
    return RemoveCounts(
        deactivated=sum(1 for v in before.values() if v),
        already_inactive=sum(1 for v in before.values() if not v),
        unknown=tuple(k for k in kol_ids if k not in before),
    )


def list_kols(engine: Engine, *, include_inactive: bool = False) -> list[TrackedKol]:
    """Tracked KOLs ordered by id (active only unless asked)."""
    sql = (
        "select kol_id, active, label, added_at, deactivated_at, last_error_code, last_error_message "
        "from pgy.tracked_kol" + ("" if include_inactive else " where active") + " order by kol_id"
    )
    with engine.connect() as conn:
        return [TrackedKol(*row) for row in conn.execute(text(sql)).all()]


def read_kol_file(path: Path) -> list[str]:
    """Ids from a CSV with a `kol_id` column, or from a plain file with one id a line (blank lines and
    `#` comments skipped). Every id is validated; the error names the file and line of the first bad one.
    """
    try:
        content = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidKolId(f"cannot read KOL file {path}: {exc.strerror or exc}") from None
    lines = content.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    header = [h.strip().lower() for h in next(csv.reader([first]))] if first else []
    if "kol_id" in header:
        column = header.index("kol_id")
        numbered = [
            (n, row[column] if column < len(row) else "")
            for n, row in enumerate(csv.reader(io.StringIO(content)), start=1)
            if row and any(c.strip() for c in row)
        ][1:]
    else:
        numbered = [(n, ln) for n, ln in enumerate(lines, start=1) if ln.strip() and not ln.lstrip().startswith("#")]
    ids: list[str] = []
    for line_no, raw in numbered:
        try:
            ids.append(check_kol_id(raw.strip()))
        except InvalidKolId as exc:
            raise InvalidKolId(f"{path}:{line_no}: {exc}") from None
    return ids


def import_kols(engine: Engine, path: Path, *, label: str | None = None) -> AddCounts:
    """`read_kol_file` then `add_kols`: all or nothing."""
    return add_kols(engine, read_kol_file(path), label=label)


def flag_kols(engine: Engine, ok: Collection[str], flagged: Mapping[str, tuple[int, str]]) -> None:
    """Keep `tracked_kol.last_error_*` current after a run: set for the KOLs the API said do not exist (201)
    or have an invalid id (400), cleared for those a call succeeded for (and not flagged by another).

    Transient failures (retries exhausted, malformed bodies, stopped runs) say nothing about the KOL
    itself, so they do not flag it; repeated ones lead to quarantine (`warehouse/health.py`).
    """
    clear = sorted(set(ok) - flagged.keys())
    with engine.begin() as conn:
        if clear:
            conn.execute(
                text(
                    "update pgy.tracked_kol set last_error_code = null, last_error_message = null, "
                    "last_error_at = null where kol_id = any(:ids) and last_error_at is not null"
                ),
                {"ids": clear},
            )
        if flagged:
            conn.execute(
                text(
                    "update pgy.tracked_kol set last_error_code = :code, last_error_message = :message, "
                    "last_error_at = clock_timestamp() where kol_id = :kol_id"
                ),
                [{"kol_id": k, "code": c, "message": m[:500]} for k, (c, m) in sorted(flagged.items())],
            )


def active_kol_ids(engine: Engine, only: Sequence[str] | None = None) -> list[str]:
    """Active tracked KOLs in id order; restricted to `only` when given (inactive/unknown names drop out)."""
    sql = "select kol_id from pgy.tracked_kol where active"
    params: dict[str, object] = {}
    if only is not None:
        sql += " and kol_id = any(:ids)"
        params["ids"] = list(only)
    with engine.connect() as conn:
        return list(conn.scalars(text(sql + " order by kol_id"), params))


def flagged_kols(engine: Engine, kol_ids: Sequence[str]) -> dict[str, tuple[int | None, str | None]]:
    """KOLs the API does not serve (flagged 201 no content / 400 invalid id) → (code, message)."""
    if not kol_ids:
        return {}
    sql = (
        "select kol_id, last_error_code, last_error_message from pgy.tracked_kol "
        "where kol_id = any(:ids) and last_error_at is not null"
    )
    with engine.connect() as conn:
        return {k: (c, m) for k, c, m in conn.execute(text(sql), {"ids": list(kol_ids)})}


def kols_added_since(engine: Engine, since: str | None) -> tuple[list[str], str | None]:
    """Active KOLs whose `added_at` is after the ISO timestamp `since` (all when None), and the new cursor.

    The cursor is the newest `added_at` seen, as ISO text, so a sensor can resume where it left off.
    """
    sql = "select kol_id, added_at from pgy.tracked_kol where active"
    params: dict[str, object] = {}
    if since is not None:
        sql += " and added_at > cast(:since as timestamptz)"
        params["since"] = since
    with engine.connect() as conn:
        rows = conn.execute(text(sql + " order by added_at, kol_id"), params).all()
    return [k for k, _ in rows], (rows[-1][1].isoformat() if rows else since)
