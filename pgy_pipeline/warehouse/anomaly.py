"""Suspected abnormal follower growth (疑似异常涨粉): three rules in SQL over the stored history.

Each rule compares a KOL with its own history, never with other KOLs: `spike` (new fans far above the KOL's
usual day), `spike_then_drop` (much of a spike's excess lost within days) and `purge` (a stored total restated
downwards). Dates with no row are not anomalies, and new fans disagreeing with the change of totals is the
consistency check's question. Rows say "suspected", never "fake". See docs/anomalies-and-alerts.md (the rules).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine, text

from pgy_pipeline.config import ConfigError, Settings
from pgy_pipeline.warehouse.migrate import ensure_schema


@dataclass(frozen=True)
class AnomalyRules:
    """Thresholds of the three rules; each can be set as PGY_ANOMALY_<FIELD NAME IN CAPITALS>."""

    spike_window_days: int = 30
    spike_min_history_days: int = 14
    spike_multiple: float = 5.0
    spike_mads: float = 10.0
    spike_min_new_fans: int = 200
    drop_within_days: int = 7
    drop_share: float = 0.5
    purge_min_removed: int = 100
    purge_min_share: float = 0.01

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AnomalyRules:
        """The defaults, overridden by any PGY_ANOMALY_* setting (`Settings.anomaly_<field>`); raises ConfigError."""
        settings = Settings.from_env(environ)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            value = getattr(settings, f"anomaly_{f.name}")
            if value is not None:
                values[f.name] = value
        return cls(**values).checked()

    def checked(self) -> AnomalyRules:
        """Self, or a ConfigError naming the first threshold that cannot work."""
        if self.spike_window_days < 7 or not 1 <= self.spike_min_history_days <= self.spike_window_days:
            raise ConfigError(
                "spike_window_days must be at least 7 and spike_min_history_days between 1 and spike_window_days"
            )
        if self.spike_multiple < 1 or self.spike_mads < 0 or self.spike_min_new_fans < 1:
            raise ConfigError("spike_multiple must be at least 1, spike_mads at least 0, spike_min_new_fans positive")
        if self.drop_within_days < 1 or not 0 < self.drop_share <= 1:
            raise ConfigError("drop_within_days must be positive and drop_share in (0, 1]")
        if self.purge_min_removed < 1 or not 0 <= self.purge_min_share <= 1:
            raise ConfigError("purge_min_removed must be positive and purge_min_share in [0, 1]")
        return self


@dataclass(frozen=True)
class Anomaly:
    """One suspicion, as stored in pgy.kol_fans_anomaly."""

    kol_id: str
    date_key: date
    rule: str
    observed: int
    baseline: float
    score: float
    related_date: date | None
    summary: str


# Spikes on dates :lo..:hi. Candidates are filtered by the absolute floor first (an index range per
# KOL), so the per-date baselines are computed only for the few days that could qualify.
_SPIKES = """
SELECT t.kol_id, t.date_key, t.num AS observed,
       greatest(s.med, coalesce(s.weekday_med, s.med)) AS baseline
  FROM pgy.kol_fans_trend t
 CROSS JOIN LATERAL (
        SELECT count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY h.num) AS med,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY h.num)
                   FILTER (WHERE (t.date_key - h.date_key) % 7 = 0) AS weekday_med
          FROM pgy.kol_fans_trend h
         WHERE h.kol_id = t.kol_id AND h.increase_type = 'new_fans'
           AND h.date_key >= t.date_key - :window AND h.date_key < t.date_key
       ) s
 CROSS JOIN LATERAL (
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(h.num - s.med)) AS mad
          FROM pgy.kol_fans_trend h
         WHERE h.kol_id = t.kol_id AND h.increase_type = 'new_fans'
           AND h.date_key >= t.date_key - :window AND h.date_key < t.date_key
       ) m
 WHERE t.increase_type = 'new_fans' AND t.date_key BETWEEN :lo AND :hi
   AND t.num >= :min_new_fans
   AND s.n >= :min_history
   AND t.num >= :multiple * greatest(s.med, coalesce(s.weekday_med, s.med), 0)
   AND t.num > s.med + :mads * m.mad
"""

# The first day, within :within days after a spike, on which the fans lost since the spike reach
# :share of its excess; one row per KOL and day (the strongest, if two spikes cross on the same day).
_SPIKE_THEN_DROP = f"""
WITH spikes AS ({_SPIKES.replace(":lo", ":spike_lo")}),
cumulative AS (
    SELECT s.kol_id, s.date_key AS spike_date, s.observed - s.baseline AS excess, n.date_key,
           -(sum(n.num) OVER (PARTITION BY s.kol_id, s.date_key ORDER BY n.date_key))::bigint AS lost
      FROM spikes s
      JOIN pgy.kol_fans_trend n
        ON n.kol_id = s.kol_id AND n.increase_type = 'new_fans'
       AND n.date_key > s.date_key AND n.date_key <= s.date_key + :within
),
crossing AS (
    SELECT DISTINCT ON (kol_id, spike_date) kol_id, spike_date, excess, date_key, lost
      FROM cumulative
     WHERE excess > 0 AND lost >= :share * excess
     ORDER BY kol_id, spike_date, date_key
)
SELECT DISTINCT ON (kol_id, date_key) kol_id, date_key, lost, excess, spike_date
  FROM crossing
 WHERE date_key BETWEEN :lo AND :hi
 ORDER BY kol_id, date_key, lost / excess DESC
