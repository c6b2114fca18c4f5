"""The state of one KOL on one date, as the report's coverage grid and `kols show` draw it.

The same rules as `pgy-pipeline status`: a date is settled for a KOL when each of its two series is either
stored or covered-but-not-served by the API. What is not settled is quarantined (the KOL is set aside since
that date), lost (older than the API's largest window reaches: no call can fetch it any more) or missing
(still fetchable). A KOL the API refuses altogether (its last answer was 201 no-content or 400) counts as
not served on every unsettled date, as `status` leaves it out of the expected set.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import date
from enum import StrEnum


class Cell(StrEnum):
    """One letter per state: a KOL's row of the grid is a string with one letter per date."""

    STORED = "s"
    NOT_SERVED = "n"
    MISSING = "m"
    LOST = "l"
    QUARANTINED = "q"

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


def classify(
    kol_id: str,
    dates: Sequence[date],
    *,
    stored: Mapping[date, int],
    not_served: Mapping[date, int],
    oldest_reachable: date,
    refused: bool = False,
    quarantined_since: date | None = None,
) -> str:
    """The KOL's row: one Cell letter per date.

    `stored` / `not_served` count the KOL's series (0-2) stored / recorded as not served per date;
    `refused`: the API answered 201/400 for the KOL; `quarantined_since`: the KOL is quarantined from that date.
    """
    row = []
    for day in dates:
        kept, unserved = stored.get(day, 0), not_served.get(day, 0)
        if kept + unserved >= 2:
            row.append(Cell.NOT_SERVED if unserved else Cell.STORED)
        elif quarantined_since is not None and day >= quarantined_since:
            row.append(Cell.QUARANTINED)
        elif refused:
            row.append(Cell.NOT_SERVED)
        elif day < oldest_reachable:
            row.append(Cell.LOST)
        else:
            row.append(Cell.MISSING)
    return "".join(row)


def counts_per_date(rows: Collection[str], days: int) -> list[dict[Cell, int]]:
    """For each date index, how many KOLs are in each state."""
    if not rows:
        return [dict.fromkeys(Cell, 0) for _ in range(days)]
    columns = [Counter(column) for column in zip(*rows, strict=True)]
    return [{cell: column.get(cell.value, 0) for cell in Cell} for column in columns]
