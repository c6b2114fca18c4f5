"""Configuration from the environment: every PGY_* variable is one typed field of `Settings`.

This is the one place a PGY_* variable is read. Each field is parsed on first use (`pgy_pipeline.config_values`),
so a malformed value fails only the tick, sensor, run or command that needs it, with one sentence naming the
variable; `Settings.problems()` checks them all at once. What Dagster needs while loading the code (`LOAD_TIME`)
falls back to its default with a warning instead. See README.md (Configuration) and docs/operations.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

from pgy_pipeline import config_values as v
from pgy_pipeline.config_values import (
    BASE_URL_ALIASES,
    PLAINTEXT_OPT_IN,
    PROD_CN_BASE_URL,
    PROD_GLOBAL_BASE_URL,
    ConfigError,
    Secret,
    WebhookKind,
    _is_loopback,
    check_cleartext,
    parse_endpoint,
    require_token,
    resolve_base_url,
    time_of_day,
)
from pgy_pipeline.model import Endpoint

__all__ = [
    "BASE_URL_ALIASES",
    "PLAINTEXT_OPT_IN",
    "PROD_CN_BASE_URL",
    "PROD_GLOBAL_BASE_URL",
    "ConfigError",
    "Secret",
    "Setting",
    "Settings",
    "WebhookKind",
    "_is_loopback",
    "check_cleartext",
    "parse_endpoint",
    "plaintext_allowed",
    "require_token",
    "resolve_base_url",
    "time_of_day",
]

T = TypeVar("T")
DEFAULT_HOME = Path(".pgy")
RULE = "threshold of an anomaly rule (unset: the rule's documented default)"


class Setting(Generic[T]):
    """One PGY_* variable as a field of `Settings`: its parser, its default and what it is for."""

    def __init__(
        self,
        variable: str,
        parse: Callable[[str, str], T],
        default: T,
        meaning: str,
        *,
        derived: Callable[[Settings], T] | None = None,
    ) -> None:
        self.variable, self.parse, self.default, self.meaning, self.derived = variable, parse, default, meaning, derived
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Setting[T]: ...
    @overload
    def __get__(self, obj: Settings, owner: type | None = None) -> T: ...
    def __get__(self, obj: Settings | None, owner: type | None = None) -> Setting[T] | T:
        return self if obj is None else obj.value(self)

    def fallback(self, settings: Settings) -> T:
        """The value when the variable is unset."""
        return self.derived(settings) if self.derived is not None else self.default


class Settings:
    """Everything the pipeline reads from its environment, one field per PGY_* variable, parsed on first use."""

    api_token = Setting[Secret | None]("PGY_API_TOKEN", v.secret, None, "Just One API token (a secret)")
    api_base_url = Setting("PGY_API_BASE_URL", v.base_url, PROD_GLOBAL_BASE_URL, "API base URL or alias")
    allow_plaintext_http = Setting(PLAINTEXT_OPT_IN, v.flag, False, "send the token over plain http:// anyway")
    trend_endpoint = Setting("PGY_TREND_ENDPOINT", v.one_of(Endpoint), Endpoint.LEGACY_V1, "trend endpoint")
    database_url = Setting[str | None]("PGY_DATABASE_URL", v.database_url, None, "warehouse URL or 'embedded'")
    home = Setting("PGY_HOME", v.path, DEFAULT_HOME, "local state: embedded Postgres, demo instance")
    test_database_url = Setting[str | None]("PGY_TEST_DATABASE_URL", v.database_url, None, "Postgres of the tests")
    partitions_start = Setting[date | None]("PGY_PARTITIONS_START", v.calendar_date, None, "first daily partition")
    publish_lag_wait_s = Setting("PGY_PUBLISH_LAG_WAIT_S", v.whole_number(0), 1800, "seconds between lag retries")
    publish_lag_retries = Setting("PGY_PUBLISH_LAG_RETRIES", v.whole_number(0), 6, "retries of a late date")
    schedule_time = Setting("PGY_SCHEDULE_TIME", v.clock_time, (6, 30), "daily run, HH:MM China time")
    freshness_deadline = Setting("PGY_FRESHNESS_DEADLINE", v.deadline_time, (9, 0), "freshness deadline, HH:MM")
    alert_webhook_url = Setting[Secret | None]("PGY_ALERT_WEBHOOK_URL", v.secret, None, "chat webhook (a secret)")
    alert_webhook_kind = Setting[WebhookKind | None](
        "PGY_ALERT_WEBHOOK_KIND", v.one_of(WebhookKind), None, "wecom, feishu, dingtalk or slack"
    )
    alert_webhook_secret = Setting[Secret | None]("PGY_ALERT_WEBHOOK_SECRET", v.secret, None, "webhook signing secret")
    ui_base_url = Setting[str | None]("PGY_UI_BASE_URL", v.http_url, None, "Dagster UI address for links")
    anomaly_spike_window_days = Setting[int | None]("PGY_ANOMALY_SPIKE_WINDOW_DAYS", v.whole_number(7), None, RULE)
    anomaly_spike_min_history_days = Setting[int | None](
        "PGY_ANOMALY_SPIKE_MIN_HISTORY_DAYS", v.whole_number(1), None, RULE
    )
    anomaly_spike_multiple = Setting[float | None]("PGY_ANOMALY_SPIKE_MULTIPLE", v.number(1), None, RULE)
    anomaly_spike_mads = Setting[float | None]("PGY_ANOMALY_SPIKE_MADS", v.number(0), None, RULE)
    anomaly_spike_min_new_fans = Setting[int | None]("PGY_ANOMALY_SPIKE_MIN_NEW_FANS", v.whole_number(1), None, RULE)
    anomaly_drop_within_days = Setting[int | None]("PGY_ANOMALY_DROP_WITHIN_DAYS", v.whole_number(1), None, RULE)
    anomaly_drop_share = Setting[float | None]("PGY_ANOMALY_DROP_SHARE", v.number(0), None, RULE)
    anomaly_purge_min_removed = Setting[int | None]("PGY_ANOMALY_PURGE_MIN_REMOVED", v.whole_number(1), None, RULE)
    anomaly_purge_min_share = Setting[float | None]("PGY_ANOMALY_PURGE_MIN_SHARE", v.number(0), None, RULE)
    quarantine_after_days = Setting(
        "PGY_QUARANTINE_AFTER_DAYS", v.whole_number(1), 3, "consecutive failing daily partitions before quarantine"
    )
    daily_call_budget = Setting[int | None](
        "PGY_DAILY_CALL_BUDGET", v.whole_number(1), None, "billed calls per China day across all runs"
    )
    raw_retention_days = Setting("PGY_RAW_RETENTION_DAYS", v.whole_number(7), 60, "days raw bodies are kept")
    report_dir = Setting(
        "PGY_REPORT_DIR", v.path, DEFAULT_HOME / "reports", "where reports are written",
        derived=lambda s: s.home / "reports",
    )  # fmt: skip
    report_base_url = Setting[str | None]("PGY_REPORT_BASE_URL", v.http_url, None, "URL the report files are served at")

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._raw = {name: value for name, value in environ.items() if name.startswith("PGY_")}
        self._parsed: dict[str, object] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings of `environ` (default: this process's environment); nothing is parsed yet."""
        return cls(os.environ if environ is None else environ)

    @classmethod
    def fields(cls) -> list[Setting[Any]]:
        return [field for field in vars(cls).values() if isinstance(field, Setting)]

    def is_set(self, variable: str) -> bool:
        """Whether the variable has a (non-blank) value."""
        return bool(self._raw.get(variable, "").strip())

    def value(self, setting: Setting[T]) -> T:
        """The field's value: parsed now (once), its default when unset; ConfigError naming the variable."""
        if setting.name not in self._parsed:
            raw = self._raw.get(setting.variable, "")
            self._parsed[setting.name] = setting.parse(raw, setting.variable) if raw.strip() else setting.fallback(self)
        return self._parsed[setting.name]  # type: ignore[return-value]

    def at_load(self, setting: Setting[T]) -> tuple[T, str | None]:
        """For what Dagster needs while loading the code: the value, or the default and a warning saying so."""
        try:
            return self.value(setting), None
        except ConfigError as exc:
            default = setting.fallback(self)
            shown = f"{default[0]:02d}:{default[1]:02d}" if isinstance(default, tuple) else default
            return default, f"{exc}; using {'its default' if shown is None else f'the default ({shown})'} until fixed"

    def load_time_warnings(self) -> list[str]:
        """The warning of each setting Dagster reads while loading the code that fell back to its default."""
        return [warning for field in LOAD_TIME for warning in [self.at_load(field)[1]] if warning]

    def problems(self) -> list[str]:
        """One sentence per malformed setting, every field checked (empty when all are fine)."""
        found = []
        for field in self.fields():
            try:
                self.value(field)
            except ConfigError as exc:
                found.append(str(exc))
        return found

    def unknown(self) -> list[str]:
        """PGY_* variables that are set but are no setting (a typo, or one this version does not know)."""
        known = {field.variable for field in self.fields()}
        return sorted(name for name in self._raw if name not in known)

    def __repr__(self) -> str:  # names only: values may be secrets
        return f"Settings(set: {', '.join(sorted(n for n in self._raw if self.is_set(n))) or 'none'})"


LOAD_TIME: tuple[Setting[Any], ...] = (Settings.schedule_time, Settings.freshness_deadline, Settings.partitions_start)


def plaintext_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the operator opted in to sending the token over plain HTTP (PGY_ALLOW_PLAINTEXT_HTTP=1)."""
    return Settings.from_env(environ).allow_plaintext_http
