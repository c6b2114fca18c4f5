"""The few value types every stage shares: series, endpoint variants and trend points.

Kept free of I/O and of Dagster so that the API client, the warehouse and the Dagster layer can all
depend on it without depending on each other (data flows one way: api → plan → fetch → warehouse → Dagster).
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import NamedTuple

from pgy_pipeline.errors import InternalSignal, UsageError

BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1

_KOL_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")


class Series(StrEnum):
    """The two follower series; the values are the warehouse's `increase_type` (a public contract)."""

    TOTAL_FANS = "total_fans"
    NEW_FANS = "new_fans"


class Endpoint(StrEnum):
    """Which Just One API path serves the trend (selected by `PGY_TREND_ENDPOINT`)."""

    LEGACY_V1 = "legacy_v1"
    CURRENT = "current"


class TrendPoint(NamedTuple):
    """One warehouse row: a KOL's value of one series on one China-calendar date.

    A NamedTuple rather than a dataclass: the loader streams millions of these, and tuples are the
    cheapest Python object that still has names.
    """

    kol_id: str
    date_key: date
    increase_type: str
    num: int


# One series of one KOL as the warehouse keys it: (kol_id, increase_type).
SeriesKey = tuple[str, str]


INTEGER_MIN = -(2**31)
INTEGER_MAX = 2**31 - 1

# What Postgres text (and UTF-8 everywhere else) cannot hold: NUL, and UTF-16 surrogates that JSON's \u escapes
# can produce unpaired.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> str:
    """`value` with NUL and unpaired surrogates replaced by U+FFFD, so a hostile server string can be stored,
    logged and shown (psycopg refuses to encode a lone surrogate; Postgres text refuses NUL)."""
    return _UNSTORABLE.sub("\ufffd", value)


class InvalidKolId(UsageError, ValueError):
    """A KOL id that cannot be a Xiaohongshu user id; raised before anything touches the network or database."""


def check_kol_id(kol_id: object) -> str:
    """Return `kol_id` if it is 1-64 characters of [0-9A-Za-z_-], else raise InvalidKolId saying so.

    The API uses 24-hex user ids; the wider alphabet keeps test and legacy ids usable while still
    excluding anything that could smuggle SQL, paths or URL syntax.
    """
    if not isinstance(kol_id, str) or _KOL_ID_RE.fullmatch(kol_id) is None:
        raise InvalidKolId(
            f"invalid KOL id {kol_id!r}: expected 1-64 characters of letters, digits, '_' or '-' "
            "(a Xiaohongshu user id is 24 hex characters)"
        )
    return kol_id


class Outcome(StrEnum):
    """What became of one API call (final) or one attempt of it; stored verbatim in `pgy.fetch_log.outcome`."""

    OK = "ok"  # code 0, points parsed
    EMPTY = "empty"  # code 0 with no data point at all: billed, settles nothing, counts as the KOL failing
    NO_CONTENT = "no_content"  # code 201: billed, no retry, the KOL is flagged
    INVALID_PARAMS = "invalid_params"  # code 400 / HTTP 400: no retry, the KOL is flagged
    MALFORMED = "malformed"  # body is not a valid envelope / data: raw body kept, nothing loaded
    RETRY = "retry"  # attempt-level only: a retryable failure (301, 500, 503, 5xx, timeout, connection)
    RATE_LIMITED = "rate_limited"  # attempt-level only: 302 / HTTP 429, the client slowed down
    FAILED = "failed"  # final: retries exhausted, or an undocumented code that is not retried
    STOPPED = "stopped"  # a stop-the-run code (100, 303, 600, 601, HTTP 401/403)
    NOT_ATTEMPTED = "not_attempted"  # final: never sent because the run was stopped first


# A call FAILED when it ended any way but `ok` or never sent: 201 / 400, malformed, retries exhausted, a stop
# code. The run's metadata (`calls_failed`), `pgy-pipeline status` and the pgy.fetch_health view all count
# failures this one way (the view spells it in SQL: outcome NOT IN ('ok', 'not_attempted')).
NOT_FAILED_OUTCOMES = frozenset({Outcome.OK, Outcome.NOT_ATTEMPTED})

# The platform charges an answer with code 0 (success) or 201 (no content), and nothing else.
BILLED_CODES = frozenset({0, 201})

# Details listed per question (metadata tables, check descriptions, alerts); the counts beside them are complete.
MAX_LISTED = 50


class CallRequest(NamedTuple):
    """One call to make: a KOL's series, far enough back to reach `days_wanted` days ending at the latest date."""

    kol_id: str
    series: Series
    days_wanted: int


class Attempt(NamedTuple):
    """One HTTP request of a call, as it goes to `pgy.fetch_log` (the token is never in any field)."""

    attempt: int  # 1-based
    outcome: Outcome
    http_status: int | None
    api_code: int | None  # parsed from int or numeric string; None when absent / not parseable
    api_message: str | None
    request_id: str | None
    record_time: str | None
    duration_s: float
    error: str | None  # redacted, human readable: why this attempt did not succeed
    raw_body: bytes | None  # exactly what the server sent (None when nothing arrived)
    billed: bool  # codes 0 and 201 are billed by the platform


class CallResult(NamedTuple):
    """One (KOL, series) call with all its attempts, normalised for both endpoints."""

    kol_id: str
    series: Series
    endpoint: Endpoint
    days_wanted: int
    window_days: int  # the window actually requested (30/60 legacy, 30/90 current)
    outcome: Outcome
    attempts: tuple[Attempt, ...]  # empty only when NOT_ATTEMPTED
    points: tuple[TrendPoint, ...]  # empty unless outcome is OK
    fans_num_inc: int | None
    fans_num_inc_rate: float | None

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def days_beyond_window(self) -> int:
        """Days wanted that no window of this endpoint can serve (reported, never silently dropped)."""
        return max(0, self.days_wanted - self.window_days)


class StopRun(InternalSignal):
    """Internal signal: the API said no further call can succeed in this run (token, quota, balance, permission).

    Carries the code and a one-sentence reason a user can act on; never the token.
    """

    def __init__(
        self,
        reason: str,
        *,
        api_code: int | None = None,
        http_status: int | None = None,
        result: CallResult | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.api_code = api_code
        self.http_status = http_status
        # The call that hit the stop (outcome STOPPED, its attempts included) so the caller can record it.
        self.result = result
