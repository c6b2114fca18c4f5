"""Configuration contract: defaults, aliases, clear errors, and a token that never prints."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from sqlalchemy import text

from pgy_pipeline.config import (
    PROD_CN_BASE_URL,
    PROD_GLOBAL_BASE_URL,
    ConfigError,
    Secret,
    Settings,
    require_token,
)
from pgy_pipeline.model import Endpoint
from pgy_pipeline.warehouse.engine import make_engine, normalize_url


def test_defaults_follow_the_design() -> None:
    s = Settings.from_env({})
    assert s.api_token is None
    assert s.api_base_url == PROD_GLOBAL_BASE_URL
    assert s.trend_endpoint is Endpoint.LEGACY_V1
    assert s.database_url is None
    assert s.home == Path(".pgy")


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            "PGY_API_TOKEN": "tok-123",
            "PGY_API_BASE_URL": "prod-cn",
            "PGY_TREND_ENDPOINT": "current",
            "PGY_DATABASE_URL": "postgresql://u@h/db",
            "PGY_HOME": "/var/lib/pgy",
        }
    )
    assert s.api_token is not None and s.api_token.reveal() == "tok-123"
    assert s.api_base_url == PROD_CN_BASE_URL
    assert s.trend_endpoint is Endpoint.CURRENT
    assert s.database_url == "postgresql://u@h/db"
    assert s.home == Path("/var/lib/pgy")


def test_any_base_url_is_accepted_without_trailing_slash() -> None:
    assert Settings.from_env({"PGY_API_BASE_URL": "http://127.0.0.1:8765/"}).api_base_url == "http://127.0.0.1:8765"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PGY_TREND_ENDPOINT": "v2"}, "PGY_TREND_ENDPOINT"),
        ({"PGY_API_BASE_URL": "ftp://x"}, "PGY_API_BASE_URL"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    settings = Settings.from_env(env)  # parsed when used: reading other settings still works
    assert settings.home == Path(".pgy")
    field = next(f for f in Settings.fields() if f.variable == named)
    with pytest.raises(ConfigError, match=named):
        getattr(settings, field.name)
    assert [named in problem for problem in settings.problems()] == [True]


def test_every_bad_setting_is_named_at_once() -> None:
    bad = {
        "PGY_PUBLISH_LAG_RETRIES": "-1",
        "PGY_SCHEDULE_TIME": "6 ",
        "PGY_FRESHNESS_DEADLINE": "00:00",
        "PGY_PARTITIONS_START": "2026-13-01",
        "PGY_ANOMALY_DROP_SHARE": "half",
        "PGY_QUARANTINE_AFTER_DAYS": "0",
        "PGY_DAILY_CALL_BUDGET": "lots",
        "PGY_RAW_RETENTION_DAYS": "6",
        "PGY_REPORT_BASE_URL": "reports.internal",
        "PGY_ALERT_WEBHOOK_KIND": "teams",
        "PGY_ALLOW_PLAINTEXT_HTTP": "maybe",
        "PGY_DATABASE_URL": "mysql://u:secret-pw@h/db",
    }
    problems = Settings.from_env(bad).problems()
    assert sorted(next(v for v in bad if v in p) for p in problems) == sorted(bad)
    assert not any("secret-pw" in p for p in problems)  # a URL's password is never echoed


def test_the_new_settings_have_their_documented_defaults() -> None:
    s = Settings.from_env({"PGY_HOME": "/srv/pgy"})
    assert (s.quarantine_after_days, s.daily_call_budget, s.raw_retention_days) == (3, None, 60)
    assert (s.report_dir, s.report_base_url) == (Path("/srv/pgy/reports"), None)
    s = Settings.from_env({"PGY_DAILY_CALL_BUDGET": "40000", "PGY_REPORT_BASE_URL": "https://r.example/pgy/"})
    assert (s.daily_call_budget, s.report_base_url, s.report_dir) == (
        40000,
        "https://r.example/pgy",
        Path(".pgy/reports"),
    )


def test_a_load_time_setting_falls_back_with_a_warning_naming_it() -> None:
    s = Settings.from_env({"PGY_SCHEDULE_TIME": "6 ", "PGY_FRESHNESS_DEADLINE": "08:15"})
    assert s.at_load(Settings.schedule_time)[0] == (6, 30)
    assert s.at_load(Settings.freshness_deadline) == ((8, 15), None)
    [warning] = s.load_time_warnings()
    assert warning.startswith("PGY_SCHEDULE_TIME='6 ' is not a time of day") and "default (06:30)" in warning


def test_the_readme_settings_table_lists_exactly_the_fields_of_settings() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `PGY_")]
    documented = {name for row in rows for name in re.findall(r"`(PGY_[A-Z0-9_]+)`", row.split(" | ")[0])}
    assert documented == {field.variable for field in Settings.fields()}


def test_anomaly_settings_are_the_rules_thresholds() -> None:
    from pgy_pipeline.warehouse.anomaly import AnomalyRules

    anomaly = {f.name.removeprefix("anomaly_") for f in Settings.fields() if f.name.startswith("anomaly_")}
    assert anomaly == {f.name for f in dataclasses.fields(AnomalyRules)}


def test_missing_token_is_one_clear_sentence() -> None:
    with pytest.raises(ConfigError, match=r"^PGY_API_TOKEN is not set: export your Just One API token"):
        require_token(Settings.from_env({}).api_token)


def test_token_never_shows_in_repr_or_str() -> None:
    s = Settings.from_env({"PGY_API_TOKEN": "very-secret-token"})
    assert "very-secret-token" not in repr(s)
    assert "very-secret-token" not in str(s.api_token)
    assert f"{s.api_token}" == "Secret('***')"
    assert require_token(s.api_token) == Secret("very-secret-token")


@pytest.mark.parametrize(
    "url",
    ["postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg://postgres@127.0.0.1:5432/test"],
)
def test_both_url_schemes_use_psycopg3(url: str) -> None:
    assert normalize_url(url) == "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_non_postgres_url_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Postgres URL"):
        normalize_url("sqlite:///x.db")


@pytest.mark.embedded
def test_embedded_postgres_listens_on_a_unix_socket_only(embedded_admin_url: str) -> None:
    """The embedded server takes no TCP connections at all: nothing outside the machine can reach it."""
    engine = make_engine(embedded_admin_url)
    with engine.connect() as conn:
        assert conn.execute(text("select current_setting('listen_addresses')")).scalar_one() == ""
        assert conn.execute(text("select inet_server_addr()")).scalar_one() is None
    engine.dispose()


@pytest.mark.embedded
def test_embedded_postgres_compresses_full_page_images_in_its_wal(embedded_admin_url: str) -> None:
    engine = make_engine(embedded_admin_url)
    with engine.connect() as conn:
        assert conn.execute(text("show wal_compression")).scalar_one() != "off"
    engine.dispose()


def test_raw_retention_days_defaults_to_60_and_refuses_less_than_a_week() -> None:
    assert Settings.from_env({}).raw_retention_days == 60
    assert Settings.from_env({"PGY_RAW_RETENTION_DAYS": "30"}).raw_retention_days == 30
    for bad in ("6", "abc", "-10"):
        with pytest.raises(ConfigError, match="PGY_RAW_RETENTION_DAYS"):
            Settings.from_env({"PGY_RAW_RETENTION_DAYS": bad}).raw_retention_days  # noqa: B018 - read to parse
