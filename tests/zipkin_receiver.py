"""A small, real Zipkin v2 receiver for the tests: ``POST /api/v2/spans`` on 127.0.0.1.

Use it as a context manager; :attr:`url` is where to send, :meth:`wait_for`
waits for spans and checks every request had the path and content type that
Zipkin's API asks for.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, List, Tuple

PATH = "/api/v2/spans"


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        receiver = self.server.receiver
        with receiver._lock:
            receiver.requests.append((self.path, self.headers.get("Content-Type", "")))
            receiver.received.extend(json.loads(body))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(HTTPServer):
    receiver: "Receiver"


class Receiver:
    def __init__(self) -> None:
        self.received: List[Any] = []  # every span, as JSON
        self.requests: List[Tuple[str, str]] = []  # (path, content type) of each POST
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self.url = "http://127.0.0.1:%d%s" % (self._server.server_address[1], PATH)

    def __enter__(self) -> "Receiver":
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, n: int, timeout: float = 10.0) -> List[Any]:
        """At least ``n`` spans, sent as Zipkin's API asks."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.received)
            if len(spans) >= n:
                break
            assert time.monotonic() < deadline, spans
            time.sleep(0.02)
        assert all(r == (PATH, "application/json") for r in self.requests), self.requests
        return spans
