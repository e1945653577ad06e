"""Forwarding what the agent receives as OTLP/HTTP (``gotools-agent --otlp URL``).

Receivers hand every read request to :meth:`Forwarder.submit`, which only
appends it to a bounded queue: ingest never waits for the network.  One
thread drains the queue, rebuilds the opencensus-proto messages, converts them
with :mod:`gotools_compat._otel_ocproto` (the same mapping as the in-process
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

import collections
import logging
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Tuple

from gotools_compat._oc import proto

from ._lean import node_of
from ._model import Export
from ._store import COUNTER, GAUGE, Family, SenderKey, cumulative_counts

proto.install()

from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

logger = logging.getLogger(__name__)

MISSING_EXTRA = ("--otlp needs the OpenTelemetry packages, which are not installed: "
                 "pip install 'gotools_compat[otel]' (%s)")

_Pending = Dict[str, Tuple[Any, Dict[Tuple[str, ...], Any]]]  # name -> (descriptor, series)


def load_otel() -> Tuple[Any, Any, Any, Any]:
    """(_otel, _otel_ocproto, OTLPMetricExporter, MetricExportResult.SUCCESS);
    ImportError with the extra to install."""
    try:
        from gotools_compat._otel import data as _otel
        from gotools_compat._otel import ocproto as _otel_ocproto

        with _otel.quiet_imports():
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk.metrics.export import MetricExportResult
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA % exc) from None
    return _otel, _otel_ocproto, OTLPMetricExporter, MetricExportResult.SUCCESS


def metrics_url(endpoint: str) -> str:
    """OTLP/HTTP's rule: a base URL gets ``/v1/metrics``; a full one is kept."""
    url = endpoint.strip()
    if "://" not in url:
        raise ValueError("--otlp %r: expected a URL such as http://127.0.0.1:4318" % endpoint)
    if url.rstrip("/").endswith("/v1/metrics"):
        return url
    return url.rstrip("/") + "/v1/metrics"


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


_GAUGES = (1, 2, 3)  # MetricDescriptor.Type GAUGE_*


def _combined(kind: int, old: Any, new: Any) -> Any:
    """Two series of one label set in one metric, as one: the sum (gauges: the newer)."""
    a, b = old.points[-1], new.points[-1]
    which = a.WhichOneof("value")
    if kind in _GAUGES or which != b.WhichOneof("value") or (
            kind == 0 and which != "distribution_value"):  # UNSPECIFIED: as the store infers
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


class Forwarder:
    """Sends every metric the agent receives to an OTLP/HTTP endpoint."""

    def __init__(self, endpoint: str, *, timeout: float = 10.0, max_queue: int = 256,
                 max_series: int = 100_000, max_backoff: float = 30.0,
                 exporter: Any = None) -> None:
        self.url = metrics_url(endpoint)
        self._otel, self._ocproto, exporter_class, self._success = load_otel()
        self._exporter = exporter if exporter is not None else exporter_class(
            endpoint=self.url, timeout=timeout)
        self._timeout = timeout
        self._max_series = max_series
        self._max_backoff = max_backoff
        self._queue: Deque[Tuple[SenderKey, Optional[bytes], Export]] = collections.deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        # Only the forwarding thread touches these.
        self._nodes: Dict[SenderKey, Optional[bytes]] = {}
        self._pending: Dict[SenderKey, _Pending] = {}
        self._pending_count = 0
        # Counters, read by the agent's /metrics.
        self.sent = 0
        self.failed_exports = 0
        self.dropped = 0
        self.rejected = 0

    # -- the ingest side -----------------------------------------------------

    def submit(self, sender: SenderKey, node: Optional[bytes], export: Export) -> None:
        """Queue one read request; never blocks on the network."""
        with self._cond:
            if len(self._queue) >= self._max_queue:
                _, _, oldest = self._queue.popleft()
                self.dropped += sum(len(series) for _, series in oldest.metrics)
                logger.warning("OTLP forwarding is behind: a queued request was dropped")
            self._queue.append((sender, node, export))
            self._cond.notify()

    def _drop(self, count: int) -> None:
        with self._cond:  # submit() counts under this lock too
            self.dropped += count

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gotools-agent-otlp",
                                        daemon=True)
        self._thread.start()

    def stop(self, grace: float = 2.0) -> None:
        """A last send of what is pending (within ``grace``), then stop."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(grace + self._timeout)
            self._thread = None
        try:
            self._exporter.shutdown()
        except Exception:  # noqa: BLE001 - shutting down must not raise
            logger.debug("OTLP exporter shutdown failed", exc_info=True)

    def _run(self) -> None:
        backoff = 0.0
        retry_at = 0.0
        while True:
            with self._cond:
                # Requests are merged as they come, also while a retry waits.
                while not self._stopping and not self._queue:
                    if self._pending_count and time.monotonic() >= retry_at:
                        break
                    self._cond.wait(max(0.0, retry_at - time.monotonic())
                                    if self._pending_count else None)
                stopping = self._stopping
                batch = list(self._queue)
                self._queue.clear()
            for sender, node, export in batch:
                self._merge(sender, node, export)
            if self._pending_count and (stopping or time.monotonic() >= retry_at):
                if self._send():
                    backoff = 0.0
                else:
                    backoff = min(self._max_backoff, max(0.5, backoff * 2))
                    retry_at = time.monotonic() + backoff
                    if stopping:
                        logger.warning("OTLP: %d series could not be sent before the stop",
                                       self._pending_count)
                        self._drop(self._pending_count)
            if stopping:
                return

    # -- the forwarding thread -------------------------------------------------

    def _merge(self, sender: SenderKey, node: Optional[bytes], export: Export) -> None:
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
        try:
            result = self._exporter.export(data, timeout_millis=self._timeout * 1000)
        except Exception:  # noqa: BLE001 - an exporter must not take the thread down
            logger.warning("OTLP export to %s failed", self.url, exc_info=True)
            result = None
        if result != self._success:
            self.failed_exports += 1
            logger.warning("OTLP export of %d series to %s failed; retrying later",
                           count, self.url)
            return False
        self.sent += count
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

    # -- the agent's own metrics -------------------------------------------------

    def families(self) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
        """Counters and a gauge for the agent's /metrics, in the renderer's form."""
        rows = (
            ("gotools_agent_otlp_sent_series", COUNTER, self.sent,
             "Series sent to the OTLP endpoint."),
            ("gotools_agent_otlp_failed_exports", COUNTER, self.failed_exports,
             "OTLP exports that failed (they are retried)."),
            ("gotools_agent_otlp_dropped_series", COUNTER, self.dropped,
             "Series that could not be sent to the OTLP endpoint: queue full or stopped."),
            ("gotools_agent_otlp_rejected_series", COUNTER, self.rejected,
             "Series not forwarded because they could not be converted."),
            ("gotools_agent_otlp_pending_series", GAUGE, self._pending_count,
             "Series waiting to be sent to the OTLP endpoint."),
        )
        return [(Family(name, kind, help_text, ""), [(b"", value)])
                for name, kind, value, help_text in rows]
