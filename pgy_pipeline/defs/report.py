"""The `kol_fans_report` asset: each partition's follower report, an HTML file under PGY_REPORT_DIR.

Downstream of `kol_fans_anomaly` with the same partitions and single-run backfills, and requested by the
anomaly asset's automation sensor in the same tick and backfill as the anomalies it waits for. The files, their
contents and their names are `pgy_pipeline.report`'s; this module only wires them to Dagster.
See docs/report.md (the asset `kol_fans_report`).
"""

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from pgy_pipeline.china_time import china_today
from pgy_pipeline.config import Settings
from pgy_pipeline.defs.anomaly import ANOMALY_CONDITION, kol_fans_anomaly
from pgy_pipeline.defs.partitions import partitions_def, window_dates
from pgy_pipeline.defs.resources import WarehouseResource
from pgy_pipeline.plan import date_range, oldest_reachable_date
from pgy_pipeline.report.build import report_url, write_partition_reports
from pgy_pipeline.report.summary import new_suspicions, summary_markdown

NAMED_SUSPICIONS = 10  # KOLs named in the metadata (and so in the chat alert); the count is always complete


class ReportConfig(Config):
    """How many dates each partition's report covers."""

    days: int = Field(default=60, ge=1, description="Dates ending at the partition that its report covers.")


@asset(
    group_name="pgy",
    deps=[kol_fans_anomaly],
    partitions_def=partitions_def,
    backfill_policy=BackfillPolicy.single_run(),
    automation_condition=ANOMALY_CONDITION,
    kinds={"html"},
    description=(
        "The follower report of each partition: one self-contained HTML file (coverage, curves with the "
        "suspected anomalies marked, rankings, fetch health) under PGY_REPORT_DIR, default $PGY_HOME/reports."
    ),
)
def kol_fans_report(
    context: AssetExecutionContext, config: ReportConfig, warehouse: WarehouseResource
) -> MaterializeResult[None]:
    settings = Settings.from_env()
    start, end = window_dates(context.partition_time_window)
    with warehouse.engine() as engine:
        written = write_partition_reports(
            engine,
            settings.report_dir,
            date_range(start, end),
            days=config.days,
            oldest_reachable=oldest_reachable_date(china_today(), settings.trend_endpoint),
            budget=settings.daily_call_budget,
        )
    newest = written[-1]
    url = report_url(settings.report_base_url, newest.path.name)
    new = new_suspicions(newest.data)
    metadata = {
        "partition_range": MetadataValue.text(f"{start}..{end}"),
        "path": MetadataValue.path(str(newest.path.resolve())),
        "size_bytes": MetadataValue.int(newest.size_bytes),
        "reports_written": MetadataValue.int(len(written)),
        "summary": MetadataValue.md(summary_markdown(newest.data, url)),
        "new_suspicions": MetadataValue.int(len(new)),
        "new_suspicions_named": MetadataValue.text(
            ", ".join(f"{a.kol_id} ({a.rule})" for a in new[:NAMED_SUSPICIONS])
            + (" …" if len(new) > NAMED_SUSPICIONS else "")
        ),
    }
    if url:
        metadata["url"] = MetadataValue.url(url)
    return MaterializeResult(metadata=metadata)
