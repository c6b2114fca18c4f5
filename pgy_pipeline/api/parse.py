"""Envelope and data validation: raw bytes → (code, message, ids) → normalised TrendPoints.

The platform's Java backend has sent numbers as strings and `code` as both an int and a string, so parsing is
tolerant about *representation* (a JSON integer or a string of ASCII digits) and strict about *meaning* (no
floats, real dates, bigint range, conflicting duplicates refused). Recomputable summaries that are unusable
become None. No body, however built, raises anything but Malformed. See docs/api-client.md (what counts as valid
data).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import wraps
from typing import ParamSpec, TypeVar

from pgy_pipeline.errors import InternalSignal
from pgy_pipeline.model import BIGINT_MAX, BIGINT_MIN, INTEGER_MAX, INTEGER_MIN, Series, TrendPoint, storable_text

_INT_STRING = re.compile(r"-?[0-9]{1,25}")
_DATE_KEY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class Malformed(InternalSignal, ValueError):
    """Internal signal: the body is not a usable envelope or trend; the message says what is wrong (no token in it)."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _contained(parse: Callable[_P, _R]) -> Callable[_P, _R]:
    """Nesting deep enough to exhaust Python's recursion limit (in json.loads, json.dumps or repr) is a
    property of the body, so it is Malformed like any other: it must not end the run that received it."""

    @wraps(parse)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return parse(*args, **kwargs)
        except RecursionError:
            raise Malformed("body nests arrays or objects too deeply to read") from None

    return guarded


def _show(value: object, limit: int = 40) -> str:
    """A body value for an error message: its repr, clipped (a hostile value may be megabytes long)."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(shown):,} characters)"


@dataclass(frozen=True)
class Envelope:
    """The fields of the `Result` envelope the pipeline records (data left unparsed)."""

    code: int
    message: str | None
    request_id: str | None
    record_time: str | None
    data: object


@dataclass(frozen=True)
class Trend:
    """A validated `data` object: points sorted by date plus the platform's own summary figures."""

    points: tuple[TrendPoint, ...]
    fans_num_inc: int | None
    fans_num_inc_rate: float | None


def parse_int(value: object) -> int | None:
    """An int from a JSON integer or a string of digits; None for anything else (see module doc)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_STRING.fullmatch(value):
        return int(value)
    return None


def _optional_text(value: object) -> str | None:
    if value is None:
        return None
    return storable_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def _non_standard_constant(_name: str) -> None:
    """NaN / Infinity are not JSON; they become null so a `num` carrying one is rejected as null."""
    return None


@_contained
def decode_envelope(body: bytes) -> Envelope:
    """The envelope of a response body, or Malformed saying why it is not one."""
    if not body:
        raise Malformed("empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_non_standard_constant)
    except json.JSONDecodeError as exc:
        snippet = text[:40].replace("\n", " ")
        raise Malformed(f"body is not JSON ({exc.msg} at char {exc.pos}; starts {snippet!r})") from None
    except ValueError as exc:  # an integer literal longer than Python converts (4,300 digits by default)
        raise Malformed(f"body holds a number too long to read ({str(exc).split(';')[0]})") from None
    if not isinstance(doc, dict):
        raise Malformed(f"body is JSON {type(doc).__name__}, not the Result envelope object")
    if "code" not in doc:
        raise Malformed("envelope has no 'code'")
    code = parse_int(doc["code"])
    if code is None:
        raise Malformed(f"envelope code {_show(doc['code'])} is not an integer")
    if not INTEGER_MIN <= code <= INTEGER_MAX:
        raise Malformed(f"envelope code {_show(code)} is out of the 32-bit integer range API codes use")
    return Envelope(
        code=code,
        message=_optional_text(doc.get("message")),
        request_id=_optional_text(doc.get("requestId")),
        record_time=_optional_text(doc.get("recordTime")),
        data=doc.get("data"),
    )


def _parse_date_key(value: object, index: int) -> date:
    if not isinstance(value, str) or not _DATE_KEY.fullmatch(value):
        raise Malformed(f"list[{index}].dateKey {_show(value)} is not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Malformed(f"list[{index}].dateKey {value!r} is not a real calendar date") from None


def _parse_num(value: object, index: int, series: Series) -> int:
    num = parse_int(value)
    if num is None:
        raise Malformed(f"list[{index}].num {_show(value)} is not an integer")
    if not BIGINT_MIN <= num <= BIGINT_MAX:
        raise Malformed(f"list[{index}].num {_show(num)} does not fit a bigint")
    if series is Series.TOTAL_FANS and num < 0:
        raise Malformed(f"list[{index}].num {num}: total fans cannot be negative")
    return num


def _rate(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        rate = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer beyond any double
        return None
    return rate if math.isfinite(rate) else None


def _bigint(value: object) -> int | None:
    number = parse_int(value)
    return number if number is not None and BIGINT_MIN <= number <= BIGINT_MAX else None


@_contained
def parse_trend(data: object, kol_id: str, series: Series, today: date) -> Trend:
    """Validate a success response's `data` into sorted, de-duplicated points for one KOL and series."""
    if not isinstance(data, dict):
        raise Malformed(f"data is {type(data).__name__}, expected an object with a 'list'")
    items = data.get("list")
    if not isinstance(items, list):
        raise Malformed(f"data.list is {type(items).__name__}, expected a list")
    by_date: dict[date, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Malformed(f"list[{index}] is {type(item).__name__}, expected an object")
        day = _parse_date_key(item.get("dateKey"), index)
        if day > today:
            raise Malformed(f"list[{index}].dateKey {day} is after today ({today}, Asia/Shanghai)")
        num = _parse_num(item.get("num"), index, series)
        seen = by_date.setdefault(day, num)
        if seen != num:
            raise Malformed(f"dateKey {day} appears twice with different nums ({seen} and {num})")
    increase_type = series.value
    points = tuple(TrendPoint(kol_id, day, increase_type, by_date[day]) for day in sorted(by_date))
    return Trend(points, _bigint(data.get("fansNumInc")), _rate(data.get("fansNumIncRate")))
