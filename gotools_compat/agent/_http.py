"""HTTP/1.1: ``POST /v1/metrics`` and ``/v1/trace`` in, ``/metrics`` and tracez out.

The same handler serves connections the mux hands over on the agent port and
the separate Prometheus port.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, List, Optional, Protocol
from urllib.parse import parse_qs, urlsplit

from . import _json, _lean
from ._model import BadRequest
from ._render import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics

logger = logging.getLogger(__name__)

# A refused body up to this size is read away before the 413 (see _discard).
_DISCARD_MAX = 64 * 1024 * 1024


class App(Protocol):
    """What the handler needs from the agent."""

    max_message_bytes: int

    def ingest_metrics(self, node: Any, export: Any, sender: Any = None) -> Any: ...

    def ingest_spans(self, node: Any, request: Any) -> None: ...

    def metrics_text(self, openmetrics: bool = False) -> bytes: ...

    def tracez(self, as_json: bool, limit: int) -> bytes: ...


class Holder:
    """The ``server`` object a handler sees on mux connections."""

    def __init__(self, app: App) -> None:
        self.app = app


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Any, app: App) -> None:
        self.app = app
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Garbage gets a real "HTTP/1.0 400" status line, not an HTTP/0.9 bare body.
    default_request_version = "HTTP/1.0"
    server_version = "gotools-agent"
    timeout = 300  # idle keep-alive connections end after five minutes
    # Buffered writes, no Nagle: the status line, headers and body leave in one
    # segment instead of two, the second of which Nagle's algorithm held back
    # until the client's delayed ACK (40 ms per request on Linux).
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, message: str, close: bool = False) -> None:
        if close:
            self.close_connection = True
        self._send(code, json.dumps({"error": message}).encode("utf-8") + b"\n")

    def _body(self, limit: int) -> Optional[bytes]:
        """The request body, or None after answering an error."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._error(411, "Content-Length required", close=True)
            return None
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError(length_text)
        except ValueError:
            self._error(400, "invalid Content-Length %r" % length_text, close=True)
            return None
        if length > limit:
            logger.warning("%s: request of %d bytes refused (limit %d bytes)",
                           self.address_string(), length, limit)
            self._discard(length)
            self._error(413, "request body of %d bytes exceeds the limit of %d bytes "
                        "(--max-message-bytes)" % (length, limit), close=True)
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None  # the client went away mid-body
        return body

    def _discard(self, length: int) -> None:
        """Read away a refused body, up to _DISCARD_MAX bytes.

        Closing a connection with unread input makes the kernel reset it, and
        the client then may lose our 413 before it reads it.
        """
        left = min(length, _DISCARD_MAX)
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)

    def _chunked(self, limit: int) -> Optional[bytes]:
        parts: List[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self._error(400, "invalid chunked body", close=True)
                return None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                self._error(413, "request body exceeds the limit of %d bytes "
                            "(--max-message-bytes)" % limit, close=True)
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def do_POST(self) -> None:
        app: App = self.server.app  # type: ignore[attr-defined]
        route = urlsplit(self.path).path
        if route not in ("/v1/metrics", "/v1/trace"):
            self._error(404, "no such endpoint: POST %s" % route, close=True)
            return
        body = self._body(app.max_message_bytes)
        if body is None:
            return
        binary = "protobuf" in self.headers.get("Content-Type", "")
        try:
            with nullcontext() if binary else _json.collector_paused():
                self._ingest(app, route, body, binary)
        except BadRequest as exc:
            logger.warning("%s: POST %s refused: %s", self.address_string(), route, exc)
            self._error(400, str(exc))
            return
        self._send(200, b"{}")

    @staticmethod
    def _ingest(app: App, route: str, body: bytes, binary: bool) -> None:
        """Read and store one body; the parsed request is freed on return."""
        if route == "/v1/metrics":
            export = (_json.parse_binary_metrics(body) if binary
                      else _json.parse_metrics(body))
            app.ingest_metrics(export.node, export)  # reads the series: BadRequest too
        else:
            request = (_lean.parse_message(_json.TraceRequest, body) if binary
                       else _json.parse_trace(body))
            app.ingest_spans(request.node if request.HasField("node") else None, request)

    def do_GET(self) -> None:
        app: App = self.server.app  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        if parts.path == "/metrics":
            openmetrics = wants_openmetrics(self.headers.get("Accept", ""))
            self._send(200, app.metrics_text(openmetrics),
                       OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE)
        elif parts.path in ("/debug/tracez", "/debug/tracez.json"):
            as_json = parts.path.endswith(".json") or query.get("format") == ["json"]
            try:
                limit = int(query.get("limit", ["100"])[0])
            except ValueError:
                limit = 100
            self._send(200, app.tracez(as_json, limit),
                       "application/json" if as_json else "text/html; charset=utf-8")
        elif parts.path == "/":
            self._send(200, b"gotools-agent: POST /v1/metrics, POST /v1/trace, gRPC "
                       b"(OpenCensus agent protocol); GET /metrics, /debug/tracez\n",
                       "text/plain; charset=utf-8")
        else:
            self._error(404, "no such page: %s" % parts.path)

    do_HEAD = do_GET
