"""Configuration contract: defaults, aliases, clear errors, and a token that never prints."""

from __future__ import annotations

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
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


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
            Settings.from_env({"PGY_RAW_RETENTION_DAYS": bad})
