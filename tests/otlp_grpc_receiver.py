"""A small, real OTLP/gRPC metrics receiver for the tests.

A ``grpc.server`` on 127.0.0.1 (port 0) serving the ``opentelemetry-proto``
``MetricsService``.  It keeps every request with its metadata, as
:class:`tests.otlp_receiver.Receiver` does for OTLP/HTTP (the same
``requests``, ``headers``, ``failures``, ``wait_for`` and
``wait_for_failures``; ``find_metric``, ``attrs`` and ``series`` from there
read its requests too).  It can be told to fail: ``fail_code`` (e.g.
``grpc.StatusCode.UNAVAILABLE``) answers every call with that status, and
:meth:`Receiver.stop` then :meth:`Receiver.start` takes it down and brings it
back on the same port, to play an outage.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any, Optional

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from tests.otlp_receiver import Kept


class _Servicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: "Receiver") -> None:
        self.receiver = receiver

    def Export(self, request: ExportMetricsServiceRequest,  # noqa: N802 (gRPC's name)
               context: Any) -> ExportMetricsServiceResponse:
        receiver = self.receiver
        code = receiver.fail_code
        if code is not None:
            receiver._note_failure()
            context.abort(code, "told to fail")
        receiver._add(request, {k: v for k, v in context.invocation_metadata()})
        return ExportMetricsServiceResponse()


class Receiver(Kept):
    """Start with :meth:`start`; :attr:`endpoint` is then the ``host:port`` to export to."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_code: Optional[grpc.StatusCode] = None
        self._server: Optional[grpc.Server] = None

    def start(self) -> "Receiver":
        """Serve; after a :meth:`stop`, on the port it had before."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                             options=[("grpc.so_reuseport", 1)])
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Servicer(self), server)
        port = server.add_insecure_port("127.0.0.1:%d" % self._port)
        if not port:
            raise OSError("cannot listen on 127.0.0.1:%d" % self._port)
        self._port = port
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(None).wait(5)
            self._server = None

    @property
    def endpoint(self) -> str:
        return "127.0.0.1:%d" % self.port
