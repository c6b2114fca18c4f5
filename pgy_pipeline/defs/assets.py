"""The `kol_fans_trend` asset: one daily partition per China date, ranges backfilled in a single run.

A thin shell over `pgy_pipeline.pipeline.run_range`: partition keys in, metadata out. A run that could not
complete its range still loads everything it fetched, then fails with one sentence per reason. Since Dagster
cannot fail single partitions of a single-run backfill, the asset first records a materialisation for each
complete date, so exactly the incomplete partitions show *Failed*. A newest date not yet published is retried
later behind a two-call probe. See docs/dagster.md and docs/completeness.md.
"""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetMaterialization,
    BackfillPolicy,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryRequested,
    asset,
)
from pydantic import Field

from pgy_pipeline.config import ConfigError, Settings
from pgy_pipeline.defs.freshness import FRESHNESS_WARNING, TREND_FRESHNESS
from pgy_pipeline.defs.metadata import concurrency_metadata, report_metadata
from pgy_pipeline.defs.partitions import PARTITIONS_START_WARNING, partitions_def, window_dates
from pgy_pipeline.defs.resources import TrendApiResource, WarehouseResource
from pgy_pipeline.errors import PgyError
from pgy_pipeline.pipeline import DEFAULT_CHUNK_CALLS, run_range
from pgy_pipeline.plan import date_range
from pgy_pipeline.verdict import RunReport
from pgy_pipeline.warehouse.errors import WarehouseUnavailable

API_POOL = "justone_api"
CHECKS_FOLLOWUP_KEY = "checks_followup_range"  # read by the follow-up sensor
# Set where they are shown: the code location always loads, whatever these settings hold.
LOAD_WARNINGS = " ".join(f"WARNING: {w}" for w in (FRESHNESS_WARNING, PARTITIONS_START_WARNING) if w)


class TrendRunConfig(Config):
    """Run config of a `kol_fans_trend` materialisation (launchpad, schedule or sensor)."""

    force: bool = Field(
        default=False, description="Fetch (and bill) again even what was already fetched for the range."
    )
    kol_ids: list[str] | None = Field(
        default=None, description="Only these tracked KOLs (the new-KOL sensor sets this); default all active."
    )
    chunk_calls: int = Field(
        default=DEFAULT_CHUNK_CALLS,
        ge=1,
        description="API calls per warehouse transaction: a run that dies loses (and its retry bills again) at "
        "most this many fetched calls.",
    )
    publish_lag_retries: int | None = Field(
        default=None,
        ge=0,
        description="Times to retry the step when the API has not published the newest date yet (0: fail at once; "
        "default PGY_PUBLISH_LAG_RETRIES or 6).",
    )
    publish_lag_wait_s: int | None = Field(
        default=None, ge=0, description="Seconds between those retries (default PGY_PUBLISH_LAG_WAIT_S or 1800)."
    )
    daily_call_budget: int | None = Field(
        default=None,
        ge=0,
        description="Billed calls allowed per China day across all runs for this run (default: "
        "PGY_DAILY_CALL_BUDGET; unset there too: no limit). The run stops before it would exceed it.",
    )

    def lag_retries(self) -> tuple[int, int]:
        """(retries, seconds apart) for a newest date not yet published: this config, else the settings."""
        settings = Settings.from_env()
        retries = settings.publish_lag_retries if self.publish_lag_retries is None else self.publish_lag_retries
        wait_s = settings.publish_lag_wait_s if self.publish_lag_wait_s is None else self.publish_lag_wait_s
        return retries, wait_s


