"""What the simulator sends: the platform's code messages, one reply (status, body, pacing, transport) and JSON bodies.

`server.py` puts a `Reply` on the wire; `app.py` and `faults.py` decide which one. See docs/api-client.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

# Messages as the platform's code reference spells them (seed page); undocumented ones invented.
CODE_MESSAGES: dict[int, str] = {
    0: "success",
    100: "Invalid or Inactive Token",
    101: "Token Disabled",
    201: "No Content",
    202: "Processing",
    300: "Collection Error",
    301: "Collection Failed. Please Retry.",
    302: "Rate Limit Exceeded",
    303: "Daily Quota Exceeded",
    400: "Invalid Parameters",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
    600: "Permission Denied",
    601: "Insufficient Balance",
    602: "Account Suspended",
}


class Transport(Enum):
    RESPOND = "respond"
    DROP = "drop"  # close the connection without sending a byte
    RESET_MID_BODY = "reset_mid_body"  # send headers and half the body, then reset the connection
    STALL_MID_BODY = "stall_mid_body"  # send headers and half the body, wait `stall_s`, then the rest


@dataclass(frozen=True)
class Reply:
    """What the server sends for one request."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json;charset=UTF-8"
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0  # extra wait before answering (on top of the configured latency)
    transport: Transport = Transport.RESPOND
    billed: bool = False  # the platform charges codes 0 and 201
    stall_s: float = 0.0  # STALL_MID_BODY: the pause between the two halves of the body


def dump(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_reply(doc: object, *, status: int = 200, billed: bool = False, **kw: Any) -> Reply:
    return replace(Reply(status=status, body=dump(doc), billed=billed), **kw)
