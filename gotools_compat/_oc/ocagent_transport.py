"""The stock ocagent exporter's parts, made to work (E1, E2, E5, E6).

- E1: ``proto.install()`` runs before ``opencensus.ext.ocagent`` is imported
  (and google.api_core's ImportWarning about grpcio-status is not raised).
- E2: the stock ``ExportRpcHandler`` calls ``monitored_resource.get_instance()``
  (cloud metadata probes) when it is created.  We never create it: the stock
  ``StatsExporter`` takes its RPC handler as an argument, and ours builds the
  resource from the environment only (``OC_RESOURCE_TYPE`` and
  ``OC_RESOURCE_LABELS``, as opencensus reads them), never from the network.
- E5: the stock handler keeps one bidi stream forever and dies when the agent
  ends it.  We open one stream per export on a long-lived channel: the first
  request carries the node, the call has a deadline, and any failure is an
  exception for the exporter thread, which backs off and retries.
- E6: the channel is TLS for ``https://`` addresses, with an optional CA file,
  and every call carries the configured metadata.
"""

from __future__ import annotations

import collections
import datetime
import logging
import threading
import time
import warnings
from typing import (Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Sequence,
                    Tuple)

import grpc

from gotools_compat._oc import proto

proto.install()

# The stock stats exporter imports google.api_core, which warns (ImportWarning,
# an error under -W error) when the optional grpcio-status is missing, and
# (FutureWarning) on Pythons it no longer plans to support (3.9, 3.10); the
# exporter never uses what either warning is about, and we support those Pythons.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*grpcio-status", category=ImportWarning)
    warnings.filterwarnings("ignore", message=".*non-supported Python version",
                            category=FutureWarning)
    from opencensus.ext.ocagent import stats_exporter, utils  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402

from gotools_compat import _oc  # noqa: E402
from gotools_compat._oc import spans, wire  # noqa: E402

_oc.patch_clock("opencensus.ext.ocagent.utils")

log = logging.getLogger(__name__)

METRICS_METHOD = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
TRACE_METHOD = "/opencensus.proto.agent.trace.v1.TraceService/Export"

Metadata = Tuple[Tuple[str, str], ...]

DEFAULT_PORT = 55678


class SendError(Exception):
    """An export that did not reach the agent (wraps the gRPC error)."""


def parse_address(address: str) -> Tuple[str, bool]:
    """``(gRPC target, use TLS)`` for an ``http://``, ``https://`` or bare address."""
    text = address.strip()
    tls = False
    lower = text.lower()
    if lower.startswith("https://"):
        tls, text = True, text[len("https://"):]
    elif lower.startswith("http://"):
        text = text[len("http://"):]
    text = text.rstrip("/")
    if not text:
        raise ValueError("no host in agent address %r" % address)
    if "/" in text:
        raise ValueError("agent address %r has a path; give scheme://host:port" % address)
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        if "]:" not in text:
            text += ":%d" % DEFAULT_PORT
    elif text.count(":") > 1:  # a bare IPv6 address
        text = "[%s]:%d" % (text, DEFAULT_PORT)
    elif ":" not in text:
        text += ":%d" % DEFAULT_PORT
    if not text.rpartition(":")[2].isdigit():
        raise ValueError("bad port in agent address %r" % address)
    return text, tls


def make_channel(target: str, tls: bool, ca_file: Optional[str],
                 max_backoff: float) -> grpc.Channel:
    # gRPC's own reconnect backoff, capped like ours, so a restarted agent is
    # found again within the cap.
    options = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", max(100, int(max_backoff * 1000))),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.enable_http_proxy", 0),  # only the configured address, ever (E2)
    ]
    if not tls:
        return grpc.insecure_channel(target, options=options)
    root: Optional[bytes] = None
    if ca_file is not None:
        with open(ca_file, "rb") as f:
            root = f.read()
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=root),
                               options=options)


def node(service: str, host: str, pid: int, start: datetime.datetime) -> Any:
    """The stock node (language Python, library versions) with our identity."""
    result = utils.get_node(service, host)
    result.identifier.pid = pid
    result.identifier.start_timestamp.FromDatetime(start)
    return result


def resource() -> Any:
    """The resource from ``OC_RESOURCE_TYPE``/``OC_RESOURCE_LABELS``, else ``global``.

    Never the stock ``monitored_resource`` lookup, which probes cloud metadata
    servers (E2).
    """
    from opencensus.common import resource as oc_resource

    try:
        found = oc_resource.get_from_env()
    except Exception:  # a malformed OC_RESOURCE_LABELS
        log.warning("ignoring malformed OC_RESOURCE_TYPE/OC_RESOURCE_LABELS", exc_info=True)
        found = None
    if found is None or not found.type:
        return resource_pb2.Resource(type="global")
    return resource_pb2.Resource(type=found.type, labels=found.labels or {})