@asset(
    group_name="pgy",
    partitions_def=partitions_def,
    backfill_policy=BackfillPolicy.single_run(),
    # Every step that calls the API is in this concurrency pool; the production dagster.yaml limits it
    # to one step at a time across all runs (see docs/deployment.md).
    pool=API_POOL,
    freshness_policy=TREND_FRESHNESS,  # China-yesterday in by PGY_FRESHNESS_DEADLINE (default 09:00 China)
    kinds={"postgres", "python"},
    # A run limited to some KOLs may find other KOLs still lacking its dates: it then marks only the complete
    # dates (AssetMaterialization events) and none of the range, rather than claiming all of it.
    output_required=False,
    description=(
        "Follower trend (total and new fans) of every active tracked KOL, one row per KOL, China date and series "
        "in pgy.kol_fans_trend. A partition is done when its date landed for every KOL the API serves that is "
        "not quarantined. " + LOAD_WARNINGS
    ).strip(),
)
def kol_fans_trend(
    context: AssetExecutionContext,
    config: TrendRunConfig,
    trend_api: TrendApiResource,
    warehouse: WarehouseResource,
) -> Iterator[MaterializeResult[None]]:
    start, end = window_dates(context.partition_time_window)
    try:
        lag_retries, lag_wait_s = config.lag_retries()  # a malformed setting fails the run before any call
    except ConfigError as exc:
        raise Failure(description=str(exc), allow_retries=False) from None
    client = trend_api.make_client()
    try:
        settings = Settings.from_env()
        budget = config.daily_call_budget if config.daily_call_budget is not None else settings.daily_call_budget
        with client, warehouse.engine() as engine:
            where = warehouse.where(engine)
            report = run_range(
                engine,
                client,
                start,
                end,
                run_id=context.run.run_id,
                force=config.force,
                kol_ids=config.kol_ids,
                chunk_calls=config.chunk_calls,
                final_attempt=context.retry_number >= lag_retries,
                daily_call_budget=budget,
                quarantine_after_days=settings.quarantine_after_days,
                raw_retention_days=settings.raw_retention_days,
            )
    except PgyError as exc:  # the sentence says what to do; the driver's traceback would bury it
        # Only an unreachable warehouse may heal by itself; an outdated schema or a refused history will not.
        raise Failure(description=str(exc), allow_retries=isinstance(exc, WarehouseUnavailable)) from None
    metadata = {
        **report_metadata(report),
        **concurrency_metadata(client.flow),
        "warehouse": MetadataValue.text(where),  # host and database, or "embedded at PATH"; never a password
    }
    problems = report.problems
    whole_range = len(report.complete_dates) == (end - start).days + 1
    if not problems and whole_range:
        yield MaterializeResult(metadata=metadata)
        return
    if report.retry_for_lag and context.retry_number < lag_retries:
        context.log.warning(
            f"{' '.join(problems)} Retrying in {lag_wait_s} s "
            f"(retry {context.retry_number + 1} of {lag_retries}; each retry first probes with at most 2 calls)."
        )
        raise RetryRequested(max_retries=lag_retries, seconds_to_wait=lag_wait_s)
    if report.retry_for_lag and lag_retries:
        problems = [
            (f"Still not published after {lag_retries} retries {lag_wait_s} s apart: {p}"
             if p.startswith(f"{len(report.unpublished)} date(s)") and "not published" in p else p)
            for p in problems
        ]  # fmt: skip
    _materialise_complete_dates(context, report, metadata)
    if not problems:  # this run's KOLs are done; other KOLs still lack some of its dates
        context.log.info(
            "Every KOL of this run has its dates; partitions where other KOLs still lack data are left as they "
            "were, not marked materialised (see missing_dates on the partitions that were)."
        )
        return
    lost = set(report.out_of_reach_missing)
    reachable = [d for d in date_range(start, min(end, report.plan.latest)) if d not in report.plan.out_of_reach]
    if lost and len(problems) == 1 and reachable:
        # Only dates lost for good failed: the checks of the reachable part run in a follow-up.
        metadata[CHECKS_FOLLOWUP_KEY] = MetadataValue.text(f"{reachable[0]}..{reachable[-1]}")
    for extra in problems[1:]:
        context.log.error(extra)
    raise Failure(description=" ".join(problems), metadata=metadata, allow_retries=False)


def _materialise_complete_dates(
    context: AssetExecutionContext, report: RunReport, metadata: dict[str, MetadataValue]
) -> None:
    """Mark every complete date of the range materialised, so only the incomplete ones show Failed (or stay)."""
    done = report.complete_dates
    if not done:
        return
    note = MetadataValue.text(
        f"complete in the warehouse for every expected KOL; run {context.run.run_id} could not claim all of "
        f"{report.plan.start}..{report.plan.end} (see the run)"
    )
    for day in done:
        context.log_event(AssetMaterialization(asset_key=context.asset_key, partition=day.isoformat(),
                                               metadata={**metadata, "status": note}))  # fmt: skip
    context.log.info(f"{len(done)} complete partition(s) of the range marked materialised: {done[0]}..{done[-1]}")
