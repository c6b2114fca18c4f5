"""The one parser per kind of setting value, and the error every one of them raises.

Each parser takes the raw text of a variable and its name, and returns the typed value or raises a
ConfigError whose sentence names the variable and what to set instead. `pgy_pipeline.config` binds each
PGY_* variable to one of these; nothing else parses a setting.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import date
from enum import Enum, StrEnum
from pathlib import Path
from typing import TypeVar
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


E = TypeVar("E", bound=Enum)


class WebhookKind(StrEnum):
    """The chat tools Chinese marketing teams use, plus Slack."""

    WECOM = "wecom"  # 企业微信 group robot
    FEISHU = "feishu"  # Feishu / Lark custom bot (optionally signed)
    DINGTALK = "dingtalk"  # DingTalk custom robot (signed with its SEC… secret)
    SLACK = "slack"  # Slack incoming webhook


def text(value: str, variable: str) -> str:
    """Any text, stripped."""
    return value.strip()


def secret(value: str, variable: str) -> Secret:
    """A secret, kept out of every repr."""
    return Secret(value.strip())


def flag(value: str, variable: str) -> bool:
    """A yes/no value: 1 / true / yes or 0 / false / no."""
    lowered = value.strip().lower()
    if lowered not in _TRUE + _FALSE:
        raise ConfigError(f"{variable}={value!r} is not a yes/no value; set it to 1 or 0")
    return lowered in _TRUE


def http_url(value: str, variable: str) -> str:
    """An http(s) URL, without a trailing slash; the value is not echoed (a URL may carry a credential)."""
    url = value.strip()
    if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        raise ConfigError(f"{variable} is not an http(s) URL; set it to an address such as https://host:port/path")
    return url.rstrip("/")


def database_url(value: str, variable: str) -> str:
    """`embedded`, or a Postgres URL (checked for its scheme only here; the engine parses the rest)."""
    url = value.strip()
    scheme = url.split("://", 1)[0] if "://" in url else None
    if url == "embedded" or (scheme and scheme.split("+", 1)[0] in ("postgresql", "postgres")):
        return url
    problem = "cannot be parsed" if scheme is None else f"is not a Postgres URL (scheme {scheme!r})"
    raise ConfigError(
        f"the database URL ({variable}) {problem}; use postgresql://USER:PASSWORD@HOST:5432/DBNAME, or 'embedded'"
    )


def path(value: str, variable: str) -> Path:
    """A filesystem path, `~` expanded."""
    return Path(value.strip()).expanduser()


def calendar_date(value: str, variable: str) -> date:
    """A date `YYYY-MM-DD`."""
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{variable}={value!r} is not a date; use YYYY-MM-DD, e.g. 2026-01-01") from None


def clock_time(value: str, variable: str) -> tuple[int, int]:
    """(hour, minute) of an `HH:MM` China time."""
    return time_of_day(value, variable, "06:30")


def deadline_time(value: str, variable: str) -> tuple[int, int]:
    """An `HH:MM` China time after midnight (a deadline at 00:00 leaves no time for anything to land)."""
    hour, minute = clock_time(value, variable)
    if (hour, minute) == (0, 0):
        raise ConfigError(f"{variable}=00:00 leaves no time for yesterday to land; use e.g. 09:00")
    return hour, minute


def whole_number(minimum: int) -> Callable[[str, str], int]:
    """A parser of whole numbers of at least `minimum`."""

    def parse(value: str, variable: str) -> int:
        raw = value.strip()
        if not re.fullmatch(r"[+-]?[0-9]+", raw) or int(raw) < minimum:
            raise ConfigError(f"{variable}={value!r} is not a whole number of at least {minimum}; fix it or unset it")
        return int(raw)

    return parse


def number(minimum: float) -> Callable[[str, str], float]:
    """A parser of (decimal) numbers of at least `minimum`."""

    def parse(value: str, variable: str) -> float:
        try:
            parsed = float(value.strip())
        except ValueError:
            parsed = float("nan")
        if not parsed >= minimum or parsed == float("inf"):  # also refuses nan
            raise ConfigError(f"{variable}={value!r} is not a number of at least {minimum}; fix it or unset it")
        return parsed

    return parse


def one_of(kind: type[E]) -> Callable[[str, str], E]:
    """A parser of one of an enumeration's values (case-insensitive)."""

    def parse(value: str, variable: str) -> E:
        try:
            return kind(value.strip().lower())
        except ValueError:
            raise ConfigError(f"{variable}={value!r} is not one of {[m.value for m in kind]}") from None

    return parse


def base_url(value: str, variable: str) -> str:
    """A base URL or one of the aliases."""
    return resolve_base_url(value)
