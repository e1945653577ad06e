"""Request bodies for an OpenCensus agent: every metric, and the queued spans.

Our metrics are encoded straight from their rows (:mod:`gotools_compat._wire`),
the app's plain opencensus views through the stock conversion; our ended
spans wait in a bounded queue until the next export encodes them.
"""

from __future__ import annotations

import collections
import datetime
import time
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Optional, Tuple

from gotools_compat import metric
from gotools_compat._oc import ocagent as stock
from gotools_compat._oc.ocagent import MAX_QUEUED_SPANS
from gotools_compat._wire import metrics as wire
from gotools_compat._wire import protobuf
from gotools_compat._wire import spans as wire_spans
from gotools_compat.export._ocagent_channel import SendError


def first_fields(node_message: Any, resource_message: Any) -> Tuple[bytes, bytes]:
    """The ``node`` and ``resource`` fields of a stream's first request."""
    node_field = protobuf.field(0x0A, node_message.SerializeToString())
    resource_field = protobuf.field(0x1A, resource_message.SerializeToString())
    return node_field, resource_field


class Encoder:
    """One of our metrics on the OpenCensus wire: its rows, and what their encoding caches."""

    __slots__ = ("entry", "descriptor_field", "_wire", "_histogram")

    def __init__(self, entry: metric.Registered) -> None:
        kind = entry.kind
        self.entry = entry
        self._histogram = kind.is_histogram
        self._wire = wire.MetricEncoder(
            entry.name, entry.description, entry.unit, entry.opencensus_type,
            [key.name for key in entry.keys], None if kind.is_gauge else entry.start_time,
            [float(bound) for bound in entry.buckets] if kind.is_histogram else None)
        self.descriptor_field = self._wire.descriptor_field

    def series(self, point_ts: bytes) -> Iterator[bytes]:
        """Each row as a ``Metric.timeseries`` field; ``point_ts`` is every point's time."""
        if self._histogram:
            return self._wire.histogram_series(point_ts, self.entry.histogram_rows())
        return self._wire.series(point_ts, self.entry.rows(saturate=True))

    def __len__(self) -> int:
        return self.entry.row_count()

    # export.ocagent counts the series of an export as len(encoder.recorder.rows).
    @property
    def recorder(self) -> "Encoder":
        return self

    @property
    def rows(self) -> range:
        return range(len(self))


def compat_encoders(cache: Dict[Any, Encoder],
                    make: Callable[[metric.Registered], Encoder]) -> List[Encoder]:
    """Encoders for our metrics, in definition order (``make(entry)`` builds one)."""
    return metric.each_registered(cache, make)


encoder_for = Encoder


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


def metric_requests(encoders: Iterable[Encoder], foreign: Iterable[Any],
                    first: Tuple[bytes, bytes], now: datetime.datetime,
                    limit: int = protobuf.MAX_REQUEST,
                    pacer: Optional[Pacer] = None) -> List[bytes]:
    """Every metric as request bodies under ``limit``; ``first`` is (node, resource)."""
    point_ts = protobuf.field(0x0A, protobuf.timestamp_from_datetime(now))

    def pairs() -> Iterator[Tuple[bytes, Iterable[bytes]]]:
        for encoder in encoders:
            series = encoder.series(point_ts)
            yield encoder.descriptor_field, series if pacer is None else _paced(series, pacer)
        for oc_metric in foreign:
            yield b"", [stock.stock_metric_bytes(oc_metric)]

    return wire.requests(pairs(), first[0], first[1], limit)


# Spans: ours wait here; the stock TraceExporter's in ``stock.SpanQueue``.

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
    return wire_spans.requests(batch, first)
