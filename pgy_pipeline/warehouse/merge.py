"""The server-side half of the loader: diff staged spans against pgy.kol_fans_trend and write only changes.

Works inside the loader's transaction, after the staging COPY into the temp table `pgy_stage_span`
(one row per span of consecutive dates of one series with its nums as an int8[]; see load.py).
Every statement here is set-based; the only per-span work is one index range scan of the stored rows, done
per batch (check_batch) so that it overlaps the validation of the next batch in the loader's thread.
"""

from __future__ import annotations

from typing import NamedTuple

from pgy_pipeline.errors import InternalSignal
from pgy_pipeline.warehouse.engine import PgConnection

# This transaction's xid as an `xid` (what xmin is): rows we COPY-inserted earlier in this load.
# The xid8 -> xid cast keeps the low 32 bits (PostgreSQL 13 on). Going through text instead breaks once the
# cluster's xid epoch is 1 or more: from PostgreSQL 16, `xid` input refuses values above 2^32.
_MY_XID = "(SELECT pg_current_xact_id()::xid)"

# Where the differing spans collect: the stage's columns plus a flag; created right after the stage
# (pgy_stage_span must exist), filled batch by batch (see check_batch).
DIFF_DDL = """
CREATE TEMP TABLE pgy_stage_diff (LIKE pgy_stage_span, overlapping boolean NOT NULL) ON COMMIT DROP
"""

# Spans of one batch that cannot be skipped: a stored row of their dates has another num (checked by array
# subscript, which needs no sort), or some of those rows are missing, or some were inserted by this load
# (duplicates to collapse or conflicts to reject). Exact when done per batch: rows this load inserts later
# are all newer than any date staged earlier, and stored nums change only in the final merge.
_CHECK_BATCH = f"""
INSERT INTO pgy_stage_diff
SELECT r.seq, r.kol_id, r.increase_type, r.first_date, r.n, r.nums, r.fetch_log_id, false
  FROM pgy_stage_span r
  LEFT JOIN LATERAL (
        SELECT count(*) AS n,
               bool_and(t.num = r.nums[t.date_key - r.first_date + 1]) AS same,
               bool_or(t.xmin = {_MY_XID}) AS mine
          FROM pgy.kol_fans_trend t
         WHERE t.kol_id = r.kol_id AND t.increase_type = r.increase_type
           AND t.date_key >= r.first_date AND t.date_key < r.first_date + r.n
       ) stored ON true
 WHERE r.seq > %s AND (stored.n <> r.n OR NOT stored.same OR stored.mine)
"""

# Spans that overlap another staged span of the same series also need a row-level look (possible conflict).
# Window functions over the spans sorted by date within their series find them: a span overlaps an earlier
# one iff some earlier span ends after it starts, and a later one iff the next span starts before it ends.
_FIND_OVERLAPS = """
CREATE TEMP TABLE pgy_stage_overlap ON COMMIT DROP AS
SELECT seq FROM (
    SELECT r.seq,
           coalesce(max(r.first_date + r.n) OVER before_me > r.first_date, false)
           OR coalesce(lead(r.first_date) OVER by_date < r.first_date + r.n, false) AS overlapping
      FROM pgy_stage_span r
    WINDOW by_date AS (PARTITION BY r.kol_id, r.increase_type ORDER BY r.first_date, r.seq),
           before_me AS (by_date ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
) flagged
 WHERE overlapping
"""

_MARK_OVERLAPS = (
    "UPDATE pgy_stage_diff SET overlapping = true WHERE seq IN (SELECT seq FROM pgy_stage_overlap)",
    """
    INSERT INTO pgy_stage_diff
    SELECT r.seq, r.kol_id, r.increase_type, r.first_date, r.n, r.nums, r.fetch_log_id, true
      FROM pgy_stage_span r
     WHERE r.seq IN (SELECT seq FROM pgy_stage_overlap)
       AND r.seq NOT IN (SELECT seq FROM pgy_stage_diff)
    """,
)

# The points of the differing spans that need a row-level look: every point of a span that overlaps another
# staged span (conflicts between spans are judged on all their points), and otherwise only the points whose
# stored row is missing, has another num, or was inserted by this load (one index probe per point of a
# differing span; a 1 % restatement touches about half the spans but only 1 % of the points comes out).
_EXPAND = f"""
CREATE TEMP TABLE pgy_stage_row ON COMMIT DROP AS
SELECT d.kol_id, d.first_date + (u.i - 1)::integer AS date_key, d.increase_type, u.num, d.fetch_log_id, d.seq
  FROM pgy_stage_diff d, unnest(d.nums) WITH ORDINALITY AS u(num, i)
 WHERE d.overlapping
UNION ALL
SELECT d.kol_id, x.date_key, d.increase_type, x.num, d.fetch_log_id, d.seq
  FROM pgy_stage_diff d
 CROSS JOIN LATERAL (
        SELECT d.first_date + (u.i - 1)::integer AS date_key, u.num
          FROM unnest(d.nums) WITH ORDINALITY AS u(num, i)
          LEFT JOIN pgy.kol_fans_trend t
            ON t.kol_id = d.kol_id AND t.increase_type = d.increase_type
           AND t.date_key = d.first_date + (u.i - 1)::integer
         WHERE t.num IS DISTINCT FROM u.num OR t.xmin = {_MY_XID}
       ) x
 WHERE NOT d.overlapping
"""

