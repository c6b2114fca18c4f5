"""The embedded Postgres after the command that started it: is one running under PGY_HOME, and stopping it.

`engine.embedded_url` starts the server and leaves it running on purpose, so the next command reuses it in
milliseconds. This module is how a user finds out it is there (`pgy-pipeline db status`) and ends it
(`pgy-pipeline db stop`). Both read Postgres's own `postmaster.pid`, so they need neither the server's
package nor a connection.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from pgy_pipeline.errors import PgyError

STOP_WAIT_S = 60.0


@dataclass(frozen=True)
class EmbeddedServer:
    """The embedded server of one home: where its data is, and its process and socket while it runs."""

    pgdata: Path
    pid: int | None  # None: not running
    socket_dir: str | None

    @property
    def exists(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def describe(self) -> str:
        """One line for `db status`."""
        if self.pid is not None:
            return (
                f"embedded Postgres running (pid {self.pid}) with its data in {self.pgdata}; connect with: "
                f"psql 'postgresql://postgres:@/postgres?host={self.socket_dir}'; stop it with: pgy-pipeline db stop"
            )
        if self.exists:
            return f"embedded Postgres not running; its data is in {self.pgdata} (started again on first use)"
        return f"no embedded Postgres under {self.pgdata.parent}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def embedded_server(home: Path) -> EmbeddedServer:
    """What is under `home`: the postmaster's pid and socket when one runs on `home/pgdata`."""
    pgdata = home.expanduser().resolve() / "pgdata"
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return EmbeddedServer(pgdata, None, None)
    # postmaster.pid: pid, data directory, start time, port, socket directory, listen address, ...
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    if pid is None or not _alive(pid):
        return EmbeddedServer(pgdata, None, None)
    return EmbeddedServer(pgdata, pid, lines[4] if len(lines) > 4 and lines[4] else None)


def stop_embedded(home: Path, wait_s: float = STOP_WAIT_S) -> EmbeddedServer:
    """Stop the embedded server under `home`, if one runs: Postgres's fast shutdown (SIGINT), awaited.

    Sessions still connected are disconnected and their open transactions rolled back, as `pg_ctl stop`
    does by default. Returns what was running (pid None: nothing was).
    """
    server = embedded_server(home)
    if server.pid is None:
        return server
    os.kill(server.pid, signal.SIGINT)
    deadline = time.monotonic() + wait_s
    while _alive(server.pid):
        if time.monotonic() > deadline:
            raise PgyError(f"the embedded Postgres (pid {server.pid}) did not stop within {wait_s:.0f} s")
        time.sleep(0.1)
    return server
