"""PostgreSQL's binary COPY format for the trend table, built a whole span at a time with one `struct.pack`.

See docs/warehouse.md (the loader).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import date
from itertools import chain, repeat

from pgy_pipeline.warehouse.validate import Span

PG_EPOCH_ORDINAL = date(2000, 1, 1).toordinal()  # binary COPY dates are days since 2000-01-01
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header-extension length
COPY_TRAILER = b"\xff\xff"
_INT = struct.Struct(">i")


def copy_rows(span: Span, skip: int, fetch_log_id: int | None) -> bytes:
    """Binary COPY rows (kol_id, date_key, increase_type, num, fetch_log_id) for span.nums[skip:].

    Everything but the date and num is the same on every row of a span, so each row is
    <constant prefix><date><constant middle><num><constant suffix>: one struct.pack for the whole span.
    """
    kol = span.kol_id.encode()
    series = span.increase_type.encode()
    prefix = struct.pack(">hi", 5, len(kol)) + kol + _INT.pack(4)
    middle = _INT.pack(len(series)) + series + _INT.pack(8)
    suffix = struct.pack(">iq", 8, fetch_log_id) if fetch_log_id is not None else _INT.pack(-1)
    nums = span.nums[skip:]
    m = len(nums)
    first_day = span.first_ordinal + skip - PG_EPOCH_ORDINAL
    row_format = f"{len(prefix)}si{len(middle)}sq{len(suffix)}s"
    fields = zip(
        repeat(prefix, m), range(first_day, first_day + m), repeat(middle, m), nums, repeat(suffix, m), strict=True
    )
    return struct.pack(">" + row_format * m, *chain.from_iterable(fields))


def int8_array(nums: Sequence[int]) -> bytes:
    """nums in PostgreSQL's binary int8[] format (sent as a bytea-typed COPY field into a bigint[] column).

    Header: 1 dimension, no nulls, element type int8 (oid 20), length, lower bound 1; then (length 8, value)
    per element -- built by one struct.pack instead of psycopg's per-element list dumper.
    """
    n = len(nums)
    return struct.pack(f">5i{n * 'iq'}", 1, 0, 20, n, 1, *chain.from_iterable(zip(repeat(8, n), nums, strict=True)))
