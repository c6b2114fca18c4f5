"""The freshness policy on kol_fans_trend: China-yesterday in by PGY_FRESHNESS_DEADLINE (default 09:00 China)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from dagster import AssetKey
from dagster._core.definitions.freshness import CronFreshnessPolicy

from pgy_pipeline.config import ConfigError, Settings
from pgy_pipeline.defs.freshness import trend_freshness_policy


def test_the_trend_is_due_by_nine_in_china_and_judged_from_china_midnight() -> None:
    from pgy_pipeline.definitions import defs

    policy = defs.resolve_asset_graph().get(AssetKey("kol_fans_trend")).freshness_policy
    assert isinstance(policy, CronFreshnessPolicy)
    assert (policy.deadline_cron, policy.timezone) == ("0 9 * * *", "Asia/Shanghai")
    assert policy.lower_bound_delta == timedelta(hours=9)  # a run landing after 00:00 China counts, not before


def _deadline(value: str) -> tuple[int, int]:
    return Settings.from_env({"PGY_FRESHNESS_DEADLINE": value}).freshness_deadline


def test_the_deadline_is_configurable_and_a_bad_one_names_the_variable() -> None:
    policy = trend_freshness_policy(_deadline("10:45"))
    assert isinstance(policy, CronFreshnessPolicy)
    assert policy.deadline_cron == "45 10 * * *" and policy.lower_bound_delta == timedelta(hours=10, minutes=45)
    with pytest.raises(ConfigError, match="PGY_FRESHNESS_DEADLINE"):
        _deadline("9am")
    with pytest.raises(ConfigError, match="PGY_FRESHNESS_DEADLINE=00:00"):
        _deadline("00:00")
