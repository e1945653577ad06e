"""The agent's HTTP routes: ``POST /v1/metrics`` and ``/v1/trace`` in, ``/metrics`` and tracez out.

Served by :mod:`gotools_compat._server` on the agent port (beside gRPC) and
on the Prometheus port; the framing, limits and timeouts live there.  The
live pages (``/``, ``/debug/tracez`` and their assets, from
:mod:`gotools_compat._pages`) read ``/metrics.json`` and
``/debug/tracez.json``; ``/debug/tracez?format=table`` is the plain HTML
tables of before, for a browser without JavaScript.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Callable, List, Optional, Protocol

from gotools_compat._pages import PAGE_PATHS, asset, json_answer
from gotools_compat._promtext import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics
from gotools_compat._server import Request, Response, error_response

from . import _json, _protorequest
from ._model import BadRequest

logger = logging.getLogger(__name__)

_POST_ROUTES = ("/v1/metrics", "/v1/trace")
_GET_ROUTES = frozenset(("/metrics", "/metrics.json", "/debug/tracez.json")) | PAGE_PATHS


class App(Protocol):
    """What the routes need from the agent."""

    max_json_depth: int

    def ingest_metrics(self, node: Any, export: Any, sender: Any = None) -> Any: ...

    def ingest_spans(self, node: Any, request: Any) -> None: ...

    def metrics_parts(self, openmetrics: bool = False) -> List[bytes]: ...

    def tracez(self, as_json: bool, limit: int) -> bytes: ...

    def tracez_json(self, query: Callable[[str, str], str]) -> bytes: ...

    def page_json(self) -> bytes: ...

    def bad_request(self, peer: str, route: str, error: str) -> None: ...


class Routes:
    """The :class:`gotools_compat._server.Handler` of the agent."""

    def __init__(self, app: App) -> None:
        self.app = app

    def early(self, method: str, target: str) -> Optional[Response]:
        path = target.partition("?")[0]
        if method == "POST":
            if path not in _POST_ROUTES:
                return error_response(404, "no such endpoint: POST %s" % path)
        elif method in ("GET", "HEAD"):
            if path not in _GET_ROUTES:
                return error_response(404, "no such page: %s" % path)
        else:
            return error_response(405, "method %s not allowed" % method)
        return None

    def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return self._post(request)
        return self._get(request)

    def _post(self, request: Request) -> Response:
        binary = "protobuf" in request.headers.get("content-type", "")
        try:
            with nullcontext() if binary else _json.collector_paused():
                self._ingest(request.path, request.body, binary)
        except BadRequest as exc:
            self.app.bad_request(request.peer, request.path, str(exc))
            return error_response(400, str(exc))
        return Response(200, b"{}", [("Content-Type", "application/json")])

    def _ingest(self, route: str, body: bytes, binary: bool) -> None:
        """Read and store one body; the parsed request is freed on return."""
        app = self.app
        if route == "/v1/metrics":
            export = (_json.parse_binary_metrics(body) if binary
                      else _json.parse_metrics(body, app.max_json_depth))
            app.ingest_metrics(export.node, export)  # reads the series: BadRequest too
        else:
            request = (_protorequest.parse_message(_json.TraceRequest, body) if binary
                       else _json.parse_trace(body, app.max_json_depth))
            app.ingest_spans(request.node if request.HasField("node") else None, request)

    def _get(self, request: Request) -> Response:
        path = request.path
        if path == "/metrics":
            openmetrics = wants_openmetrics(request.headers.get("accept", ""))
            return Response(200, self.app.metrics_parts(openmetrics), [
                ("Content-Type", OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE)])
        if path == "/metrics.json":
            return _answer(json_answer(self.app.page_json()))
        view = request.query("format")
        if path == "/debug/tracez.json" or (path == "/debug/tracez" and view == "json"):
            try:
                return _answer(json_answer(self.app.tracez_json(request.query)))
            except BadRequest as exc:
                return error_response(400, str(exc))
        if path == "/debug/tracez" and view == "table":
            try:
                limit = int(request.query("limit", "50"))
            except ValueError:
                limit = 50
            return Response(200, self.app.tracez(False, limit), [
                ("Content-Type", "text/html; charset=utf-8"), ("X-Content-Type-Options",
                                                               "nosniff")])
        answer = asset(path)
        if answer is None:  # early() let only known paths through
            return error_response(404, "no such page: %s" % path)
        return _answer(answer)


def _answer(answer: Any) -> Response:
    status, headers, body = answer
    return Response(status, body, headers)
