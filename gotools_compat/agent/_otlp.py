"""Forwarding the metrics the agent receives as OTLP/HTTP (``gotools-agent --otlp URL``).

Receivers hand every read request to :meth:`Forwarder.submit`, which only
appends it to a bounded queue: ingest never waits for the network (the
queue, thread, backoff and counters are :mod:`._otlp_sender`'s, shared with
the spans' forwarding, :mod:`._otlp_traces`).  One
thread drains the queue, rebuilds the opencensus-proto messages, converts them
with :mod:`gotools_compat._otel.ocproto` (the same mapping as the in-process
OpenTelemetry exporter; Go clients' histograms get the agent's repaired
bucket counts) and sends them with the OpenTelemetry SDK's
``OTLPMetricExporter``.

The data is cumulative, so only the latest value of each series matters:
pending series are kept per sender, metric and label values, a newer value
replacing an older one, until a send succeeds.  While the endpoint is down
the thread retries with exponential backoff; the pending series stay (at most
``max_series``; series beyond that, and requests the thread could not keep up
with, are dropped).  All of it is counted on the agent's own ``/metrics``.

The OpenTelemetry packages (the ``otel`` extra) are imported only when a
:class:`Forwarder` is created.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Tuple

from gotools_compat._oc import proto

from ._model import Export
from ._otlp_sender import Sender, signal_url
from ._protorequest import node_of
from ._store import SenderKey, cumulative_counts

proto.install()

from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

logger = logging.getLogger(__name__)

_Pending = Dict[str, Tuple[Any, Dict[Tuple[str, ...], Any]]]  # name -> (descriptor, series)


def metrics_url(endpoint: str) -> str:
    """OTLP/HTTP's rule: a base URL gets ``/v1/metrics``; a full one is kept."""
    return signal_url(endpoint, "metrics")


def repaired_counts(dist: Any) -> Optional[List[int]]:
    """Per-bucket counts with the overflow bucket last, repaired like the store
    does for Go clients (one cumulative count per bound); None if they make no sense."""
    bounds = dist.bucket_options.explicit.bounds
    counts = [b.count for b in dist.buckets]
    if not counts:
        return [int(dist.count)]
    cum = cumulative_counts(counts, len(bounds), int(dist.count))
    if cum is None:
        return None
    return [b - a for a, b in zip([0] + cum, cum)]


_MD = metrics_pb2.MetricDescriptor
_GAUGES = (_MD.GAUGE_INT64, _MD.GAUGE_DOUBLE, _MD.GAUGE_DISTRIBUTION)


def _combined(kind: int, old: Any, new: Any) -> Any:
    """Two series of one label set in one metric, as one: the sum (gauges: the newer)."""
    a, b = old.points[-1], new.points[-1]
    which = a.WhichOneof("value")
    if kind in _GAUGES or which != b.WhichOneof("value") or (
            kind == _MD.UNSPECIFIED and which != "distribution_value"):  # as the store infers
        return new
    out = metrics_pb2.TimeSeries()
    out.CopyFrom(new)
    point = out.points[-1]
    if which == "int64_value":
        point.int64_value = a.int64_value + b.int64_value
    elif which == "double_value":
        point.double_value = a.double_value + b.double_value
    elif which == "distribution_value":
        da, db = a.distribution_value, b.distribution_value
        ca, cb = repaired_counts(da), repaired_counts(db)
        if ca is None or cb is None or len(ca) != len(cb) \
                or da.bucket_options != db.bucket_options:
            return None
        dist = point.distribution_value
        dist.count = da.count + db.count
        dist.sum = da.sum + db.sum
        del dist.buckets[:]
        dist.buckets.extend([metrics_pb2.DistributionValue.Bucket(count=c)
                             for c in map(sum, zip(ca, cb))])
    return out