def first_fields(node_message: Any, resource_message: Any) -> Tuple[bytes, bytes]:
    """The ``node`` and ``resource`` fields of a stream's first request."""
    node_field = wire.field(0x0A, node_message.SerializeToString())
    resource_field = wire.field(0x1A, resource_message.SerializeToString())
    return node_field, resource_field


def _identity(data: bytes) -> bytes:
    return data


class Streams:
    """Sends request bodies over one stream per export on a long-lived channel."""

    def __init__(self, channel: grpc.Channel, metadata: Metadata) -> None:
        self.channel = channel
        self.metadata = metadata
        self._metrics = channel.stream_stream(
            METRICS_METHOD, request_serializer=_identity,
            response_deserializer=_identity)
        self._trace = channel.stream_stream(
            TRACE_METHOD, request_serializer=_identity, response_deserializer=_identity)
        self._lock = threading.Lock()
        self._call: Any = None  # the one in flight (sends are serialized by the caller)
        self._stopped: Optional[str] = None

    def send_metrics(self, bodies: Sequence[bytes], timeout: float) -> None:
        self._send(self._metrics, bodies, timeout)

    def send_trace(self, bodies: Sequence[bytes], timeout: float) -> None:
        self._send(self._trace, bodies, timeout)

    def stop(self, why: str) -> None:
        """Cancel the call in flight; every later send fails at once with ``why``."""
        with self._lock:
            if self._stopped is None:
                self._stopped = why
            call = self._call
        if call is not None:
            call.cancel()

    def _send(self, method: Any, bodies: Sequence[bytes], timeout: float) -> None:
        try:
            with self._lock:
                if self._stopped is not None:
                    raise SendError(self._stopped)
                # wait_for_ready: a call made while the channel reconnects waits
                # (within its deadline) instead of failing at once.
                self._call = responses = method(iter(bodies), timeout=timeout,
                                                metadata=self.metadata, wait_for_ready=True)
            for _ in responses:
                pass
        except grpc.RpcError as e:
            if self._stopped is not None:
                raise SendError(self._stopped) from None
            code = e.code() if hasattr(e, "code") else None
            details = e.details() if hasattr(e, "details") else str(e)
            raise SendError("%s: %s" % (getattr(code, "name", code), details)) from None
        finally:
            self._call = None


class RpcHandler:
    """What the stock ``StatsExporter`` calls ``send(request)`` on.

    Replaces the stock ``ExportRpcHandler`` (no cloud probe, no immortal
    stream): each request goes out on its own stream, with the node.
    """

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def send(self, request: Any) -> None:
        self._owner.send_request(request)


def stock_exporter(owner: Any) -> Any:
    """The stock ``StatsExporter``, transported by ``owner.send_request``."""
    return stats_exporter.StatsExporter(RpcHandler(owner))


def stock_metric_bytes(metric: Any) -> bytes:
    """One opencensus ``Metric`` as the stock exporter serializes it."""
    data: bytes = stats_exporter._get_metric_proto(metric).SerializeToString()
    return data


def foreign_metrics(timestamp: datetime.datetime) -> Iterator[Any]:
    """opencensus Metrics of the views that are not ours (plain opencensus views).

    opencensus's own view data is not thread safe (E11): a view whose rows
    changed while we read them is skipped this time, with a debug log.
    """
    from opencensus.stats import metric_utils

    from gotools_compat._oc.views import CompatViewData, _measure_to_view_map

    lists = list(_measure_to_view_map()._measure_to_view_data_list_map.values())
    for view_datas in lists:
        for view_data in list(view_datas):
            if isinstance(view_data, CompatViewData):
                continue
            try:
                metric = metric_utils.view_data_to_metric(view_data, timestamp)
            except RuntimeError:
                log.debug("view %r changed while read; skipped this export",
                          view_data.view.name)
                continue
            if metric is not None:
                yield metric


def compat_encoders(cache: Dict[Any, Any], make: Callable[[Any], Any]) -> List[Any]:
    """Encoders for our metrics, in definition order (``make(entry)`` builds one)."""
    from gotools_compat import metric as metric_module

    with metric_module._lock:
        entries = list(metric_module._metrics.values())
    out = []
    for entry in entries:
        encoder = cache.get(entry.recorder)
        if encoder is None:
            encoder = cache[entry.recorder] = make(entry)
        out.append(encoder)
    return out


