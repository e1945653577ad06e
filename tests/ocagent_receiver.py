"""A small, real OpenCensus agent receiver for the tests.

A gRPC server on 127.0.0.1 built from the opencensus-proto servicer classes
(the metrics and trace services).  It keeps every request, remembers the
node of each stream (the agent protocol sends it on the first request only)
and can misbehave on purpose: end streams without reading them, or hang.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import grpc

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.agent.trace.v1 import (  # noqa: E402
    trace_service_pb2,
    trace_service_pb2_grpc,
)


class Received:
    """One metrics request as the agent saw it, with its stream's node."""

    def __init__(self, node: Any, resource: Any, request: Any, raw_size: int,
                 metadata: Dict[str, str]) -> None:
        self.node = node
        self.resource = resource
        self.request = request
        self.raw_size = raw_size
        self.metadata = metadata


class Receiver:
    """Start with :meth:`start`; ``port`` is then bound.  Thread safe."""

    def __init__(self, port: int = 0, tls: Optional[Tuple[bytes, bytes]] = None) -> None:
        self.port = port
        self.tls = tls
        self.lock = threading.Lock()
        self.requests: List[Received] = []
        self.spans: List[Tuple[Any, Any]] = []  # (node, span)
        self.streams = 0
        self.end_streams = 0  # end this many streams at once, unread
        self.hang = threading.Event()  # while set, streams hang unread
        self.released = threading.Event()
        self.server: Optional[grpc.Server] = None

    # Servicers.

    def _metrics(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        with self.lock:
            self.streams += 1
            if self.end_streams > 0:
                self.end_streams -= 1
                return iter(())
        if self.hang.is_set():
            self.released.wait(30)
            return iter(())
        metadata = {k: v for k, v in context.invocation_metadata()}
        node = resource = None
        for request in request_iterator:
            if request.HasField("node"):
                node = request.node
            if request.HasField("resource"):
                resource = request.resource
            with self.lock:
                self.requests.append(Received(node, resource, request,
                                              request.ByteSize(), metadata))
        return iter(())

    def _trace(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        node = None
        for request in request_iterator:
            if request.HasField("node"):
                node = request.node
            with self.lock:
                self.spans.extend((node, span) for span in request.spans)
        return iter(())

    def start(self) -> "Receiver":
        receiver = self

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, it: Any, ctx: Any) -> Any:  # noqa: N802
                return receiver._metrics(it, ctx)

        class Trace(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, it: Any, ctx: Any) -> Any:  # noqa: N802
                return receiver._trace(it, ctx)

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                             options=[("grpc.so_reuseport", 1)])
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Trace(), server)
        address = "127.0.0.1:%d" % self.port
        if self.tls is None:
            self.port = server.add_insecure_port(address)
        else:
            key, cert = self.tls
            creds = grpc.ssl_server_credentials([(key, cert)])
            self.port = server.add_secure_port(address, creds)
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        self.released.set()
        if self.server is not None:
            self.server.stop(None).wait(5)
            self.server = None

    # Reading what arrived.

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def latest(self, name: str, pid: Optional[int] = None) -> Dict[Tuple[Any, ...], Any]:
        """The last point of each series of metric ``name``: labels -> Point.

        Labels are a tuple of str, or None for "no value".
        """
        out: Dict[Tuple[Any, ...], Any] = {}
        with self.lock:
            requests = list(self.requests)
        for received in requests:
            if pid is not None and (received.node is None
                                    or received.node.identifier.pid != pid):
                continue
            for metric in received.request.metrics:
                if metric.metric_descriptor.name != name:
                    continue
                for series in metric.timeseries:
                    labels = tuple(v.value if v.has_value else None
                                   for v in series.label_values)
                    out[labels] = series.points[-1]
        return out

    def descriptor(self, name: str) -> Any:
        with self.lock:
            requests = list(self.requests)
        for received in reversed(requests):
            for metric in received.request.metrics:
                if metric.metric_descriptor.name == name:
                    return metric.metric_descriptor
        return None


__all__ = ["Receiver", "Received", "metrics_service_pb2", "trace_service_pb2"]
