"""Per-KOL tally of a run's answers: who answered with data, who failed and how, and whether the failures
are really the KOLs' or one rejection of the whole request (a systemic rejection).

When most of a run's KOLs get the same non-success answer, the request, the gateway or the API is broken, not
the KOLs: the run fails naming the answer, and no KOL is flagged or quarantined for it. When that is already
clear while the run is going (the BREAKER_* constants), the run stops calling rather than bill the rest.
See docs/completeness.md (systemic rejection).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pgy_pipeline.model import CallResult, Outcome

SYSTEMIC_MIN_KOLS = 5  # fewer KOLs than this sharing an answer is a coincidence, whatever the share
SYSTEMIC_SHARE = 0.5  # more than half of the KOLs that got an answer got this same one
# While a run is still going: after this many KOLs, this share with one answer stops it (201s are billed).
BREAKER_MIN_KOLS = 100
BREAKER_SHARE = 0.9

_FLAGGING = {Outcome.NO_CONTENT: 201, Outcome.INVALID_PARAMS: 400}  # the API says the KOL is not served
_FAILING = frozenset({Outcome.FAILED, Outcome.MALFORMED, Outcome.EMPTY})  # the KOL's calls keep failing


@dataclass(frozen=True)
class KolFailure:
    """Why a KOL's call failed, as quarantine and `pgy-pipeline status` show it."""

    outcome: str
    code: int | None
    message: str


@dataclass(frozen=True)
class Systemic:
    """One answer that came back for most of a run's KOLs."""

    answer: str  # "code 400", "HTTP 502", "a malformed answer", …
    message: str
    kols: int
    of_kols: int

    @property
    def sentence(self) -> str:
        return (
            f"The API rejected the run, not the KOLs: {self.answer} ({self.message}) came back for {self.kols} of "
            f"the {self.of_kols} KOL(s) tried. No KOL was flagged or quarantined for it; check the "
            "token, the base URL and the API's status, then run again (every KOL is fetched again)."
        )


def _answer(result: CallResult) -> tuple[str, str]:
    """(how the answer is named, its message) for a call that did not bring data."""
    last = result.last
    message = ((last.api_message or last.error) if last else None) or result.outcome.value
    if result.outcome is Outcome.EMPTY:
        return "code 0 with an empty list", message
    if result.outcome is Outcome.MALFORMED:
        return "a malformed answer", message
    if last is not None and last.api_code is not None:
        return f"code {last.api_code}", message
    if last is not None and last.http_status is not None:
        return f"HTTP {last.http_status}", message
    return "no answer", message


@dataclass
class KolTally:
    """What each KOL's calls came to in one run (thread-safe use: one absorbing thread adds at a time)."""

    tried: set[str] = field(default_factory=set)  # KOLs with at least one call sent
    with_data: set[str] = field(default_factory=set)  # KOLs with at least one call that brought data
    flagged: dict[str, tuple[int, str]] = field(default_factory=dict)  # 201/400: code, "series: message"
    failing: dict[str, KolFailure] = field(default_factory=dict)  # retries exhausted, malformed, empty
    _by_answer: dict[str, set[str]] = field(default_factory=dict)
    _messages: dict[str, str] = field(default_factory=dict)

    def add(self, result: CallResult) -> None:
        if not result.attempts or result.outcome in (Outcome.STOPPED, Outcome.NOT_ATTEMPTED):
            return
        kol = result.kol_id
        self.tried.add(kol)
        if result.outcome is Outcome.OK:
            self.with_data.add(kol)
            return
        answer, message = _answer(result)
        self._by_answer.setdefault(answer, set()).add(kol)
        self._messages.setdefault(answer, message)
        last = result.last
        if result.outcome in _FLAGGING:
            code = last.api_code if last and last.api_code is not None else _FLAGGING[result.outcome]
            self.flagged[kol] = (code, f"{result.series.value}: {message}")
        elif result.outcome in _FAILING:
            failed_code = (last.api_code if last.api_code is not None else last.http_status) if last else None
            self.failing[kol] = KolFailure(result.outcome.value, failed_code, f"{result.series.value}: {message}"[:500])

    @property
    def healthy(self) -> set[str]:
        """KOLs whose every answered call brought data: they leave any failing streak or quarantine."""
        return self.with_data - self.failing.keys() - self.flagged.keys()

    def systemic(self, *, min_kols: int = SYSTEMIC_MIN_KOLS, share: float = SYSTEMIC_SHARE) -> Systemic | None:
        """The answer most KOLs got, when it is one rejection of the run rather than KOL trouble."""
        if not self._by_answer or len(self.tried) < min_kols:
            return None
        answer, kols = max(self._by_answer.items(), key=lambda item: len(item[1]))
        if len(kols) >= SYSTEMIC_MIN_KOLS and len(kols) > share * len(self.tried):
            return Systemic(answer, self._messages[answer], len(kols), len(self.tried))
        return None

    def breaker(self) -> Systemic | None:
        """A rejection so clear, while the run is still going, that it should stop calling (and billing)."""
        return self.systemic(min_kols=BREAKER_MIN_KOLS, share=BREAKER_SHARE)
