"""The agent's gRPC services, on the opencensus-proto servicer classes.

The handlers are registered like the generated ``add_*Servicer_to_server``
functions do, with two differences: metrics requests are parsed with the
lean view of their schema (:mod:`._protorequest`), and a request that is not valid
protobuf becomes an INVALID_ARGUMENT status for that stream instead of
grpcio's "Exception deserializing request!" (INTERNAL, with a logged
traceback).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, Iterator, Protocol

import grpc
from google.protobuf import message

from gotools_compat._oc import proto

from . import _protorequest
from ._model import BadRequest, Export

proto.install()

from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.agent.trace.v1 import (  # noqa: E402
    trace_service_pb2,
    trace_service_pb2_grpc,
)

logger = logging.getLogger(__name__)


class Sink(Protocol):
    """What the services hand received data to (the Agent)."""

    def ingest_metrics(self, node: Any, export: Export, sender: Any) -> Any: ...

    def ingest_spans(self, node: Any, request: Any) -> None: ...


class _Invalid:
    """A request message that failed to parse."""

    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(cls: Any) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except message.DecodeError as exc:
            return _Invalid("invalid %s: %s" % (cls.DESCRIPTOR.name, exc))
    return deserialize


def _stream_error(kind: str, error: grpc.RpcError) -> None:
    logger.info("%s stream ended by the client: %s", kind, error)


class Streams:
    """The open streams and when each last received a message, to end idle ones.

    grpcio runs each stream on a thread of its pool, blocked while the client
    sends nothing; :meth:`end_idle` cancels the streams silent for longer than
    ``idle_timeout`` seconds, which frees their threads (the client sees
    CANCELLED and, if it is ours, opens a new stream when it next exports).
    """

    def __init__(self, idle_timeout: float, max_streams: int,
                 on_full: Callable[[int], None]) -> None:
        self.idle_timeout = idle_timeout
        self.max_streams = max_streams
        self._on_full = on_full
        self._lock = threading.Lock()
        self._last: Dict[Any, float] = {}

    def watch(self, context: Any, requests: Iterator[Any]) -> Iterator[Any]:
        """``requests``, with every message noted as activity of the stream; a stream
        beyond ``max_streams`` is refused with RESOURCE_EXHAUSTED (and counted)."""
        lock, last = self._lock, self._last
        with lock:
            full = len(last) >= self.max_streams
            if not full:
                last[context] = time.monotonic()
        if full:
            self._on_full(self.max_streams)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          "the agent has %d gRPC streams open (--max-streams)" % self.max_streams)
        try:
            for request in requests:
                with lock:
                    if context in last:  # not when end_idle has just cancelled it
                        last[context] = time.monotonic()
                yield request
        finally:
            with lock:
                last.pop(context, None)

    def end_idle(self, now: float) -> int:
        cutoff = now - self.idle_timeout
        with self._lock:
            idle = [c for c, seen in self._last.items() if seen < cutoff]
            for context in idle:
                del self._last[context]
        for context in idle:
            context.cancel()
        return len(idle)

    def open(self) -> int:
        return len(self._last)


class MetricsService(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    def __init__(self, sink: Sink, streams: Streams) -> None:
        self._sink = sink
        self._streams = streams

    def Export(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        # Like the original agent: nothing is sent back until the client ends
        # the stream; the node of the first request holds for the later ones.
        node = None
        sender = None
        try:
            for request in self._streams.watch(context, request_iterator):
                if isinstance(request, _Invalid):
                    logger.warning("metrics stream: %s", request.error)
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
                try:
                    export = _protorequest.export(request)
                    if export.node is not None:
                        node, sender = export.node, None
                    sender = self._sink.ingest_metrics(node, export, sender)
                except BadRequest as exc:  # a sub-message that does not parse
                    logger.warning("metrics stream: %s", exc)
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except grpc.RpcError as error:
            _stream_error("metrics", error)
        return
        yield  # a generator: the response stream, empty


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    def __init__(self, sink: Sink, streams: Streams) -> None:
        self._sink = sink
        self._streams = streams

    def Export(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        node = None
        try:
            for request in self._streams.watch(context, request_iterator):
                if isinstance(request, _Invalid):
                    logger.warning("trace stream: %s", request.error)
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.error)
                if request.HasField("node"):
                    node = request.node
                self._sink.ingest_spans(node, request)
        except grpc.RpcError as error:
            _stream_error("trace", error)
        return
        yield

    def Config(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        # The original agent never pushed trace configs either.
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the agent does not push trace configs")
        return
        yield


def add_services(server: grpc.Server, sink: Sink, streams: Streams) -> None:
    metrics = MetricsService(sink, streams)
    trace = TraceService(sink, streams)
    mreq = _protorequest.LeanRequest  # the same wire form, read lean (see _protorequest)
    mres = metrics_service_pb2.ExportMetricsServiceResponse
    treq = trace_service_pb2.ExportTraceServiceRequest
    tres = trace_service_pb2.ExportTraceServiceResponse
    creq = trace_service_pb2.CurrentLibraryConfig
    cres = trace_service_pb2.UpdatedLibraryConfig
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler(
            "opencensus.proto.agent.metrics.v1.MetricsService",
            {"Export": grpc.stream_stream_rpc_method_handler(
                metrics.Export, request_deserializer=_tolerant(mreq),
                response_serializer=mres.SerializeToString)}),
        grpc.method_handlers_generic_handler(
            "opencensus.proto.agent.trace.v1.TraceService",
            {"Export": grpc.stream_stream_rpc_method_handler(
                trace.Export, request_deserializer=_tolerant(treq),
                response_serializer=tres.SerializeToString),
             "Config": grpc.stream_stream_rpc_method_handler(
                trace.Config, request_deserializer=_tolerant(creq),
                response_serializer=cres.SerializeToString)}),
    ))
