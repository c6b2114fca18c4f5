"""Named faults: each one small builder from the normal answer to a hostile one.

Adding a kind is one entry: `@fault("name")` on a function `FaultContext -> Reply`, or a line in
one of the tables below. Tests inject faults by name (by KOL, N times, or with a probability).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from pgy_pipeline.model import BILLED_CODES
from pgy_pipeline.simulator.wire import CODE_MESSAGES, Reply, Transport, dump, json_reply


@dataclass(frozen=True)
class FaultContext:
    """What a fault builder may use: the normal answer and a few knobs."""

    success: Callable[[int], dict[str, Any]]  # the code-0 envelope, with N extra older days
    envelope: Callable[[int | str, object], dict[str, Any]]  # any code/data, other fields filled in
    latest: str  # latest dateKey served (YYYY-MM-DD)
    today: str  # the simulator's China today
    retry_after_s: int
    slow_s: float
    request_target: str  # the request's path and query, token included (for faults that echo it)


FaultBuilder = Callable[[FaultContext], Reply]
FAULTS: dict[str, FaultBuilder] = {}


def fault(name: str) -> Callable[[FaultBuilder], FaultBuilder]:
    """Register a fault builder under `name`."""

    def register(builder: FaultBuilder) -> FaultBuilder:
        if name in FAULTS:
            raise ValueError(f"fault {name!r} registered twice")
        FAULTS[name] = builder
        return builder

    return register


def success_reply(ctx: FaultContext, extra_days: int = 0) -> Reply:
    return json_reply(ctx.success(extra_days), billed=True)


# --- business codes (HTTP 200, data null), one fault per code: code_201, code_100, ... -------------


def _code_fault(code: int) -> FaultBuilder:
    return lambda ctx: json_reply(ctx.envelope(code, None), billed=code in BILLED_CODES)


for _code in sorted(CODE_MESSAGES):
    if _code != 0:
        FAULTS[f"code_{_code}"] = _code_fault(_code)

# --- HTTP errors with a Result body, as the spec declares them --------------------------------------

_HTTP_FAULTS: dict[str, tuple[int, int]] = {  # name: (HTTP status, business code in the body)
    "http_400": (400, 400),
    "http_401": (401, 100),
    "http_403": (403, 600),
    "http_429": (429, 302),
    "http_429_quota": (429, 303),
    "http_500": (500, 500),
    "http_503": (503, 503),
}


def _http_fault(status: int, code: int) -> FaultBuilder:
    def build(ctx: FaultContext) -> Reply:
        headers = (("Retry-After", str(ctx.retry_after_s)),) if status == 429 else ()
        return json_reply(ctx.envelope(code, None), status=status, headers=headers)

    return build


for _name, (_status, _code) in _HTTP_FAULTS.items():
    FAULTS[_name] = _http_fault(_status, _code)


@fault("http_502_html")
def _bad_gateway(ctx: FaultContext) -> Reply:
    return Reply(status=502, body=b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")


@fault("html_echo")
def _html_echo(ctx: FaultContext) -> Reply:
    """A proxy error page quoting the request URL (token included): the client must redact stored bodies."""
    page = f"<html><body><h1>500</h1><p>Upstream failed for {ctx.request_target}</p></body></html>"
    return Reply(status=500, body=page.encode("utf-8"), content_type="text/html")


# --- transport ---------------------------------------------------------------------------------------


@fault("slow")
def _slow(ctx: FaultContext) -> Reply:
    """Answers correctly but later than the client's read timeout; still billed (the duplicate-charge risk)."""
    return replace(success_reply(ctx), delay_s=ctx.slow_s)


@fault("drop")
def _drop(ctx: FaultContext) -> Reply:
    return Reply(transport=Transport.DROP)


@fault("reset_mid_body")
def _reset(ctx: FaultContext) -> Reply:
    return replace(success_reply(ctx), transport=Transport.RESET_MID_BODY)


# --- malformed bodies (HTTP 200) ---------------------------------------------------------------------


@fault("html")
def _html(ctx: FaultContext) -> Reply:
    page = b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Be right back</body></html>"
    return Reply(body=page, content_type="text/html")