"""

# Downward restatements of totals, attributed to the newest partition of the run whose fetch saw them
# (a revision made outside a run: the China day before it was recorded), largest removal per KOL.
_PURGES = """
WITH restated AS (
    SELECT r.kol_id, r.date_key AS restated_date, r.old_num, r.old_num - r.new_num AS removed,
           coalesce(f.partition_end, f.last_date_key,
                    (r.changed_at AT TIME ZONE 'Asia/Shanghai')::date - 1) AS seen_on
      FROM pgy.kol_fans_trend_revision r
      LEFT JOIN pgy.fetch_log f ON f.id = r.fetch_log_id
     WHERE r.increase_type = 'total_fans' AND r.new_num < r.old_num
),
qualifying AS (
    SELECT *, count(*) OVER (PARTITION BY kol_id, seen_on) AS dates_restated
      FROM restated
     WHERE seen_on BETWEEN :lo AND :hi AND removed >= :min_removed AND removed >= :share * old_num
)
SELECT DISTINCT ON (kol_id, seen_on) kol_id, seen_on, removed, old_num, restated_date, dates_restated
  FROM qualifying
 ORDER BY kol_id, seen_on, removed DESC, restated_date
"""

_INSERT = """
INSERT INTO pgy.kol_fans_anomaly (kol_id, date_key, rule, observed, baseline, score, related_date, summary, run_id)
VALUES (:kol_id, :date_key, :rule, :observed, :baseline, :score, :related_date, :summary, :run_id)
"""


def _spikes(engine: Engine, lo: date, hi: date, rules: AnomalyRules) -> list[Anomaly]:
    with engine.connect() as conn:
        rows = conn.execute(text(_SPIKES), _spike_params(lo, hi, rules)).all()
    out = []
    for kol_id, day, observed, baseline in rows:
        times = observed / max(baseline, 1.0)
        summary = f"Suspected bought followers: {observed:,} new fans, {times:.0f}x its usual {baseline:,.0f} a day"
        out.append(Anomaly(kol_id, day, "spike", observed, baseline, times, None, summary))
    return out


def _spike_then_drops(engine: Engine, lo: date, hi: date, rules: AnomalyRules) -> list[Anomaly]:
    params = {
        **_spike_params(lo, hi, rules),
        "spike_lo": lo - timedelta(days=rules.drop_within_days),
        "within": rules.drop_within_days,
        "share": rules.drop_share,
    }
    with engine.connect() as conn:
        rows = conn.execute(text(_SPIKE_THEN_DROP), params).all()
    out = []
    for kol_id, day, lost, excess, spike_date in rows:
        share = lost / excess
        summary = (
            f"Suspected bought followers shed: lost {int(lost):,} fans by this day, {share:.0%} of the "
            f"{excess:,.0f} extra gained in the spike of {spike_date}"
        )
        out.append(Anomaly(kol_id, day, "spike_then_drop", int(lost), excess, share, spike_date, summary))
    return out


def _purges(engine: Engine, lo: date, hi: date, rules: AnomalyRules) -> list[Anomaly]:
    params = {"lo": lo, "hi": hi, "min_removed": rules.purge_min_removed, "share": rules.purge_min_share}
    with engine.connect() as conn:
        rows = conn.execute(text(_PURGES), params).all()
    out = []
    for kol_id, day, removed, old, restated, dates in rows:
        share = removed / max(old, 1)
        summary = (
            f"Suspected follower purge: the platform restated {dates} past day(s) downwards, removing up to "
            f"{removed:,} followers ({share:.1%} of {old:,} on {restated})"
        )
        out.append(Anomaly(kol_id, day, "purge", removed, float(old), share, restated, summary))
    return out


def _spike_params(lo: date, hi: date, rules: AnomalyRules) -> dict[str, object]:
    return {
        "lo": lo,
        "hi": hi,
        "window": rules.spike_window_days,
        "min_history": rules.spike_min_history_days,
        "multiple": rules.spike_multiple,
        "mads": rules.spike_mads,
        "min_new_fans": rules.spike_min_new_fans,
    }


def detect(engine: Engine, start: date, end: date, rules: AnomalyRules | None = None) -> list[Anomaly]:
    """Every suspicion about the dates start..end under `rules` (default: AnomalyRules.from_env())."""
    rules = rules or AnomalyRules.from_env()
    found = _spikes(engine, start, end, rules) + _spike_then_drops(engine, start, end, rules)
    found += _purges(engine, start, end, rules)
    return sorted(found, key=lambda a: (a.date_key, a.kol_id, a.rule))


def refresh_anomalies(
    engine: Engine, start: date, end: date, *, rules: AnomalyRules | None = None, run_id: str | None = None
) -> list[Anomaly]:
    """Recompute the suspicions of start..end and replace that range's rows in one transaction.

    Idempotent per date range: a rerun deletes what the previous run wrote for those dates first, so a
    threshold change or a restatement since then is reflected and nothing is ever duplicated.
    """
    ensure_schema(engine)
    found = detect(engine, start, end, rules)
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM pgy.kol_fans_anomaly WHERE date_key BETWEEN :lo AND :hi"), {"lo": start, "hi": end}
        )
        if found:
            conn.execute(text(_INSERT), [{**dataclasses.asdict(a), "run_id": run_id} for a in found])
    return found


def stored_anomalies(engine: Engine, start: date, end: date) -> list[Anomaly]:
    """The stored suspicions about start..end, by date, KOL and rule."""
    sql = """
        SELECT kol_id, date_key, rule, observed, baseline, score, related_date, summary
          FROM pgy.kol_fans_anomaly WHERE date_key BETWEEN :lo AND :hi ORDER BY date_key, kol_id, rule
    """
    with engine.connect() as conn:
        return [Anomaly(*row) for row in conn.execute(text(sql), {"lo": start, "hi": end})]
