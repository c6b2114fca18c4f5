"""Keep the API token out of every text the pipeline produces.

The token travels as a query parameter, so anything that prints a URL leaks it: requests puts the
full URL into ConnectionError/Timeout messages and urllib3 logs request lines at DEBUG. Two layers
protect against that: `redact` scrubs both the literal token and any `token=` query value, and
`install_urllib3_log_filter` rewrites urllib3's log records before any handler sees them.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
_TOKEN_PARAM = re.compile(r"(?i)(token=)[^&\s'\"()<>]*")


def redact(text: str, token: str | None = None) -> str:
    """`text` with the token (if given) and every `token=<value>` query value replaced by ***."""
    if token:
        text = text.replace(token, MASK)
    return _TOKEN_PARAM.sub(lambda m: m.group(1) + MASK, text)


def redact_bytes(body: bytes, token: str | None) -> bytes:
    """A raw body with the token replaced (a server may echo the request URL in an error page)."""
    if not token:
        return body
    needle = token.encode("utf-8")
    return body.replace(needle, MASK.encode("ascii")) if needle in body else body


class _RedactingFilter(logging.Filter):
    """Rewrites a record's message with `token=` values masked (never drops the record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


_FILTER = _RedactingFilter()


def install_urllib3_log_filter() -> None:
    """Attach the redacting filter to the loggers that print request lines (idempotent)."""
    for name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "requests"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
