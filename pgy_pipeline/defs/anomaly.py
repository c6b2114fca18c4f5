"""The `kol_fans_anomaly` asset: suspected abnormal follower growth, one partition per China date.

Downstream of `kol_fans_trend` with the same partitions and single-run backfills, and materialised
automatically after every trend partition that lands (Dagster's `eager()` without the "latest time window only"
clause; the automation sensor emits backfills, so a backfill's range stays one run). The rules and their
thresholds live in `pgy_pipeline.warehouse.anomaly`; this module only wires them to Dagster. See
docs/anomalies-and-alerts.md.
"""

import dataclasses

from dagster import (
    AssetExecutionContext,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    BackfillPolicy,
    Config,
    DefaultSensorStatus,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from pgy_pipeline.defs.assets import kol_fans_trend
from pgy_pipeline.defs.partitions import partitions_def, window_dates
from pgy_pipeline.defs.resources import WarehouseResource
from pgy_pipeline.errors import PgyError
from pgy_pipeline.model import MAX_LISTED
from pgy_pipeline.warehouse.anomaly import AnomalyRules, refresh_anomalies
from pgy_pipeline.warehouse.errors import WarehouseUnavailable

_DEFAULTS = AnomalyRules()  # the documented defaults; PGY_ANOMALY_* apply when a run starts (see `rules`)


def _doc(text: str, default: object) -> str:
    return f"{text} (default: PGY_ANOMALY_<FIELD> or {default})"


ANOMALY_CONDITION = AutomationCondition.eager().without(AutomationCondition.in_latest_time_window())


class AnomalyRulesConfig(Config):
    """The rules' thresholds for one run; a field left unset takes PGY_ANOMALY_<FIELD>, else the documented default."""

    spike_window_days: int | None = Field(
        default=None, description=_doc("Trailing days of the baseline.", _DEFAULTS.spike_window_days)
    )
    spike_min_history_days: int | None = Field(
        default=None,
        description=_doc("Trailing days with data needed before judging a date.", _DEFAULTS.spike_min_history_days),
    )
    spike_multiple: float | None = Field(
        default=None, description=_doc("New fans must exceed this x usual.", _DEFAULTS.spike_multiple)
    )
    spike_mads: float | None = Field(
        default=None,
        description=_doc("...and the median plus this many median absolute deviations.", _DEFAULTS.spike_mads),
    )
    spike_min_new_fans: int | None = Field(
        default=None, description=_doc("...and this absolute floor.", _DEFAULTS.spike_min_new_fans)
    )
    drop_within_days: int | None = Field(
        default=None, description=_doc("Days after a spike to watch.", _DEFAULTS.drop_within_days)
    )
    drop_share: float | None = Field(
        default=None, description=_doc("Share of the spike's excess lost to report.", _DEFAULTS.drop_share)
    )
    purge_min_removed: int | None = Field(
        default=None, description=_doc("Followers a restatement must remove to count.", _DEFAULTS.purge_min_removed)
    )
    purge_min_share: float | None = Field(
        default=None, description=_doc("...and this share of the total.", _DEFAULTS.purge_min_share)
    )

    def rules(self) -> AnomalyRules:
        """This config over the settings over the defaults; ConfigError naming the first bad one."""
        given = {name: value for name, value in self.model_dump().items() if value is not None}
        return dataclasses.replace(AnomalyRules.from_env(), **given).checked()


@asset(
    group_name="pgy",
    deps=[kol_fans_trend],
    partitions_def=partitions_def,
    backfill_policy=BackfillPolicy.single_run(),
    automation_condition=ANOMALY_CONDITION,
    kinds={"postgres", "python"},
    description=(
        "Suspected abnormal follower growth (spike, spike_then_drop, purge) per KOL and China date, in "
        "pgy.kol_fans_anomaly; a rerun replaces its dates' rows. Suspicions, never proof."
    ),
)
def kol_fans_anomaly(
    context: AssetExecutionContext, config: AnomalyRulesConfig, warehouse: WarehouseResource
) -> MaterializeResult[None]:
    start, end = window_dates(context.partition_time_window)
    try:
        rules = config.rules()
        with warehouse.engine() as engine:
            found = refresh_anomalies(engine, start, end, rules=rules, run_id=context.run.run_id)
    except PgyError as exc:  # one sentence (a bad setting, no warehouse configured), not a traceback
        raise Failure(description=str(exc), allow_retries=isinstance(exc, WarehouseUnavailable)) from None
    per_rule = {rule: sum(1 for a in found if a.rule == rule) for rule in ("spike", "spike_then_drop", "purge")}
    return MaterializeResult(
        metadata={
            "partition_range": MetadataValue.text(f"{start}..{end}"),
            "dagster/row_count": MetadataValue.int(len(found)),
            "anomalies_per_rule": MetadataValue.json(per_rule),
            "kols_flagged": MetadataValue.int(len({a.kol_id for a in found})),
            "anomalies": MetadataValue.md(
                "\n".join(
                    ["| date | kol_id | rule | summary |", "|---|---|---|---|"]
                    + [f"| {a.date_key} | {a.kol_id} | {a.rule} | {a.summary} |" for a in found[:MAX_LISTED]]
                )
                if found
                else "no suspected anomalies"
            ),
        }
    )


anomaly_automation_sensor = AutomationConditionSensorDefinition(
    "kol_fans_anomaly_automation",
    # The anomalies and what is built on them (the follower report): evaluated in the same tick, a downstream
    # asset is requested together with the anomalies it waits for, in the same backfill.
    target=AssetSelection.assets(kol_fans_anomaly).downstream(),
    default_status=DefaultSensorStatus.RUNNING,
    emit_backfills=True,  # a multi-partition request becomes ONE run (single-run backfill policy), not one per day
    description=(
        "Materialises kol_fans_anomaly for every partition of kol_fans_trend that lands, and the assets downstream "
        "of it (kol_fans_report) after it."
    ),
)
