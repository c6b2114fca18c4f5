"""Top gainers and losers: the change of total fans between the report's last date and N days before it.

Measured against that exact earlier date, as `pgy.kol_latest`'s growth columns are: a KOL lacking either
date is left out rather than compared with some other day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgy_pipeline.report.data import KolSeries


@dataclass(frozen=True)
class Mover:
    kol_id: str
    before: int
    after: int

    @property
    def gain(self) -> int:
        return self.after - self.before

    @property
    def rate(self) -> float:
        return self.gain / self.before if self.before else 0.0


@dataclass(frozen=True)
class Ranking:
    title: str
    days: int
    movers: list[Mover]


def movers(kols: Sequence[KolSeries], days: int) -> list[Mover]:
    """Every KOL with a stored total on the last date and `days` before it."""
    out = []
    for k in kols:
        if len(k.total) <= days:
            continue
        before, after = k.total[-1 - days], k.total[-1]
        if before is not None and after is not None:
            out.append(Mover(k.kol_id, before, after))
    return out


def top(found: Sequence[Mover], n: int, *, relative: bool, losers: bool) -> list[Mover]:
    """The n largest gains (or losses), absolute or relative to the earlier total."""
    key = (lambda m: m.rate) if relative else (lambda m: float(m.gain))
    chosen = sorted(found, key=lambda m: (key(m) if losers else -key(m), m.kol_id))[:n]
    return [m for m in chosen if (m.gain < 0 if losers else m.gain > 0)]


def rankings(kols: Sequence[KolSeries], n: int = 10, horizons: Sequence[int] = (7, 30)) -> list[Ranking]:
    """Gainers and losers, absolute and relative, for each horizon the report's dates cover."""
    out = []
    for days in horizons:
        found = movers(kols, days)
        for losers in (False, True):
            for relative in (False, True):
                what = ("losers" if losers else "gainers") + (" (relative)" if relative else "")
                out.append(Ranking(f"Top {what}, {days} days", days, top(found, n, relative=relative, losers=losers)))
    return out
