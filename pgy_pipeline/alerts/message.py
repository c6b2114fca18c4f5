"""One alert, as the on-call person reads it: what failed, for which partitions, why, what it cost, where to look.

Every text that goes out passes through `scrub`: the API token, the webhook's own credentials and any
`token=` / `access_token=` / `key=` query value are masked, whatever a failure message happened to quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgy_pipeline.api.redact import MASK, redact

MAX_REASON_CHARS = 600  # chat robots cap a message at 2-4 KB; the run page has the rest
_CREDENTIAL_PARAM = re.compile(r"(?i)((?:access_token|key|sign|secret)=)[^&\s'\"()<>]*")


@dataclass(frozen=True)
class Alert:
    """One event worth a message (a failed run, a failed ERROR check, a missed freshness deadline)."""

    event: str  # "Run failed", "Asset check failed", "Freshness deadline missed"
    subject: str  # the job, check or asset concerned
    partitions: str | None  # "2026-03-01..2026-03-08", one date, or None when not partition-bound
    reason: str  # one sentence the on-call person can act on
    billed_calls: int | None  # None when not applicable or unknown
    link: str | None  # the run or asset page in the Dagster UI
    report: str | None = None  # the follower report's address, when PGY_REPORT_BASE_URL is set

    @property
    def title(self) -> str:
        return f"[pgy-pipeline] {self.event}: {self.subject}"

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs of the message body, in reading order."""
        reason = self.reason if len(self.reason) <= MAX_REASON_CHARS else self.reason[: MAX_REASON_CHARS - 1] + "…"
        out = [("Partitions", self.partitions or "n/a"), ("Reason", reason)]
        out.append(("Billed calls", "n/a" if self.billed_calls is None else str(self.billed_calls)))
        if self.link:
            out.append(("Dagster", self.link))
        if self.report:
            out.append(("Report", self.report))
        return out


def scrub(text: str, *secrets: str | None) -> str:
    """`text` with every secret given, `token=` values and webhook credential parameters masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return _CREDENTIAL_PARAM.sub(lambda m: m.group(1) + MASK, redact(text))
