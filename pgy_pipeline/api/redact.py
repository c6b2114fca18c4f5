"""Keep the API token out of every text the pipeline produces.

The token travels as a query parameter, so anything that prints a URL leaks it. Two layers: `redact` scrubs the
token and any `token=` query value, and `install_urllib3_log_filter` rewrites urllib3's log records before any
handler sees them. A server may echo the token in other encodings (percent-, JSON-, HTML-escaped, twice), so it
is matched character by character, each character in any of those forms. See docs/api-client.md.
"""

from __future__ import annotations

import html
import logging
import re
from functools import lru_cache

MASK = "***"
_TOKEN_PARAM = re.compile(r"(?i)(token=)[^&\s'\"()<>]*")


def _char_forms(char: str) -> str:
    """A regex for one character of the token in every form a server may echo it (hex digits in any case)."""
    code = ord(char)
    forms = [
        re.escape(char),
        "".join(f"%(?:25)*{byte:02x}" for byte in char.encode("utf-8")),  # percent-encoded, once or more
        f"&#0*{code};",
        f"&#x0*{code:x};",
    ]
    if code < 0x10000:
        forms.append(f"\\\\u{code:04x}")  # JSON's \u escape
    if char == "/":
        forms.append(r"\\/")  # JSON's optional escape of '/'
    if char == "+":
        forms += [" ", "%(?:25)*20"]  # a literal '+' decoded as form data reads as a space
    escaped = html.escape(char)
    if escaped != char:
        forms.append(re.escape(escaped))
    return "(?:" + "|".join(forms) + ")"


@lru_cache(maxsize=8)
def _token_pattern(token: str) -> re.Pattern[str]:
    return re.compile("".join(_char_forms(char) for char in token), re.IGNORECASE)


@lru_cache(maxsize=8)
def _token_pattern_bytes(token: str) -> re.Pattern[bytes]:
    return re.compile(_token_pattern(token).pattern.encode("utf-8"), re.IGNORECASE)


def redact(text: str, token: str | None = None) -> str:
    """`text` with the token (if given, in any encoding) and every `token=<value>` query value replaced by ***."""
    if token:
        text = _token_pattern(token).sub(MASK, text)
    return _TOKEN_PARAM.sub(lambda m: m.group(1) + MASK, text)


def redact_bytes(body: bytes, token: str | None) -> bytes:
    """A raw body with the token replaced, in any encoding (a server may echo the request URL in an error page)."""
    if not token:
        return body
    return _token_pattern_bytes(token).sub(MASK.encode("ascii"), body)


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
