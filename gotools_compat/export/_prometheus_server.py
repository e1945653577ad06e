"""The HTTP endpoint of ``export.prometheus``: every GET or HEAD path is the metrics."""

from __future__ import annotations

from typing import Any, List, Optional, Protocol, Tuple

from gotools_compat import _server

#: The bounds of :meth:`Exporter.serve` (connections, timeouts, sizes).
Limits = _server.Limits
# serve(): scrapes carry no body; two handler threads, whatever the number of scrapers.
SERVE_LIMITS = Limits(max_body_bytes=64 * 1024, workers=2)


class Scrapable(Protocol):
    """What the endpoint needs of the exporter."""

    def respond(self, accept: str = "", accept_encoding: str = ""
                ) -> Tuple[int, List[Tuple[str, str]], bytes]: ...


class _Routes:
    """Every GET or HEAD path is the metrics (as Go's ``Serve(w, r)``); nothing else is."""

    def __init__(self, exporter: Scrapable) -> None:
        self.exporter = exporter

    def early(self, method: str, target: str) -> Optional[_server.Response]:
        if method in ("GET", "HEAD"):
            return None
        return _server.error_response(405, "method %s not allowed: GET /metrics" % method)

    def handle(self, request: _server.Request) -> _server.Response:
        status, headers, body = self.exporter.respond(
            request.headers.get("accept", ""), request.headers.get("accept-encoding", ""))
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
                 limits: Optional[_server.Limits] = None) -> None:
        server = _server.Server(_Routes(exporter), limits or SERVE_LIMITS,
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
