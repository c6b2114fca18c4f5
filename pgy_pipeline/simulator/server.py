"""The simulator's HTTP layer: a stdlib threading server on loopback that sends what the app decides.

Kept separate from the API logic (`app.py`) so the wire tricks — keep-alive, latency, dropped
connections, resets mid-body — live in one place. Request lines are never logged: they carry the token.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pgy_pipeline.simulator.wire import Reply, Transport, dump

log = logging.getLogger(__name__)

Answer = Callable[[str], tuple[Reply, float]]  # path with query → (reply, latency to add)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow answer never blocks shutdown
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], answer: Answer) -> None:
        self.answer = answer
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def drop_open_connections(self) -> None:
        """Cut every kept-alive connection, as a crashed or stopped server would (clients see a reset)."""
        with self.connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):  # already closed by its handler
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is expected here; anything else is a simulator bug.
        if not isinstance(sys.exc_info()[1], OSError):
            log.exception("simulator request failed")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pooled connections are reused
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default prints the request line, which contains the token."""

    def do_GET(self) -> None:
        try:
            reply, latency_s = self.server.answer(self.path)
        except Exception:
            log.exception("simulator could not answer a request")
            reply, latency_s = Reply(status=500, body=dump({"code": 500, "message": "simulator bug", "data": None})), 0
        wait = latency_s + reply.delay_s
        if wait > 0:
            time.sleep(wait)
        if reply.transport is Transport.DROP:
            self.close_connection = True
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        if reply.transport is Transport.STALL_MID_BODY:
            half = len(reply.body) // 2
            self.wfile.write(reply.body[:half])
            self.wfile.flush()
            time.sleep(reply.stall_s)
            self.wfile.write(reply.body[half:])  # the client may have given up: OSError, ignored by handle_error
            return
        if reply.transport is Transport.RESET_MID_BODY:
            self.wfile.write(reply.body[: len(reply.body) // 2])
            self.wfile.flush()
            # SO_LINGER 0: close() sends a TCP reset instead of a clean FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.wfile.write(reply.body)


class HttpServer:
    """A running server on `host`:`port` (0 = an ephemeral port) in a daemon thread."""

    def __init__(self, host: str, port: int, answer: Answer) -> None:
        self._server = _Server((host, port), answer)
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="pgy-simulator", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        """Stop listening AND cut open keep-alive connections: a stopped API must not keep answering
        on the client's pooled connections (the "API went away mid-run" tests rely on it)."""
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_open_connections()
        self._thread.join(timeout=5)