_CONFLICT_IN_STAGE = """
SELECT kol_id, date_key, increase_type, array_agg(DISTINCT num ORDER BY num)
  FROM pgy_stage_row
 GROUP BY kol_id, date_key, increase_type
HAVING count(DISTINCT num) > 1
 LIMIT 1
"""

_CONFLICT_WITH_DIRECT = f"""
SELECT r.kol_id, r.date_key, r.increase_type, ARRAY[t.num, r.num]
  FROM pgy_stage_row r
  JOIN pgy.kol_fans_trend t USING (kol_id, date_key, increase_type)
 WHERE t.xmin = {_MY_XID} AND t.num <> r.num
 LIMIT 1
"""

# One row per distinct key; the latest staged fetch wins the provenance when duplicates collapse.
_DISTINCT_KEYS = """
CREATE TEMP TABLE pgy_stage_key ON COMMIT DROP AS
SELECT DISTINCT ON (kol_id, date_key, increase_type) kol_id, date_key, increase_type, num, fetch_log_id
  FROM pgy_stage_row
 ORDER BY kol_id, date_key, increase_type, seq DESC
"""

_COUNT_MINE = f"""
SELECT count(*) FROM pgy_stage_key k
  JOIN pgy.kol_fans_trend t USING (kol_id, date_key, increase_type)
 WHERE t.xmin = {_MY_XID}
"""

_WRITE_REVISIONS = """
INSERT INTO pgy.kol_fans_trend_revision (kol_id, date_key, increase_type, old_num, new_num, fetch_log_id)
SELECT k.kol_id, k.date_key, k.increase_type, t.num, k.num, k.fetch_log_id
  FROM pgy_stage_key k
  JOIN pgy.kol_fans_trend t USING (kol_id, date_key, increase_type)
 WHERE t.num <> k.num
 ORDER BY k.kol_id, k.increase_type, k.date_key
"""

_UPDATE_CHANGED = """
UPDATE pgy.kol_fans_trend t
   SET num = k.num, fetch_log_id = k.fetch_log_id
  FROM pgy_stage_key k
 WHERE t.kol_id = k.kol_id AND t.date_key = k.date_key AND t.increase_type = k.increase_type
   AND t.num <> k.num
"""

_INSERT_MISSING = """
INSERT INTO pgy.kol_fans_trend (kol_id, date_key, increase_type, num, fetch_log_id)
SELECT k.kol_id, k.date_key, k.increase_type, k.num, k.fetch_log_id
  FROM pgy_stage_key k
 WHERE NOT EXISTS (SELECT 1 FROM pgy.kol_fans_trend t
                    WHERE t.kol_id = k.kol_id AND t.date_key = k.date_key AND t.increase_type = k.increase_type)
 ORDER BY k.kol_id, k.increase_type, k.date_key
"""


class LoadCounts(NamedTuple):
    """What a load did, per distinct key: new rows, rows whose num changed (one revision each), rows left alone."""

    inserted: int
    updated: int
    unchanged: int


class MergeConflict(InternalSignal):
    """Internal signal: one key staged with two different nums (the loader turns it into LoadRejected)."""

    def __init__(self, key: tuple[str, object, str], nums: list[int]) -> None:
        kol_id, date_key, increase_type = key
        super().__init__(
            f"key (kol_id={kol_id!r}, date_key={date_key}, increase_type={increase_type!r}) appears more than once "
            f"in this load with different nums {nums}; nothing was loaded"
        )


def _scalar(conn: PgConnection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def check_batch(conn: PgConnection, after_seq: int) -> None:
    """Collect the differing spans among those staged after `after_seq` (while the next batch is validated)."""
    conn.execute(_CHECK_BATCH, (after_seq,))


def merge_staged(conn: PgConnection) -> LoadCounts:
    """Apply the staged spans; raise MergeConflict (caller rolls back) when a key has two different nums."""
    staged = _scalar(conn, "SELECT sum(n) FROM pgy_stage_span")
    conn.execute(_FIND_OVERLAPS)
    for statement in _MARK_OVERLAPS:
        conn.execute(statement)
    if _scalar(conn, "SELECT count(*) FROM pgy_stage_diff") == 0:
        return LoadCounts(0, 0, staged)
    conn.execute(_EXPAND)
    conn.execute("ANALYZE pgy_stage_row")
    differing = _scalar(conn, "SELECT count(*) FROM pgy_stage_row")  # points not skipped as unchanged
    for check in (_CONFLICT_IN_STAGE, _CONFLICT_WITH_DIRECT):
        conflict = conn.execute(check).fetchone()
        if conflict is not None:
            raise MergeConflict((conflict[0], conflict[1], conflict[2]), list(conflict[3]))
    conn.execute(_DISTINCT_KEYS)
    conn.execute("ANALYZE pgy_stage_key")
    keys = _scalar(conn, "SELECT count(*) FROM pgy_stage_key")
    collapsed_into_mine = _scalar(conn, _COUNT_MINE)
    updated = conn.execute(_WRITE_REVISIONS).rowcount
    conn.execute(_UPDATE_CHANGED)
    inserted = conn.execute(_INSERT_MISSING).rowcount
    unchanged = (staged - differing) + (keys - collapsed_into_mine - updated - inserted)
    return LoadCounts(inserted, updated, unchanged)
