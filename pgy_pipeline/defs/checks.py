"""Asset checks on `kol_fans_trend`, each answered by SQL over the warehouse (warehouse/completeness.py).

Quarantined KOLs are not expected, so they hold back no check. Severity follows what a failure asks of the
operator: ERROR where action is needed now (completeness, gaps while a backfill can still fill them,
freshness), WARN for total-vs-new consistency, a fact about the source that a backfill would not change.
See docs/dagster.md (asset checks).
"""

from collections.abc import Sequence
from datetime import date, timedelta

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from pgy_pipeline.china_time import china_today, latest_served_date
from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import window_dates
from pgy_pipeline.defs.resources import WarehouseResource
from pgy_pipeline.model import MAX_LISTED
from pgy_pipeline.warehouse.completeness import expected_count, lacking, series_gaps, stale_kols
from pgy_pipeline.warehouse.consistency import inconsistencies

GAP_DAYS = 60
FRESHNESS_DAYS = 2
COMPLETENESS_DEFAULT_DAYS = 7


def _checked_range(context: AssetCheckExecutionContext) -> tuple[date, date]:
    """The run's partition range when the check runs with a materialisation, else the last 7 days."""
    if context.has_partition_key_range:
        return window_dates(context.partition_time_window)
    latest = latest_served_date(china_today())
    return latest - timedelta(days=COMPLETENESS_DEFAULT_DAYS - 1), latest


def _listed(items: Sequence[object]) -> MetadataValue:
    return MetadataValue.json([str(i) for i in items[:MAX_LISTED]])


@asset_check(
    asset=kol_fans_trend,
    description="Every date of the partition range landed for every KOL the API serves that is not quarantined.",
)
def partition_completeness(context: AssetCheckExecutionContext, warehouse: WarehouseResource) -> AssetCheckResult:
    start, end = _checked_range(context)
    with warehouse.engine() as engine:
        expected = expected_count(engine)
        missing = lacking(engine, start, end)
    return AssetCheckResult(
        passed=not missing,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(missing)} of {expected} expected KOL(s) lack dates in {start}..{end}",
        metadata={
            "range": MetadataValue.text(f"{start}..{end}"),
            "kols_checked": MetadataValue.int(expected),
            "kols_incomplete": MetadataValue.int(len(missing)),
            "incomplete": MetadataValue.json(
                {k: [str(d) for d in v[:10]] for k, v in list(missing.items())[:MAX_LISTED]}
            ),
        },
    )


@asset_check(
    asset=kol_fans_trend, description=f"No missing dates inside any expected KOL's series over {GAP_DAYS} days."
)
def no_gaps_60_days(warehouse: WarehouseResource) -> AssetCheckResult:
    as_of = latest_served_date(china_today())
    with warehouse.engine() as engine:
        gaps = series_gaps(engine, as_of, GAP_DAYS)
    return AssetCheckResult(
        passed=not gaps,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(gaps)} series with holes in the {GAP_DAYS} days up to {as_of}",
        metadata={
            "series_with_gaps": MetadataValue.int(len(gaps)),
            "dates_missing": MetadataValue.int(sum(g.missing for g in gaps)),
            "gaps": _listed([f"{g.kol_id} {g.increase_type}: {g.missing} from {g.first_missing}" for g in gaps]),
        },
    )


@asset_check(
    asset=kol_fans_trend, description="new_fans[d] = total_fans[d] - total_fans[d-1] wherever all three exist."
)
def total_vs_new_consistency(warehouse: WarehouseResource) -> AssetCheckResult:
    as_of = latest_served_date(china_today())
    with warehouse.engine() as engine:
        compared, bad, examples = inconsistencies(engine, as_of, GAP_DAYS)
    return AssetCheckResult(
        passed=bad == 0,
        severity=AssetCheckSeverity.WARN,
        description=f"{bad} of {compared} KOL-dates disagree over the {GAP_DAYS} days up to {as_of}",
        metadata={
            "dates_compared": MetadataValue.int(compared),
            "dates_inconsistent": MetadataValue.int(bad),
            "examples": _listed(
                [f"{e.kol_id} {e.date_key}: new {e.new_fans} vs Δtotal {e.total_delta}" for e in examples]
            ),
        },
    )


@asset_check(
    asset=kol_fans_trend, description=f"Every expected KOL's newest date is at most {FRESHNESS_DAYS} days old."
)
def freshness(warehouse: WarehouseResource) -> AssetCheckResult:
    today = china_today()
    with warehouse.engine() as engine:
        stale = stale_kols(engine, today, FRESHNESS_DAYS)
    return AssetCheckResult(
        passed=not stale,
        severity=AssetCheckSeverity.ERROR,
        description=f"{len(stale)} expected KOL(s) with no data newer than {today - timedelta(days=FRESHNESS_DAYS)}",
        metadata={
            "kols_stale": MetadataValue.int(len(stale)),
            "stale": _listed([f"{k}: newest {d or 'never'}" for k, d in stale]),
        },
    )


asset_checks = [partition_completeness, no_gaps_60_days, total_vs_new_consistency, freshness]
