"""The simulator's parameter rules for both paths: the ONE table the handler validates against.

The contract test compares this table (and the server's actual answers) with the public OpenAPI
subset, so the simulator cannot drift from the real API. It is deliberately written out here rather
than derived from the client's `pgy_pipeline.api.endpoints`, so a mistake in the client is caught by
the simulator instead of being mirrored by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pgy_pipeline.errors import InternalSignal
from pgy_pipeline.model import Endpoint, Series

LEGACY_V1_PATH = "/api/xiaohongshu-pgy/get-kol-fans-trend/v1"
CURRENT_PATH = "/api/xiaohongshu-pgy/api/solar/kol/data/userId/fans_overall_new_history/v1"


@dataclass(frozen=True)
class ParamRule:
    """One query parameter: whether it is required, its allowed values (→ meaning) and default."""

    name: str
    required: bool
    values: Mapping[str, object] | None = None  # None: any non-empty string
    default: str | None = None
    in_public_spec: bool = True  # False for acceptCache: on the seed page, dropped from the newer spec


@dataclass(frozen=True)
class PathRules:
    endpoint: Endpoint
    kol_param: str
    params: tuple[ParamRule, ...]

    def rule(self, name: str) -> ParamRule:
        return next(rule for rule in self.params if rule.name == name)


PATH_RULES: dict[str, PathRules] = {
    LEGACY_V1_PATH: PathRules(
        endpoint=Endpoint.LEGACY_V1,
        kol_param="kolId",
        params=(
            ParamRule("token", required=True),
            ParamRule("kolId", required=True),
            ParamRule("dateType", required=True, values={"_1": 30, "_2": 60}),
            ParamRule("increaseType", required=True, values={"_1": Series.TOTAL_FANS, "_2": Series.NEW_FANS}),
            ParamRule("acceptCache", required=False, values={"true": True, "false": False}, in_public_spec=False),
        ),
    ),
    CURRENT_PATH: PathRules(
        endpoint=Endpoint.CURRENT,
        kol_param="userId",
        params=(
            ParamRule("token", required=True),
            ParamRule("userId", required=True),
            ParamRule("dateType", required=False, values={"DAY_30": 30, "DAY_90": 90}, default="DAY_30"),
            ParamRule(
                "increaseType",
                required=False,
                values={"FANS_TOTAL": Series.TOTAL_FANS, "FANS_INCREASE": Series.NEW_FANS},
                default="FANS_TOTAL",
            ),
        ),
    ),
}


@dataclass(frozen=True)
class TrendQuery:
    """A validated request: which KOL, series and window."""

    endpoint: Endpoint
    kol_id: str
    series: Series
    window_days: int


class BadParams(InternalSignal, ValueError):
    """Internal signal of the simulator: answered like the platform: HTTP 200 with code 400 and this message."""


def resolve(rules: PathRules, query: Mapping[str, list[str]]) -> TrendQuery:
    """Validate the query of one request against `rules` (token checked separately); BadParams if invalid."""
    values: dict[str, object] = {}
    for rule in rules.params:
        if rule.name == "token":
            continue
        given = query.get(rule.name, [None])[0]
        if given is None or given == "":
            if rule.required:
                raise BadParams(f"Required parameter '{rule.name}' is not present")
            given = rule.default
        if given is None:
            continue
        if rule.values is not None:
            key = given.lower() if rule.name == "acceptCache" else given
            if key not in rule.values:
                allowed = list(rule.values)
                raise BadParams(f"Invalid value '{given}' for parameter '{rule.name}': expected one of {allowed}")
            values[rule.name] = rule.values[key]
        else:
            values[rule.name] = given
    window = values["dateType"]
    series = values["increaseType"]
    assert isinstance(window, int) and isinstance(series, Series)
    return TrendQuery(rules.endpoint, str(values[rules.kol_param]), series, window)