class Forwarder(Sender):
    """Sends every metric the agent receives to an OTLP/HTTP endpoint."""

    unit = "series"
    requires = ("gotools_compat._otel.data", "gotools_compat._otel.ocproto",
                "opentelemetry.exporter.otlp.proto.http.metric_exporter:OTLPMetricExporter",
                "opentelemetry.sdk.metrics.export:MetricExportResult.SUCCESS")
    exports = "failed_exports"
    thread_name = "gotools-agent-otlp"

    def __init__(self, endpoint: str, *, timeout: float = 10.0, max_queue: int = 256,
                 max_series: int = 100_000, max_backoff: float = 30.0,
                 exporter: Any = None) -> None:
        self._otel, self._ocproto, exporter_class, success = self.load_otel()
        super().__init__(metrics_url(endpoint), exporter_class, success, exporter=exporter,
                         timeout=timeout, max_queue=max_queue, max_backoff=max_backoff)
        self._max_series = max_series
        # Only the forwarding thread touches these.
        self._nodes: Dict[SenderKey, Optional[bytes]] = {}
        self._pending: Dict[SenderKey, _Pending] = {}

    def submit(self, sender: SenderKey, node: Optional[bytes], export: Export) -> None:
        """Queue one read request; never blocks on the network."""
        self._enqueue((sender, node, export), sum(len(series) for _, series in export.metrics))

    # -- the forwarding thread -------------------------------------------------

    def _merge(self, item: Tuple[SenderKey, Optional[bytes], Export]) -> None:
        sender, node, export = item
        try:
            request = export.request()
        except Exception as exc:  # noqa: BLE001 - a body the fast path took but protobuf refuses
            logger.warning("OTLP: a request could not be converted: %s", exc)
            self.rejected += sum(len(series) for _, series in export.metrics)
            return
        if node is not None or sender not in self._nodes:
            self._nodes[sender] = node
        pending = self._pending.setdefault(sender, {})
        for metric in request.metrics:
            descriptor = metric.metric_descriptor
            if not descriptor.name:
                continue
            entry = pending.get(descriptor.name)
            series = {} if entry is None else entry[1]
            pending[descriptor.name] = (descriptor, series)
            fresh: Dict[Tuple[str, ...], Any] = {}
            for ts in metric.timeseries:
                if not ts.points:
                    continue
                key = tuple([v.value if v.has_value else "\0" for v in ts.label_values])
                if key in fresh:  # like the store: summed within one metric (gauges: last)
                    ts = _combined(descriptor.type, fresh[key], ts)
                    if ts is None:
                        self.rejected += 1
                        continue
                fresh[key] = ts
            for key, ts in fresh.items():
                if key not in series:
                    if self._pending_count >= self._max_series:
                        self._drop(1)
                        continue
                    self._pending_count += 1
                series[key] = ts

    def _send(self) -> bool:
        otel, ocproto = self._otel, self._ocproto
        now = time.time_ns()
        resource_metrics: List[Any] = []
        count = 0
        for sender, pending in self._pending.items():
            node_bytes = self._nodes.get(sender)
            node = None
            if node_bytes is not None:
                node = node_of(node_bytes)
            metrics = []
            for descriptor, series in pending.values():
                metric = self._metric(descriptor, series)
                converted = ocproto.metric_from_proto(metric, now, descriptor,
                                                      bucket_counts=self._counts)
                if converted is not None:
                    metrics.append(converted)
                    count += len(series)
            if metrics:
                resource_metrics.extend(otel.metrics_data(
                    ocproto.resource_from_node(node), metrics).resource_metrics)
        if not resource_metrics:
            self._clear()
            return True
        data = otel.MetricsData(resource_metrics=resource_metrics)
        if not self._export(count, self._exporter.export, data,
                            timeout_millis=self._timeout * 1000):
            return False
        self._clear()
        return True

    def _clear(self) -> None:
        self._pending = {}
        self._pending_count = 0

    def _metric(self, descriptor: Any, series: Dict[Tuple[str, ...], Any]) -> Any:
        metric = metrics_pb2.Metric()
        metric.metric_descriptor.CopyFrom(descriptor)
        metric.timeseries.extend(series.values())
        return metric

    def _counts(self, dist: Any) -> List[int]:
        counts = repaired_counts(dist)
        if counts is None:
            self.rejected += 1
            return []
        return counts
