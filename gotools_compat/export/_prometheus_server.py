"""The HTTP endpoint of ``export.prometheus``: the live page at ``/``, metrics on other paths.

``/`` is the live page (:mod:`gotools_compat._pages`), ``/metrics.json`` its
data and ``/_pages/...`` its assets; ``/debug/tracez`` and
``/debug/tracez.json`` the spans of this process, once the exporter keeps
them (:func:`._prometheus_pages.tracez_answer`); every other GET or HEAD
path is the metrics, as Go's ``Serve(w, r)`` (``/metrics`` by convention).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Hashable, List, Optional, Protocol, Tuple

from gotools_compat import _server
from gotools_compat._pages import DEFAULT_INTERVAL, PAGE_PATHS, asset, json_answer

from ._prometheus_pages import TRACEZ_PATHS, PageData, Shown, tracez_answer

#: The bounds of :meth:`Exporter.serve` (connections, timeouts, sizes).
Limits = _server.Limits
# serve(): scrapes carry no body; two handler threads, whatever the number of scrapers.
SERVE_LIMITS = Limits(max_body_bytes=64 * 1024, workers=2)
_VARIANTS = 16  # renderings kept, one per (Accept, Accept-Encoding)


class Scrapable(Shown, Protocol):
    """What the endpoint needs of the exporter."""

    def respond(self, accept: str = "", accept_encoding: str = ""
                ) -> Tuple[int, List[Tuple[str, str]], bytes]: ...


class _Routes:
    """``/`` the page, ``/metrics.json`` its data, every other GET or HEAD path the metrics.

    Scrapes that arrive together share a rendering: a request is answered
    with the newest rendering that *started* after the request had arrived
    (so it shows everything recorded before it), and only renders anew when
    there is none.  Fifty scrapers at once then cost the application one
    rendering per round, not fifty.
    """

    def __init__(self, exporter: Scrapable, page_interval: float = DEFAULT_INTERVAL) -> None:
        self.exporter = exporter
        self.pages = PageData(exporter, page_interval)
        self._lock = threading.Lock()
        # (accept, accept-encoding) -> (when its rendering started, the answer)
        self._latest: Dict[Tuple[str, str], Tuple[float, Tuple[int, List[Tuple[str, str]],
                                                                bytes]]] = {}

    def early(self, method: str, target: str) -> Optional[_server.Response]:
        if method in ("GET", "HEAD"):
            return None
        return _server.error_response(405, "method %s not allowed: GET /metrics" % method)

    def share_key(self, request: _server.Request) -> Optional[Hashable]:
        """Scrapes waiting together share one rendering (see :mod:`gotools_compat._server.jobs`)."""
        path = request.path
        if path == "/metrics.json":
            return path
        if path in PAGE_PATHS or path.startswith(("/debug/", "/_pages/")):
            return None  # cheap, or an answer of its own per query
        return ("metrics", request.headers.get("accept", ""),
                request.headers.get("accept-encoding", ""))

    def handle(self, request: _server.Request) -> _server.Response:
        path = request.path
        if path in TRACEZ_PATHS:
            traced = tracez_answer(self.exporter, path, request.query, self.pages.interval)
            if traced is not None:  # (None: no spans kept, the metrics as on any path)
                return _server.Response(traced[0], traced[2], traced[1])
        if path in PAGE_PATHS or path == "/metrics.json":
            answer = json_answer(self.pages.json()) if path == "/metrics.json" else asset(path,
                                                                                         False)
            if answer is not None:  # (None: /debug/tracez, when no spans are kept)
                return _server.Response(answer[0], answer[2], answer[1])
        key = (request.headers.get("accept", ""), request.headers.get("accept-encoding", ""))
        with self._lock:
            latest = self._latest.get(key)
        if latest is not None and latest[0] >= request.received:
            status, headers, body = latest[1]
        else:
            started = time.monotonic()
            status, headers, body = answer = self.exporter.respond(*key)
            with self._lock:
                if len(self._latest) >= _VARIANTS and key not in self._latest:
                    self._latest.clear()  # clients with ever new Accept headers
                latest = self._latest.get(key)
                if latest is None or latest[0] < started:
                    self._latest[key] = (started, answer)
        return _server.Response(status, body, headers)


class Server:
    """A running metrics endpoint; ``stop()`` (or leaving a ``with`` block) ends it.

    It runs on one event loop thread and ``limits.workers`` handler threads,
    whatever the number of clients; ``limits`` bounds connections (by default
    a quarter of the process's open-files limit, at most 256, so that the
    application keeps the rest), their phases' times and request sizes (see
    :class:`gotools_compat._server.Limits`).
    """

    def __init__(self, exporter: Scrapable, addr: str, port: int,
                 limits: Optional[_server.Limits] = None,
                 page_interval: float = DEFAULT_INTERVAL) -> None:
        if not page_interval > 0:
            raise ValueError("page_interval must be positive")
        server = _server.Server(_Routes(exporter, page_interval), limits or SERVE_LIMITS,
                                name="gotools_compat-prometheus")
        self.address: str = addr
        self.port: int = server.listen(addr, port)
        server.start()
        self._server = server
        self._stopped = False

    @property
    def url(self) -> str:
        host = "[%s]" % self.address if ":" in self.address else self.address
        return "http://%s:%d/metrics" % (host, self.port)

    @property
    def page_url(self) -> str:
        """The live page of this server's metrics (``/``)."""
        return self.url[:-len("metrics")]

    @property
    def tracez_url(self) -> str:
        """The spans of this process (``/debug/tracez``; see ``Exporter.process_event``)."""
        return self.page_url + "debug/tracez"

    @property
    def counters(self) -> _server.Counters:
        """How often each bound was hit (``counters.get("max_connections")``...)."""
        return self._server.counters

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call again."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stop()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "prometheus.Server(%r%s)" % (self.url, ", stopped" if self._stopped else "")
