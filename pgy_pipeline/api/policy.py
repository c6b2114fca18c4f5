"""What to do with each business code and HTTP status (the single source of that table).

The platform answers HTTP 200 for business errors, but the spec also declares 400/401/403/429/500/503,
and a proxy in front of it can answer anything. The rule: a 2xx response is judged by its body; a
non-2xx response is judged by its status, except that a stop-the-run code in a parseable body still
stops the run (HTTP 429 is declared for "rate *or daily quota* exceeded": 429 + code 303 must stop).
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    LOAD = "load"  # code 0: validate and load the rows
    NO_CONTENT = "no_content"  # 201: billed, final, flag the KOL
    INVALID_PARAMS = "invalid_params"  # 400: final, flag the KOL
    RETRY = "retry"  # 301, 500, 503, HTTP 5xx, timeouts, connection errors: backoff, bounded
    SLOW_DOWN = "slow_down"  # 302, HTTP 429: the whole client slows down, then retry, bounded
    STOP = "stop"  # 100, 303, 600, 601, HTTP 401/403: no further calls in this run
    FAIL = "fail"  # undocumented codes other than 503: recorded verbatim, not retried


CODE_ACTIONS: dict[int, Action] = {
    0: Action.LOAD,
    201: Action.NO_CONTENT,
    100: Action.STOP,
    301: Action.RETRY,
    302: Action.SLOW_DOWN,
    303: Action.STOP,
    400: Action.INVALID_PARAMS,
    500: Action.RETRY,
    503: Action.RETRY,  # undocumented, but "service unavailable" is the one worth retrying
    600: Action.STOP,
    601: Action.STOP,
}

STOP_REASONS: dict[int, str] = {
    100: "The Just One API rejected the token (code 100): check PGY_API_TOKEN and that the token is active.",
    303: "Daily quota exceeded (code 303): what was fetched is kept; rerun tomorrow to resume.",
    600: "Permission denied (code 600): this token may not call this endpoint; check the plan or try "
    "PGY_TREND_ENDPOINT=current / legacy_v1.",
    601: "Insufficient balance (code 601): top up the Just One API account, then rerun to resume.",
}

HTTP_STOP_REASONS: dict[int, str] = {
    401: "The Just One API answered HTTP 401 Unauthorized: check PGY_API_TOKEN and that the token is active.",
    403: "The Just One API answered HTTP 403 Forbidden: check the token's permissions and PGY_API_BASE_URL.",
}


def code_action(code: int) -> Action:
    """The action for a business code; undocumented codes fail without retry (503 excepted)."""
    return CODE_ACTIONS.get(code, Action.FAIL)


def http_action(status: int) -> Action:
    """The action for a non-2xx HTTP status."""
    if status == 429:
        return Action.SLOW_DOWN
    if status in HTTP_STOP_REASONS:
        return Action.STOP
    if status == 400:
        return Action.INVALID_PARAMS
    if status >= 500:
        return Action.RETRY
    return Action.FAIL


def decide(status: int, code: int | None) -> Action:
    """Combine the HTTP status and the (parsed, possibly absent) business code into one action.

    With a 2xx status and no code the body was malformed; the caller handles that before asking.
    """
    if 200 <= status < 300:
        return code_action(code) if code is not None else Action.FAIL
    if code is not None and code_action(code) is Action.STOP:
        return Action.STOP
    return http_action(status)


def stop_reason(status: int, code: int | None) -> str:
    """One sentence telling the user why the run stopped and what to do next."""
    if code is not None and code in STOP_REASONS:
        return STOP_REASONS[code]
    return HTTP_STOP_REASONS.get(
        status, f"The Just One API refused further calls (HTTP {status}, code {code}): check the token and account."
    )
