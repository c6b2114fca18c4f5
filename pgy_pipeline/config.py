"""Configuration from the environment (the PGY_* variables), with the API token kept out of every repr.

The Dagster resources accept the same settings as config; this module is what the CLI, the demo and
the domain code read when no Dagster is involved.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pgy_pipeline.errors import UsageError
from pgy_pipeline.model import Endpoint

PROD_GLOBAL_BASE_URL = "https://api.justoneapi.com"
PROD_CN_BASE_URL = "http://47.117.133.51:30015"
BASE_URL_ALIASES = {"prod-global": PROD_GLOBAL_BASE_URL, "prod-cn": PROD_CN_BASE_URL}
PLAINTEXT_OPT_IN = "PGY_ALLOW_PLAINTEXT_HTTP"
_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


class ConfigError(UsageError, ValueError):
    """A setting is missing or malformed; the message names the variable and what to do."""


class Secret:
    """A string that never shows itself in repr(), str(), logs or exception messages.

    Call `.reveal()` at the single point where the value must go on the wire.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def resolve_base_url(value: str | None) -> str:
    """Accept a full URL or one of the aliases `prod-global` / `prod-cn`; default prod-global."""
    if not value:
        return PROD_GLOBAL_BASE_URL
    value = value.strip()
    url = BASE_URL_ALIASES.get(value, value)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"PGY_API_BASE_URL={value!r} is not an http(s) URL; use a URL or one of {sorted(BASE_URL_ALIASES)}"
        )
    return url.rstrip("/")


def plaintext_allowed(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether the operator opted in to sending the token over plain HTTP (PGY_ALLOW_PLAINTEXT_HTTP=1)."""
    value = (os.environ if environ is None else environ).get(PLAINTEXT_OPT_IN, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise ConfigError(f"{PLAINTEXT_OPT_IN}={value!r} is not a yes/no value; set it to 1 or 0")
    return value in _TRUE


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name other than localhost: where it resolves to is not known from the URL
        return False


def check_cleartext(base_url: str, allowed: bool) -> None:
    """Refuse a plain http:// base URL to any host but this machine unless the operator opted in.

    The token travels in the query string, so over plain HTTP anyone on the path reads it. Decided from
    the URL alone, before any connection exists; loopback stays allowed for the simulator.
    """
    parts = urlsplit(base_url)
    if parts.scheme.lower() != "http" or allowed or _is_loopback(parts.hostname):
        return
    where = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    raise ConfigError(
        f"refusing to send the API token in cleartext to http://{where}: use an https:// base URL, or accept "
        f"that anyone on the network path can read the token by setting {PLAINTEXT_OPT_IN}=1 (or the "
        "trend_api resource's allow_plaintext_http)."
    )


def parse_endpoint(value: str | None) -> Endpoint:
    """`legacy_v1` (default) or `current`."""
    if not value:
        return Endpoint.LEGACY_V1
    try:
        return Endpoint(value.strip().lower())
    except ValueError:
        raise ConfigError(f"PGY_TREND_ENDPOINT={value!r} is not one of {[e.value for e in Endpoint]}") from None


def time_of_day(value: str | None, variable: str, default: str) -> tuple[int, int]:
    """(hour, minute) of an `HH:MM` China time in `variable` (or `default`); a malformed value names the variable."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", (value or default).strip())
    if match is None:
        raise ConfigError(f"{variable}={value!r} is not a time of day; use HH:MM in China time, e.g. {default}")
    return int(match.group(1)), int(match.group(2))


def require_token(token: Secret | None) -> Secret:
    """The token, or a one-sentence error telling the user how to provide it."""
    if token is None or not token:
        raise ConfigError(
            "PGY_API_TOKEN is not set: export your Just One API token as PGY_API_TOKEN "
            "(or, offline, run the simulator and use its token, default 'demo-token')."
        )
    return token


DEFAULT_RAW_RETENTION_DAYS = 60
MIN_RAW_RETENTION_DAYS = 7


def raw_retention_days(environ: os._Environ[str] | dict[str, str] | None = None) -> int:
    """PGY_RAW_RETENTION_DAYS: days the raw bodies of successful calls are kept (an int >= 7; default 60)."""
    value = (os.environ if environ is None else environ).get("PGY_RAW_RETENTION_DAYS", "").strip()
    if not value:
        return DEFAULT_RAW_RETENTION_DAYS
    if not value.isdigit() or int(value) < MIN_RAW_RETENTION_DAYS:
        raise ConfigError(
            f"PGY_RAW_RETENTION_DAYS={value!r} is not a whole number of days >= {MIN_RAW_RETENTION_DAYS}; "
            f"unset it for the default ({DEFAULT_RAW_RETENTION_DAYS})"
        )
    return int(value)


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline reads from its environment."""

    api_token: Secret | None = None
    api_base_url: str = PROD_GLOBAL_BASE_URL
    trend_endpoint: Endpoint = Endpoint.LEGACY_V1
    database_url: str | None = None
    home: Path = field(default_factory=lambda: Path(".pgy"))
    raw_retention_days: int = DEFAULT_RAW_RETENTION_DAYS

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        token = env.get("PGY_API_TOKEN") or None
        return cls(
            api_token=Secret(token) if token else None,
            api_base_url=resolve_base_url(env.get("PGY_API_BASE_URL")),
            trend_endpoint=parse_endpoint(env.get("PGY_TREND_ENDPOINT")),
            database_url=env.get("PGY_DATABASE_URL") or None,
            home=Path(env.get("PGY_HOME") or ".pgy"),
            raw_retention_days=raw_retention_days(env),
        )
