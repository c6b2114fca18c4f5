"""The Just One API trend client: one pooled session, the code policy, retries, backoff and the rate gate.

`TrendClient.call` turns one CallRequest into one CallResult with every attempt recorded (for
`pgy.fetch_log`), or raises StopRun when the API says no further call can succeed in this run.
It is thread-safe: `pgy_pipeline.fetch` runs up to `max_concurrency` calls at once through it, and the
client's ConcurrencyLimit decides how many of them may be on the wire (fixed, or found from the answers).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import NamedTuple

import requests
from requests.adapters import HTTPAdapter

from pgy_pipeline import __version__
from pgy_pipeline.api.concurrency import ConcurrencyLimit
from pgy_pipeline.api.endpoints import SPECS, query_params, window_for
from pgy_pipeline.api.parse import Malformed, Trend, decode_envelope, parse_trend
from pgy_pipeline.api.policy import Action, decide, stop_reason
from pgy_pipeline.api.ratelimit import RateGate
from pgy_pipeline.api.redact import install_urllib3_log_filter, redact, redact_bytes
from pgy_pipeline.china_time import china_today
from pgy_pipeline.config import Secret, check_cleartext, plaintext_allowed
from pgy_pipeline.model import (
    BILLED_CODES,
    Attempt,
    CallRequest,
    CallResult,
    Endpoint,
    Outcome,
    StopRun,
    check_kol_id,
)

log = logging.getLogger(__name__)


_ATTEMPT_OUTCOME = {
    Action.LOAD: Outcome.OK,
    Action.NO_CONTENT: Outcome.NO_CONTENT,
    Action.INVALID_PARAMS: Outcome.INVALID_PARAMS,
    Action.RETRY: Outcome.RETRY,
    Action.SLOW_DOWN: Outcome.RATE_LIMITED,
    Action.STOP: Outcome.STOPPED,
    Action.FAIL: Outcome.FAILED,
}

# Answers that say nothing against the current concurrency: the API served the request.
_CLEAN_ACTIONS = frozenset({Action.LOAD, Action.NO_CONTENT, Action.INVALID_PARAMS})


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent/unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(when.tzinfo)).total_seconds())


class _Reply(NamedTuple):
    """What came back on the wire for one attempt (status None when nothing usable arrived)."""

    status: int | None
    headers: Mapping[str, str]
    body: bytes | None
    duration_s: float
    error: str | None  # redacted transport error


@dataclass(frozen=True)
class _Judged:
    attempt: Attempt
    action: Action  # RETRY for transport errors; LOAD only when the trend validated
    trend: Trend | None = None
    retry_after_s: float | None = None


class TrendClient:
    """A thread-safe client for one endpoint variant, base URL and token.

    The stop state is sticky: after a stop-the-run condition no further request leaves this client
    (calls return NOT_ATTEMPTED, calls in flight do not retry). Make one client per run.
    """

    def __init__(
        self,
        base_url: str,
        token: Secret,
        endpoint: Endpoint = Endpoint.LEGACY_V1,
        *,
        concurrency: int = 8,
        min_concurrency: int | None = None,
        max_concurrency: int | None = None,
        rate_limit_per_s: float | None = None,
        max_attempts: int = 4,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        accept_cache: bool | None = None,
        today: Callable[[], date] | None = None,
        allow_plaintext_http: bool | None = None,
    ) -> None:
        # First, before any session or socket exists: plain HTTP off this machine needs an explicit opt-in
        # (None: the PGY_ALLOW_PLAINTEXT_HTTP environment variable decides).
        allowed = plaintext_allowed() if allow_plaintext_http is None else allow_plaintext_http
        check_cleartext(base_url, allowed)
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.base_url = base_url.rstrip("/")
        self.endpoint = Endpoint(endpoint)
        self.concurrency = concurrency  # the starting level; fixed unless bounds are given
        # Without bounds the level is fixed at `concurrency`; with them it adapts to the API's answers.
        low = high = concurrency
        if min_concurrency is not None or max_concurrency is not None:
            low = min_concurrency or 1
            high = max_concurrency or max(concurrency, low)
        self.flow = ConcurrencyLimit(concurrency, low, high)
        self.max_concurrency = self.flow.maximum
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.accept_cache = accept_cache
        self._token = token
        self._today = today or china_today
        self.gate = RateGate(rate_limit_per_s, max_interval_s=backoff_max_s)
        self._stop_event = threading.Event()
        self._stop: StopRun | None = None
        self._stop_lock = threading.Lock()
        self._jitter = random.Random()
        install_urllib3_log_filter()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=self.max_concurrency, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = f"pgy-pipeline/{__version__}"
        # requests re-reads the proxy variables, ~/.netrc and the CA-bundle variables from the environment on
        # EVERY request (trust_env); profiled, that was about a fifth of the client's CPU per call. All calls
        # go to one base URL, so read them once here (HTTPS_PROXY / NO_PROXY / REQUESTS_CA_BUNDLE still apply).
        self._session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if ca_bundle:
            self._session.verify = ca_bundle
        self._session.trust_env = False

    def __repr__(self) -> str:
        return f"TrendClient(base_url={self.base_url!r}, endpoint={self.endpoint.value!r}, token=***)"

    # --- lifecycle ----------------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> TrendClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def stopped(self) -> StopRun | None:
        """The stop condition that ended this client's run, if any."""
        return self._stop

    @property
    def stop_event(self) -> threading.Event:
        """Set once a stop condition was met; fetchers wait on it to stop dispatching promptly."""
        return self._stop_event

    def _record_stop(self, stop: StopRun) -> None:
        with self._stop_lock:
            if self._stop is None:
                self._stop = stop
                log.error("stopping the run: %s", stop.reason)
        self._stop_event.set()

    def halt(self, stop: StopRun) -> None:
        """Stop the run from outside (the caller judged every further call useless): like a stop code."""
        self._record_stop(stop)

    def not_attempted(self, request: CallRequest) -> CallResult:
        """The result of a call never sent because the run stopped first."""
        return build_result(self.endpoint, request, Outcome.NOT_ATTEMPTED, ())

    # --- one call -----------------------------------------------------------------------------------

    def call(self, request: CallRequest) -> CallResult:
        """Make one (KOL, series) call with retries; raise StopRun (with `.result`) on a stop condition."""
        kol_id = check_kol_id(request.kol_id)
        window = window_for(self.endpoint, request.days_wanted)
        params = query_params(self.endpoint, kol_id, request.series, window, self.accept_cache)
        url = self.base_url + SPECS[self.endpoint].path
        attempts: list[Attempt] = []

        def result(outcome: Outcome, trend: Trend | None = None) -> CallResult:
            return build_result(self.endpoint, request, outcome, tuple(attempts), trend)

        for number in range(1, self.max_attempts + 1):
            judged = self._attempt(number, url, params, request)
            if judged is None:
                break
            attempts.append(judged.attempt)
            action = judged.action
            log.debug(
                "%s %s attempt %d: %s (HTTP %s, code %s)",
                kol_id,
                request.series.value,
                number,
                judged.attempt.outcome.value,
                judged.attempt.http_status,
                judged.attempt.api_code,
            )
            if action is Action.STOP:
                status = judged.attempt.http_status or 0
                stop = StopRun(
                    stop_reason(status, judged.attempt.api_code),
                    api_code=judged.attempt.api_code,
                    http_status=judged.attempt.http_status,
                    result=result(Outcome.STOPPED),
                )
                self._record_stop(stop)
                raise stop
            if action not in (Action.RETRY, Action.SLOW_DOWN):
                if action is Action.LOAD:
                    self.gate.relax()
                return result(judged.attempt.outcome, judged.trend)
            if number == self.max_attempts:
                break
            delay = self._backoff(number)
            if judged.retry_after_s is not None:  # the server said how long to wait (429, or a 503 that says so)
                delay = min(judged.retry_after_s, self.backoff_max_s)
            if action is Action.SLOW_DOWN and not self.flow.adaptive:
                self.gate.slow_down(delay)  # fixed concurrency: the whole client pauses, then sends at a lower pace
                continue
            if self._stop_event.wait(delay):
                break
        # Retries exhausted, or the run stopped before the next retry.
        return result(Outcome.FAILED if attempts else Outcome.NOT_ATTEMPTED)

    def _attempt(self, number: int, url: str, params: dict[str, str], request: CallRequest) -> _Judged | None:
        """Send one attempt within the concurrency limit and the rate gate; None if the run stopped first."""
        slot = self.flow.acquire(self._stop_event)
        if slot is None:
            return None
        judged: _Judged | None = None
        try:
            if not self.gate.acquire(self._stop_event):
                return None
            judged = self._judge(number, self._send(url, params), request)
            if judged.action is Action.SLOW_DOWN and judged.retry_after_s is not None and self.flow.adaptive:
                # The server said when to come back: hold every thread's next send, before this slot frees.
                self.gate.pause(min(judged.retry_after_s, self.backoff_max_s))
            return judged
        finally:
            action = judged.action if judged else None
            self.flow.release(slot, clean=action in _CLEAN_ACTIONS, limited=action is Action.SLOW_DOWN)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling / 2 + self._jitter.uniform(0, ceiling / 2)

    def _send(self, url: str, params: dict[str, str]) -> _Reply:
        token = self._token.reveal()
        started = time.monotonic()
        try:
            response = self._session.get(url, params={"token": token, **params}, timeout=self.timeout)
            body = response.content
        except requests.RequestException as exc:
            # requests puts the full URL (token included) in these messages: redact, never re-raise.
            error = redact(f"{type(exc).__name__}: {exc}", token)
            return _Reply(None, {}, None, time.monotonic() - started, error)
        return _Reply(response.status_code, response.headers, body, time.monotonic() - started, None)

    def _judge(self, number: int, reply: _Reply, request: CallRequest) -> _Judged:
        """Classify one reply into an Attempt row plus the action the policy prescribes."""
        token = self._token.reveal()
        raw = redact_bytes(reply.body, token) if reply.body is not None else None
        code: int | None = None
        message = request_id = record_time = None
        error = reply.error
        envelope_error: str | None = None
        trend: Trend | None = None
        data: object = None
        if reply.status is None:
            action = Action.RETRY
        else:
            try:
                envelope = decode_envelope(raw or b"")
                code, message = envelope.code, envelope.message
                request_id, record_time = envelope.request_id, envelope.record_time
                data = envelope.data
            except Malformed as exc:
                envelope_error = str(exc)
            action = decide(reply.status, code)
            if action is Action.LOAD:
                try:
                    trend = parse_trend(data, request.kol_id, request.series, self._today())
                except Malformed as exc:
                    envelope_error = str(exc)
            if 200 <= reply.status < 300 and envelope_error is not None:
                action = Action.FAIL
                error = f"malformed response: {envelope_error}"
            elif action is not Action.LOAD:
                error = _describe(reply.status, code, message, envelope_error)
        malformed = reply.status is not None and 200 <= reply.status < 300 and envelope_error is not None
        outcome = Outcome.MALFORMED if malformed else _ATTEMPT_OUTCOME[action]
        if outcome is Outcome.OK and trend is not None and not trend.points:
            outcome, error = Outcome.EMPTY, "code 0 with an empty list: the API served no date at all"
        attempt = Attempt(
            attempt=number,
            outcome=outcome,
            http_status=reply.status,
            api_code=code,
            api_message=redact(message, token) if message else message,
            request_id=request_id,
            record_time=record_time,
            duration_s=reply.duration_s,
            error=redact(error, token) if error else None,
            raw_body=raw,
            billed=reply.status is not None and 200 <= reply.status < 300 and code in BILLED_CODES,
        )
        retryable = action in (Action.SLOW_DOWN, Action.RETRY)
        retry_after = parse_retry_after(reply.headers.get("Retry-After")) if retryable else None
        return _Judged(attempt, action, trend, retry_after)


def build_result(
    endpoint: Endpoint,
    request: CallRequest,
    outcome: Outcome,
    attempts: tuple[Attempt, ...],
    trend: Trend | None = None,
) -> CallResult:
    """A CallResult for `request`; points and summaries only come from a validated trend."""
    return CallResult(
        kol_id=request.kol_id,
        series=request.series,
        endpoint=endpoint,
        days_wanted=request.days_wanted,
        window_days=window_for(endpoint, request.days_wanted),
        outcome=outcome,
        attempts=attempts,
        points=trend.points if trend else (),
        fans_num_inc=trend.fans_num_inc if trend else None,
        fans_num_inc_rate=trend.fans_num_inc_rate if trend else None,
    )


def _describe(status: int, code: int | None, message: str | None, envelope_error: str | None) -> str:
    """A short human-readable reason for a non-success attempt."""
    if code is not None:
        return f"HTTP {status}, code {code}: {message or 'no message'}"
    return f"HTTP {status}" + (f" ({envelope_error})" if envelope_error else "")
