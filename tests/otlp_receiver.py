"""A small, real OTLP/HTTP metrics and traces receiver for the tests.

An ``http.server`` on 127.0.0.1 (port 0) that takes ``POST /v1/metrics``
and ``POST /v1/traces`` bodies (binary protobuf, gzip or not), decodes them
with the ``opentelemetry-proto`` messages and keeps every request (metrics
in the receiver itself, traces in its :attr:`Receiver.traces`).  It can be told to
fail (``fail_status``: answer with that status) or be stopped and started
again on the same port, to play an outage.
"""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PATH = "/v1/metrics"
TRACES_PATH = "/v1/traces"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        receiver = self.server.receiver
        if receiver.fail_status:
            receiver._note_failure()
            self._answer(receiver.fail_status, b"")
            return
        if self.path not in (PATH, TRACES_PATH):
            self._answer(404, b"")
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == TRACES_PATH:
            receiver.traces._add(ExportTraceServiceRequest.FromString(body),
                                 dict(self.headers.items()))
            self._answer(200, ExportTraceServiceResponse().SerializeToString())
            return
        request = ExportMetricsServiceRequest.FromString(body)
        receiver._add(request, dict(self.headers.items()))
        self._answer(200, ExportMetricsServiceResponse().SerializeToString())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    receiver: "Receiver"


class Kept:
    """The requests a receiver took, and its refusals, with waits on both; its port.

    Shared by this receiver and the OTLP/gRPC one (:mod:`tests.otlp_grpc_receiver`).
    """

    def __init__(self) -> None:
        self.requests: List[Any] = []  # ExportMetricsServiceRequest (traces: ...Trace...)
        self.headers: List[Dict[str, str]] = []
        self.failures = 0
        self._cond = threading.Condition()
        self._port = 0  # once started: kept across a stop, to start again on it

    @property
    def port(self) -> int:
        assert self._port
        return self._port

    def _add(self, request: ExportMetricsServiceRequest, headers: Dict[str, str]) -> None:
        with self._cond:
            self.requests.append(request)
            self.headers.append(headers)
            self._cond.notify_all()

    def _note_failure(self) -> None:
        with self._cond:
            self.failures += 1
            self._cond.notify_all()

    def wait_for(self, count: int, deadline: float = 10.0) -> List[Any]:
        """The first ``count`` requests, once they are in (AssertionError after ``deadline``)."""
        end = time.monotonic() + deadline
        with self._cond:
            while len(self.requests) < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%d requests arrived, %d expected"
                                         % (len(self.requests), count))
                self._cond.wait(left)
            return list(self.requests[:count])

    def wait_for_failures(self, count: int, deadline: float = 10.0) -> None:
        end = time.monotonic() + deadline
        with self._cond:
            while self.failures < count:
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%d failures seen, %d expected"
                                         % (self.failures, count))
                self._cond.wait(left)


class Receiver(Kept):
    """Start with :meth:`start`; :attr:`endpoint` is then the URL to export to.

    ``fail_status`` fails both paths; failures are counted here.
    """

    def __init__(self) -> None:
        super().__init__()
        self.traces = Kept()  # the ExportTraceServiceRequests taken on /v1/traces
        self.fail_status = 0
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Receiver":
        """Serve; after a :meth:`stop`, on the port it had before."""
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.receiver = self
        self._port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def endpoint(self) -> str:
        return "http://127.0.0.1:%d%s" % (self.port, PATH)

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def find_metric(request: ExportMetricsServiceRequest, name: str) -> Tuple[Any, Any]:
    """(resource, metric) of the metric called ``name`` in ``request``."""
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    return rm.resource, m
    raise AssertionError("no metric %r in the request" % name)


def spans_of(requests: List[Any]) -> List[Tuple[Any, Any]]:
    """(resource, span) of every span in ``requests`` (ExportTraceServiceRequests), in order."""
    return [(rs.resource, span) for request in requests for rs in request.resource_spans
            for ss in rs.scope_spans for span in ss.spans]


def attrs(kvs: Any) -> Dict[str, Any]:
    """Protobuf KeyValues as a plain dict."""
    out: Dict[str, Any] = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


def series(metric: Any) -> Dict[Tuple[Tuple[str, Any], ...], Any]:
    """Sorted attribute items -> data point, for any metric kind."""
    kind = metric.WhichOneof("data")
    points = getattr(metric, kind).data_points
    return {tuple(sorted(attrs(p.attributes).items())): p for p in points}