@fault("truncated_json")
def _truncated(ctx: FaultContext) -> Reply:
    body = dump(ctx.success(0))
    return Reply(body=body[: len(body) // 2], billed=True)


@fault("empty_body")
def _empty(ctx: FaultContext) -> Reply:
    return Reply(body=b"")


@fault("invalid_utf8")
def _invalid_utf8(ctx: FaultContext) -> Reply:
    return Reply(body=dump(ctx.success(0)).replace(b'"success"', b'"\xff\xfe\xfd"'), billed=True)


@fault("not_an_object")
def _not_object(ctx: FaultContext) -> Reply:
    return json_reply([ctx.success(0)], billed=True)


@fault("no_code")
def _no_code(ctx: FaultContext) -> Reply:
    doc = ctx.success(0)
    del doc["code"]
    return json_reply(doc, billed=True)


@fault("code_as_string")
def _code_as_string(ctx: FaultContext) -> Reply:
    """Valid: older spec versions typed code as a string."""
    return json_reply({**ctx.success(0), "code": "0"}, billed=True)


@fault("data_null")
def _data_null(ctx: FaultContext) -> Reply:
    return json_reply(ctx.envelope(0, None), billed=True)


@fault("list_not_list")
def _list_not_list(ctx: FaultContext) -> Reply:
    doc = ctx.success(0)
    doc["data"]["list"] = {"dateKey": ctx.latest, "num": 1}
    return json_reply(doc, billed=True)


def _edit_items(edit: Callable[[list[dict[str, Any]], FaultContext], None]) -> FaultBuilder:
    """A builder that changes the success answer's list items in place."""

    def build(ctx: FaultContext) -> Reply:
        doc = ctx.success(0)
        edit(doc["data"]["list"], ctx)
        return json_reply(doc, billed=True)

    return build


def _set_last(key: str, value: object) -> Callable[[list[dict[str, Any]], FaultContext], None]:
    def edit(items: list[dict[str, Any]], ctx: FaultContext) -> None:
        items[-1][key] = value

    return edit


# Item-level edits: name → edit of the list (the valid ones are there to prove they are accepted).
_ITEM_FAULTS: dict[str, Callable[[list[dict[str, Any]], FaultContext], None]] = {
    "num_bool": _set_last("num", True),
    "num_null": _set_last("num", None),
    "num_fraction": _set_last("num", 84.3),
    "num_float": _set_last("num", 8430.0),
    "num_fraction_string": _set_last("num", "84.3"),
    "num_too_big": _set_last("num", 2**63),
    "num_negative": _set_last("num", -5),
    "date_impossible": _set_last("dateKey", "2026-02-30"),
    "date_bad_format": _set_last("dateKey", "20260207"),
    "date_missing": lambda items, ctx: items[-1].pop("dateKey"),
    "date_future": lambda items, ctx: items.append({"dateKey": "2999-01-01", "num": items[-1]["num"]}),
    "duplicate_conflict": lambda items, ctx: items.append({**items[-1], "num": int(items[-1]["num"]) + 1}),
    # Valid variations the client must accept and normalise:
    "num_string": lambda items, ctx: items.__setitem__(
        slice(None), [{**item, "num": str(item["num"])} for item in items]
    ),
    "duplicate_same": lambda items, ctx: items.append(dict(items[-1])),
    "unsorted": lambda items, ctx: items.reverse(),
}
for _name, _edit in _ITEM_FAULTS.items():
    FAULTS[_name] = _edit_items(_edit)


@fault("extra_days")
def _extra_days(ctx: FaultContext) -> Reply:
    """Valid: a longer window than asked (the client keeps every day)."""
    return success_reply(ctx, extra_days=10)


# The mix used by `fault_rate` when no list is given: transient failures a run should ride out.
DEFAULT_RANDOM_FAULTS = ("code_301", "code_500", "http_503", "http_500", "code_302")


# --- more hostile kinds for the reliability tests (pgy_pipeline_tests/scenarios/test_hostile_responses.py) -----


@fault("invalid_json")
def _invalid_json(ctx: FaultContext) -> Reply:
    """Not truncated but not JSON either: single quotes and a trailing comma, as a hand-rolled serialiser writes."""
    body = dump(ctx.success(0)).replace(b'"', b"'")[:-1] + b",}"
    return Reply(body=body, billed=True)


@fault("code_999")
def _code_999(ctx: FaultContext) -> Reply:
    """A code no version of the documentation mentions (recorded verbatim, not retried)."""
    return json_reply(ctx.envelope(999, None) | {"message": "Something New"})


def _items_plus(extra: dict[str, object]) -> Callable[[list[dict[str, Any]], FaultContext], None]:
    def edit(items: list[dict[str, Any]], ctx: FaultContext) -> None:
        for item in items:
            item.update(extra)

    return edit


_MORE_ITEM_FAULTS: dict[str, Callable[[list[dict[str, Any]], FaultContext], None]] = {
    "num_missing": lambda items, ctx: items[-1].pop("num"),
    "date_slashes": lambda items, ctx: items[-1].update(dateKey=items[-1]["dateKey"].replace("-", "/")),
    "date_epoch_ms": lambda items, ctx: items[-1].update(dateKey=1772928000000),
    "empty": lambda items, ctx: items.clear(),  # code 0, no date at all
    # Valid: unknown keys on every item (the client ignores what it does not know).
    "extra_item_fields": _items_plus({"dateKeyStr": "x", "rank": 7, "meta": {"src": "pgy"}}),
}
for _name, _edit in _MORE_ITEM_FAULTS.items():
    FAULTS[_name] = _edit_items(_edit)


@fault("extra_fields")
def _extra_fields(ctx: FaultContext) -> Reply:
    """Valid: unknown keys in the envelope, in data and on every item (forward-compatible parsing)."""
    doc = ctx.success(0)
    doc["traceId"] = "abc123"
    doc["data"]["fansNumIncRank"] = 3
    for item in doc["data"]["list"]:
        item["rank"] = 7
    return json_reply(doc, billed=True)


HUGE_LIST_ITEMS = 10_000


@fault("huge_list")
def _huge_list(ctx: FaultContext) -> Reply:
    """Valid: a 10,000-item list (about 27 years of dates): the normal window plus constant older days."""
    doc = ctx.success(0)
    items: list[dict[str, Any]] = doc["data"]["list"]
    first = date.fromisoformat(items[0]["dateKey"])
    older = [
        {"dateKey": (first - timedelta(days=n)).isoformat(), "num": items[0]["num"]}
        for n in range(HUGE_LIST_ITEMS - len(items), 0, -1)
    ]
    doc["data"]["list"] = older + items
    return json_reply(doc, billed=True)


@fault("slow_body")
def _slow_body(ctx: FaultContext) -> Reply:
    """Headers and half the body at once, the rest later than the client's read timeout (billed, like `slow`)."""
    return replace(success_reply(ctx), transport=Transport.STALL_MID_BODY, stall_s=ctx.slow_s)


# --- bodies Python reads but Postgres refuses, or that exhaust a parser -----------------------------
# Each splices a literal into the success answer where no serialiser would write it: (field, literal).

_SPLICE = "@@splice@@"
_SPLICED: dict[str, tuple[str, bytes]] = {
    # Valid answers: a summary figure is unusable (a KOL with 0 fans at the window start has no rate).
    "rate_nan": ("fansNumIncRate", b"NaN"),
    "rate_infinity": ("fansNumIncRate", b"Infinity"),
    "rate_exponent_huge": ("fansNumIncRate", b"1e999999"),
    "rate_huge_int": ("fansNumIncRate", b"1" + b"0" * 400),
    "inc_beyond_bigint": ("fansNumInc", str(2**63).encode()),
    "message_nul_surrogate": ("message", b'"success\\u0000\\ud800"'),
    # Malformed answers:
    "num_nan": ("num", b"NaN"),
    "num_minus_infinity": ("num", b"-Infinity"),
    "num_huge_digits": ("num", b"9" * 5000),
    "code_beyond_integer": ("code", str(2**31).encode()),
    "deep_nesting": ("data", b"[" * 100_000 + b"]" * 100_000),
}


def _spliced(field: str, literal: bytes) -> FaultBuilder:
    def build(ctx: FaultContext) -> Reply:
        doc = ctx.success(0)
        target = doc["data"]["list"][-1] if field == "num" else doc if field in doc else doc["data"]
        target[field] = _SPLICE
        body = dump(doc).replace(f'"{_SPLICE}"'.encode(), literal)
        return Reply(body=body, billed=field != "code")

    return build


for _name, (_field, _literal) in _SPLICED.items():
    FAULTS[_name] = _spliced(_field, _literal)


@fault("echo_token_encoded")
def _echo_token_encoded(ctx: FaultContext) -> Reply:
    """An HTTP 500 JSON error quoting the token in the forms servers echo it: as sent (percent-encoded),
    decoded, with '+' decoded as a space, JSON-escaped, HTML-escaped and percent-encoded twice."""
    sent = next(p[6:] for p in urlsplit(ctx.request_target).query.split("&") if p.startswith("token="))
    token = unquote(sent)
    forms = [
        sent,
        token,
        token.replace("+", " "),
        json.dumps(token)[1:-1].replace("/", "\\/").replace("+", "\\u002B"),
        "".join(c if c.isalnum() else f"&#x{ord(c):x};" for c in token),
        quote(sent, safe=""),
    ]
    body = b'{"code":500,"message":"upstream rejected ' + " | ".join(forms).encode() + b'","data":null}'
    return Reply(status=500, body=body)


# Faults whose answer the client must accept as a normal success (valid variations of the envelope and list).
VALID_VARIANTS = frozenset(
    {"code_as_string", "num_string", "duplicate_same", "unsorted", "extra_days"}
    | {"extra_fields", "extra_item_fields", "huge_list"}
    | {name for name in _SPLICED if not name.startswith(("num_", "code_", "deep_"))}
)