def encoder_for(entry: Any) -> wire.MetricEncoder:
    measure = entry.definition[1]
    recorder = entry.recorder
    type_ = recorder.aggregation.get_metric_type(None)
    return wire.MetricEncoder(recorder, entry.info.description, measure.unit, type_,
                              entry.is_gauge)


class Pacer:
    """Keeps a periodic export from taking more than ``duty`` of the GIL.

    Encoding is pure Python: while it runs, threads that record wait for the
    GIL.  Every :data:`EVERY` series the pacer sleeps in proportion to the CPU
    time just spent, so recording keeps (1 - duty) of the interpreter during
    a large export; the export takes longer in wall time, not in CPU.
    """

    EVERY = 256

    def __init__(self, duty: float) -> None:
        self.ratio = (1.0 - duty) / duty
        self.mark = time.thread_time()

    def pause(self) -> None:
        now = time.thread_time()
        time.sleep((now - self.mark) * self.ratio)
        self.mark = time.thread_time()


def _paced(series: Iterable[bytes], pacer: Pacer) -> Iterator[bytes]:
    every = Pacer.EVERY
    for i, one in enumerate(series, 1):
        yield one
        if not i % every:
            pacer.pause()


def metric_requests(encoders: Iterable[wire.MetricEncoder], foreign: Iterable[Any],
                    first: Tuple[bytes, bytes], now: datetime.datetime,
                    limit: int = wire.MAX_REQUEST,
                    pacer: Optional[Pacer] = None) -> List[bytes]:
    """Every metric as request bodies under ``limit``; ``first`` is (node, resource)."""
    point_ts = wire.field(0x0A, wire.timestamp_from_datetime(now))

    def pairs() -> Iterator[Tuple[bytes, Iterable[bytes]]]:
        for encoder in encoders:
            series = encoder.series(point_ts)
            yield encoder.descriptor_field, series if pacer is None else _paced(series, pacer)
        for metric in foreign:
            yield b"", [stock_metric_bytes(metric)]

    return wire.requests(pairs(), first[0], first[1], limit)


# Spans: the stock TraceExporter, fed through a queue that our thread drains.

MAX_QUEUED_SPANS = 10_000


def span_queue() -> Deque[Any]:
    """Where the exporter queues ended ``event.Span`` objects (bounded, drops the oldest)."""
    return collections.deque(maxlen=MAX_QUEUED_SPANS)


def take_all(queue: Deque[Any]) -> List[Any]:
    out = []
    while queue:
        try:
            out.append(queue.popleft())
        except IndexError:
            break
    return out


def put_back(queue: Deque[Any], batch: List[Any]) -> None:
    room = MAX_QUEUED_SPANS - len(queue)
    if room > 0:
        queue.extendleft(reversed(batch[-room:]))


def send_queued(queue: Deque[Any], send: Callable[[List[Any]], None]) -> None:
    """``send`` what is queued; on a SendError it goes back, for the next export."""
    batch = take_all(queue)
    if batch:
        try:
            send(batch)
        except SendError:
            put_back(queue, batch)
            raise


def span_requests(batch: List[Any], first: Tuple[bytes, bytes]) -> List[bytes]:
    """``ExportTraceServiceRequest`` bodies for our spans, each under gRPC's limit."""
    return spans.requests(batch, first)


class SpanQueue:
    """An opencensus trace ``Transport``: ``export`` only queues (never blocks).

    Beyond :data:`MAX_QUEUED_SPANS` waiting spans the oldest are dropped.
    """

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self.spans: Deque[Any] = collections.deque(maxlen=MAX_QUEUED_SPANS)

    def export(self, span_datas: Iterable[Any]) -> None:
        self.spans.extend(span_datas)

    def flush(self) -> None:
        pass


class _TraceClient:
    """Stands in for the stock ``TraceServiceStub``: same ``Export`` call, our stream."""

    def __init__(self, send: Callable[[List[bytes]], None]) -> None:
        self._send = send

    def Export(self, requests: Iterable[Any]) -> Iterator[Any]:  # noqa: N802 (gRPC name)
        # Raises SendError, which the stock emit() does not swallow.
        self._send([request.SerializeToString() for request in requests])
        return iter(())


def trace_exporter(service: str, host: str, node_message: Any,
                   send: Callable[[List[bytes]], None]) -> Any:
    """The stock ``TraceExporter`` on our transport, identified by ``node_message``."""
    from opencensus.ext.ocagent import trace_exporter as oc_trace_exporter

    for name in ("opencensus.trace.span", "opencensus.common.utils"):
        _oc.patch_clock(name)
    exporter = oc_trace_exporter.TraceExporter(
        service, host_name=host, endpoint="unused", client=_TraceClient(send),
        transport=SpanQueue)
    exporter.node = node_message
    return exporter
