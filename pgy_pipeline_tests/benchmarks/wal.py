"""WAL bytes written for ONE database, so benchmarks on a shared server measure their own writes only.

`pg_current_wal_lsn()` differences count every session of the cluster: on a server where other tests
create databases, a phase of a few megabytes can be reported as tens. With the pg_walinspect extension
(PostgreSQL 15+, superuser to install) the meter sums the WAL records that touch this database's relations
(`record_length`, full-page images included), holding the WAL with a temporary replication slot while it
is measured (a checkpoint by another session must not recycle it first). Without them it falls back to
the LSN difference and says so (`scope`: "database" or "cluster"), so a reader knows what the figure means.
"""

from __future__ import annotations

import contextlib

import psycopg

from pgy_pipeline.warehouse.engine import PgConnection

# Per table (an index counts for its table; "?" for relations since dropped or truncated), from each record's
# first block reference "blkref #0: rel <tablespace>/<database>/<relfilenode> ..." (read with a pattern: with
# wal_compression on, a compressed image's details change what follows it).
_RECORDS = """
SELECT coalesce(t.relname, c.relname, '?'), sum(w.record_length)::bigint, sum(w.fpi_length)::bigint
  FROM pg_get_wal_records_info(%s::pg_lsn, pg_current_wal_flush_lsn()) AS w
  LEFT JOIN pg_class c ON c.relfilenode = substring(w.block_ref FROM 'rel [0-9]+/[0-9]+/([0-9]+)')::oid
  LEFT JOIN pg_index i ON i.indexrelid = c.oid
  LEFT JOIN pg_class t ON t.oid = i.indrelid
 WHERE w.block_ref LIKE %s
 GROUP BY 1
"""
_LSN_DIFF = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint"


class WalMeter:
    """Measures WAL written between `start()` and `since()` on the database of `conn` (autocommit)."""

    def __init__(self, conn: PgConnection) -> None:
        self.conn = conn
        self.scope = "cluster"
        self._slot = f"pgy_bench_wal_{conn.info.backend_pid}"
        self.last_fpi_bytes: int | None = None  # full-page images in the last measurement (scope "database")
        with contextlib.suppress(psycopg.Error):
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true, true)", (self._slot,))
            conn.execute("SELECT pg_drop_replication_slot(%s)", (self._slot,))
            self.scope = "database"
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()
        self._pattern = f"%/{row[0]}/%" if row else "%"

    def start(self) -> str:
        """The current WAL position (with scope "database", WAL from here on is kept until `since()`)."""
        if self.scope == "database":
            self.conn.execute("SELECT pg_create_physical_replication_slot(%s, true, true)", (self._slot,))
        return str(self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]

    def since(self, start: str) -> int:
        """Bytes of WAL since `start`: this database's records, or everything (scope "cluster")."""
        return sum(self.by_table(start).values())

    def by_table(self, start: str) -> dict[str, int]:
        """WAL bytes since `start` per table (indexes included); one entry "*" with scope "cluster"."""
        if self.scope != "database":
            return {"*": int(self.conn.execute(_LSN_DIFF, (start,)).fetchone()[0])}  # type: ignore[index]
        try:
            rows = self.conn.execute(_RECORDS, (start, self._pattern)).fetchall()
        finally:
            self.conn.execute("SELECT pg_drop_replication_slot(%s)", (self._slot,))
        self.last_fpi_bytes = sum(int(fpi) for _, _, fpi in rows)
        return {str(table): int(size) for table, size, _ in rows}
