"""A local chat webhook (real HTTP on 127.0.0.1) that records what it receives and answers like the chat tool.

It answers each kind's acknowledgement (WeCom/DingTalk `{"errcode": 0}`, Feishu `{"code": 0}`, Slack
`ok`), or, when told to, the errors those tools answer: HTTP 200 with a non-zero code, or an HTTP error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACK: dict[str, tuple[int, str]] = {
    "wecom": (200, '{"errcode": 0, "errmsg": "ok"}'),
    "dingtalk": (200, '{"errcode": 0, "errmsg": "ok"}'),
    "feishu": (200, '{"code": 0, "msg": "success", "data": {}}'),
    "slack": (200, "ok"),
}
REFUSAL: dict[str, tuple[int, str]] = {  # what each tool answers a message it rejects
    "wecom": (200, '{"errcode": 93000, "errmsg": "invalid webhook url"}'),
    "dingtalk": (200, '{"errcode": 310000, "errmsg": "sign not match"}'),
    "feishu": (200, '{"code": 19021, "msg": "sign match fail or timestamp is not within one hour from current time"}'),
    "slack": (403, "invalid_token"),
}


@dataclass(frozen=True)
class Received:
    path: str
    query: dict[str, str]
    body: dict[str, Any]
    raw: str


# A webhook path per kind, as each chat hands it out (credential included, so tests can check it never leaks).
PATHS = {
    "wecom": "/cgi-bin/webhook/send?key=wecom-robot-key-0001",
    "dingtalk": "/robot/send?access_token=dingtalk-access-0001",
    "feishu": "/open-apis/bot/v2/hook/feishu-hook-0001",
    "slack": "/services/T000/B000/slack-path-secret-0001",
}


class Receiver:
    """Records every POST; `reply` is what it answers (status, body)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reply = ACK[kind]
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                url = urlsplit(self.path)
                with receiver._lock:
                    receiver.received.append(
                        Received(url.path, {k: v[0] for k, v in parse_qs(url.query).items()}, json.loads(raw), raw)
                    )
                    status, body = receiver.reply
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if receiver.kind == "slack" else "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiver(kind: str) -> Iterator[Receiver]:
    r = Receiver(kind).start()
    try:
        yield r
    finally:
        r.stop()
