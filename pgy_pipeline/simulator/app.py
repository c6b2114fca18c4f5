"""The simulated Just One API: parameter rules, auth, billing, faults, restatements, and its control API.

`Simulator` is what tests, the demo and the benchmark use in-process (a real HTTP server on
127.0.0.1 with an ephemeral port); `pgy-pipeline simulator` runs the same thing standalone.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pgy_pipeline.china_time import CHINA_TZ
from pgy_pipeline.model import Endpoint, Series
from pgy_pipeline.simulator.faults import DEFAULT_RANDOM_FAULTS, FAULTS, FaultContext, success_reply
from pgy_pipeline.simulator.limiter import HiddenLimit, Limiter
from pgy_pipeline.simulator.rules import PATH_RULES, BadParams, TrendQuery, resolve
from pgy_pipeline.simulator.series import SeriesBook, stable_seed
from pgy_pipeline.simulator.server import HttpServer
from pgy_pipeline.simulator.wire import CODE_MESSAGES, Reply, json_reply

DEFAULT_TOKEN = "demo-token"  # noqa: S105 - the simulator's public demo token, not a secret


@dataclass
class SimulatorConfig:
    """Knobs of a simulator; all can be changed later through the control methods too."""

    token: str = DEFAULT_TOKEN
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port
    latency_s: float = 0.0
    today: date | None = None  # China date; None: the real one
    publish_lag_days: int = 0  # latest dateKey = today - 1 - publish_lag_days
    fault_rate: float = 0.0  # probability that a valid request gets one of `random_faults`
    random_faults: tuple[str, ...] = DEFAULT_RANDOM_FAULTS
    restate_rate: float = 0.0  # probability that a success answer first restates one past total
    seed: int = 0
    retry_after_s: int = 1  # Retry-After on HTTP 429
    slow_s: float = 2.0  # how late the "slow" fault answers
    hidden_limit: HiddenLimit | None = None  # a rate limit the API enforces but does not publish


@dataclass(frozen=True)
class CallRecord:
    """One request as the simulator saw it (never the token itself)."""

    path: str
    endpoint: Endpoint | None
    kol_id: str | None
    series: Series | None
    window_days: int | None
    token_ok: bool
    fault: str | None  # the injected fault, or "bad_token" / "bad_params" for a rejected request
    status: int
    code: object  # as sent: an int, a string for code_as_string, None when the body has none
    billed: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Injection:
    fault: str
    series: Series | None
    remaining: int | None  # None: every time


EVERYONE = "*"  # the injection key that applies to every KOL (not a valid KOL id, so it never collides)


class Simulator:
    """A local Just One API: deterministic series, settable today, latency, faults, billing counters."""

    def __init__(self, config: SimulatorConfig | None = None, **overrides: Any) -> None:
        self.config = replace(config or SimulatorConfig(), **overrides)
        for name in self.config.random_faults:
            _check_fault(name)
        self.book = SeriesBook(self.config.seed)
        self._lock = threading.Lock()
        self._rng = random.Random(stable_seed(self.config.seed, "faults"))
        self._injections: dict[str, list[_Injection]] = {}
        self._kol_lag: dict[str, int] = {}  # extra publish lag for single KOLs
        self._calls: list[CallRecord] = []
        self._billed = 0
        self._http: HttpServer | None = None
        self.limiter = Limiter(self.config.hidden_limit) if self.config.hidden_limit else None

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._http is None:
            self._http = HttpServer(self.config.host, self.config.port, self.answer)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the simulator is not running: call start() or use it as a context manager")
        return self._http.base_url

    @property
    def token(self) -> str:
        return self.config.token

    # --- control --------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[CallRecord]:
        """Every request received since the last reset, in arrival order."""
        with self._lock:
            return list(self._calls)

    @property
    def billed_calls(self) -> int:
        """Requests the platform would charge for: answers with code 0 or 201."""
        return self._billed

    def reset_counters(self) -> None:
        with self._lock:
            self._calls.clear()
            self._billed = 0

    @property
    def latency_s(self) -> float:
        return self.config.latency_s

    @latency_s.setter
    def latency_s(self, value: float) -> None:
        self.config.latency_s = value

    @property
    def today(self) -> date:
        """The simulator's China date (the configured one, else the real one)."""
        return self.config.today or datetime.now(CHINA_TZ).date()

    def set_today(self, today: date | None) -> None:
        self.config.today = today

    @property
    def latest_date(self) -> date:
        """The latest dateKey served: yesterday, minus the publish lag."""
        return self.today - timedelta(days=1 + self.config.publish_lag_days)

    def delay_publication(self, kol_id: str, days: int) -> None:
        """Publish `kol_id` `days` later than the others (0: on time again), as when the platform lags per account."""
        with self._lock:
            self._kol_lag[kol_id] = days

    def latest_for(self, kol_id: str) -> date:
        """The newest dateKey served for `kol_id`: the global latest minus that KOL's own lag."""
        return self.latest_date - timedelta(days=self._kol_lag.get(kol_id, 0))

    def inject(self, kol_id: str, fault: str, times: int | None = None, series: Series | None = None) -> None:
        """Answer requests for `kol_id` (one series or both) with `fault`, `times` times (None: always)."""
        _check_fault(fault)
        with self._lock:
            self._injections.setdefault(kol_id, []).append(_Injection(fault, series, times))

    def inject_everyone(self, fault: str, times: int | None = None) -> None:
        """Answer every request, for any KOL, with `fault` (`times` requests in all; None: until cleared).

        A KOL's own injections come first; this is the gateway rejecting everything for a morning.
        """
        self.inject(EVERYONE, fault, times)

    def clear_faults(self) -> None:
        with self._lock:
            self._injections.clear()
            self.config.fault_rate = 0.0

    def restate(self, kol_id: str, series: Series, date_key: date, new_num: int) -> None:
        self.book.restate(kol_id, series, date_key, new_num)

    def jump(self, kol_id: str, date_key: date, delta: int) -> None:
        """Move the KOL's total by `delta` from `date_key` on (see SeriesBook.jump)."""
        self.book.jump(kol_id, date_key, delta)

    def start_history(self, kol_id: str, first_date: date) -> None:
        """A young account: windows list only dates from `first_date` on (a shorter list)."""
        self.book.start_history(kol_id, first_date)

    def punch_hole(self, kol_id: str, day: date) -> None:
        """A permanent hole: every window covering `day` leaves it out for `kol_id`."""
        self.book.punch_hole(kol_id, day)

    @property
    def publish_lag_days(self) -> int:
        return self.config.publish_lag_days

    @publish_lag_days.setter
    def publish_lag_days(self, days: int) -> None:
        """Publish late (0: yesterday is served; 1: the newest date is the day before yesterday)."""
        self.config.publish_lag_days = days

    def truth(self, kol_id: str, series: Series, day: date) -> int | None:
        """What the platform reports now for that KOL, series and date (ground truth for tests)."""
        return self.book.truth(kol_id, series, day)

    # --- answering ------------------------------------------------------------------------------------

    def answer(self, path_and_query: str) -> tuple[Reply, float]:
        """Decide the reply to one request and record it; the HTTP layer adds the latency."""
        url = urlsplit(path_and_query)
        query = parse_qs(url.query, keep_blank_values=True)
        rules = PATH_RULES.get(url.path)
        token_ok = query.get("token", [""])[0] == self.config.token
        trend: TrendQuery | None = None
        fault: str | None = None
        latency_s = self.config.latency_s
        if rules is None:
            reply = json_reply(self._envelope(404, None), status=404)
        elif not token_ok:
            reply, fault = json_reply(self._envelope(100, None)), "bad_token"
        else:
            try:
                trend = resolve(rules, query)
            except BadParams as exc:
                reply, fault = json_reply(self._envelope(400, None, message=str(exc))), "bad_params"
            else:
                if self.limiter is not None and not self.limiter.admit(self.config.latency_s):
                    fault = self.limiter.limit.reply
                    latency_s = 0.0  # refused at the door, at once
                else:
                    fault = self._pick_fault(trend)
                reply = self._reply(trend, fault, path_and_query)
        self._record(url.path, rules.endpoint if rules else None, trend, token_ok, fault, reply)
        return reply, latency_s

    def _pick_fault(self, trend: TrendQuery) -> str | None:
        with self._lock:
            for injection in [*self._injections.get(trend.kol_id, []), *self._injections.get(EVERYONE, [])]:
                if injection.series not in (None, trend.series) or injection.remaining == 0:
                    continue
                if injection.remaining is not None:
                    injection.remaining -= 1
                return injection.fault
            if self.config.fault_rate and self._rng.random() < self.config.fault_rate:
                return self._rng.choice(self.config.random_faults)
        return None

    def _reply(self, trend: TrendQuery, fault: str | None, target: str) -> Reply:
        latest = self.latest_for(trend.kol_id)
        if fault is None and self.config.restate_rate:
            self._maybe_restate(trend, latest)

        def success(extra_days: int) -> dict[str, Any]:
            return self._success(trend, latest, trend.window_days + extra_days)

        context = FaultContext(
            success=success,
            envelope=self._envelope,
            latest=latest.isoformat(),
            today=self.today.isoformat(),
            retry_after_s=self.config.retry_after_s,
            slow_s=self.config.slow_s,
            request_target=target,
        )
        return FAULTS[fault](context) if fault else success_reply(context)

    def _maybe_restate(self, trend: TrendQuery, latest: date) -> None:
        with self._lock:
            if self._rng.random() >= self.config.restate_rate:
                return
            day = latest - timedelta(days=self._rng.randrange(1, trend.window_days))
            delta = self._rng.choice((-3, -2, -1, 1, 2, 3))
        old = self.book.truth(trend.kol_id, Series.TOTAL_FANS, day)
        if old is not None:
            self.book.restate(trend.kol_id, Series.TOTAL_FANS, day, max(0, old + delta))

    def _success(self, trend: TrendQuery, latest: date, days: int) -> dict[str, Any]:
        points = self.book.window(trend.kol_id, trend.series, latest, days)
        inc = points[-1][1] - points[0][1] if points else None
        rate = inc / points[0][1] if inc is not None and points[0][1] else None
        data = {
            "fansNumInc": inc,
            "fansNumIncRate": rate,
            "list": [{"num": num, "dateKey": day.isoformat()} for day, num in points],
        }
        return self._envelope(0, data)

    def _envelope(self, code: int | str, data: object, message: str | None = None) -> dict[str, Any]:
        text = message if message is not None else CODE_MESSAGES.get(int(code), "Unknown")
        return {
            "code": code,
            "message": text,
            "data": data,
            "recordTime": datetime.now(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
            "requestId": uuid.uuid4().hex,
        }

    def _record(
        self,
        path: str,
        endpoint: Endpoint | None,
        trend: TrendQuery | None,
        token_ok: bool,
        fault: str | None,
        reply: Reply,
    ) -> None:
        record = CallRecord(
            path=path,
            endpoint=endpoint,
            kol_id=trend.kol_id if trend else None,
            series=trend.series if trend else None,
            window_days=trend.window_days if trend else None,
            token_ok=token_ok,
            fault=fault,
            status=reply.status,
            code=_sent_code(reply) if fault else _PLAIN_CODES.get(reply.status, 0),
            billed=reply.billed,
        )
        with self._lock:
            self._calls.append(record)
            self._billed += reply.billed


def _sent_code(reply: Reply) -> object:
    """The code field of a reply body, for the call log (None when the body has none)."""
    try:
        doc = json.loads(reply.body)
    except (ValueError, RecursionError):  # hostile bodies: not JSON, or nested too deeply for Python
        return None
    return doc.get("code") if isinstance(doc, dict) else None


_PLAIN_CODES = {404: 404}  # non-fault replies other than success: unknown path


def _check_fault(name: str) -> None:
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}")
