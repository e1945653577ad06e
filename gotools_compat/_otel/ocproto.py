"""OpenCensus protocol messages as OpenTelemetry SDK data (for the agent's OTLP forwarding).

What ``gotools-agent`` receives is an ``ExportMetricsServiceRequest`` of
``opencensus.proto`` messages: a node, a resource and metrics.  These
functions turn them into the SDK's ``Resource`` and ``Metric``, with the same
mapping as the in-process exporter (see :mod:`gotools_compat._otel`:
descriptor types to ``Sum``/``Gauge``/``Histogram``, label values to string
attributes, a label without a value left out), so an OTel ``MetricExporter``
(OTLP over HTTP or gRPC) can send them::

    resource = resource_from_node(request.node, request.resource)
    metrics = [m for m in (metric_from_proto(p, time_ns) for p in request.metrics) if m]
    otlp_exporter.export(sdk.metrics_data(resource, metrics), timeout_millis=...)

The OpenCensus stream protocol sends the node and resource only when they
change, and may send a descriptor once per stream; the caller keeps those
(the agent already does) and passes ``descriptor=``.  Histograms whose
buckets must be repaired (Go x/tools clients send cumulative bucket counts)
go through ``bucket_counts=``, a function from a ``DistributionValue`` to its
per-bucket counts.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from gotools_compat._oc import proto
from gotools_compat._otel import data as sdk

proto.install()

BucketCounts = Callable[[Any], List[int]]

# LibraryInfo.Language -> telemetry.sdk.language (OpenTelemetry's values).
_LANGUAGES = {1: "cpp", 2: "dotnet", 3: "erlang", 4: "go", 5: "java", 6: "nodejs",
              7: "php", 8: "python", 9: "ruby"}


def _ns(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def resource_from_node(node: Any, resource: Any = None) -> sdk.Resource:
    """The OTel resource of one sender: its node, plus its OpenCensus resource.

    ``service.name``, ``host.name``, ``process.pid``, ``telemetry.sdk.language``
    and ``telemetry.sdk.version`` from the node; node attributes and resource
    labels as they are; the resource type as ``opencensus.resourcetype``, the
    process start as ``opencensus.starttime`` (an RFC 3339 string) and the
    exporter version as ``opencensus.exporterversion``, as the OpenTelemetry
    Collector's OpenCensus receiver named them.
    """
    attrs: Dict[str, Any] = {}
    if resource is not None:
        if resource.type:
            attrs["opencensus.resourcetype"] = resource.type
        attrs.update(resource.labels)
    if node is not None:
        attrs.update(node.attributes)
        if node.service_info.name:
            attrs["service.name"] = node.service_info.name
        identifier = node.identifier
        if identifier.host_name:
            attrs["host.name"] = identifier.host_name
        if identifier.pid:
            attrs["process.pid"] = int(identifier.pid)
        if identifier.HasField("start_timestamp"):
            attrs["opencensus.starttime"] = identifier.start_timestamp.ToJsonString()
        info = node.library_info
        if info.language in _LANGUAGES:
            attrs["telemetry.sdk.language"] = _LANGUAGES[info.language]
        if info.core_library_version:
            attrs["telemetry.sdk.version"] = info.core_library_version
        if info.exporter_version:
            attrs["opencensus.exporterversion"] = info.exporter_version
    return sdk.Resource(attrs)


def _per_bucket(dist: Any) -> List[int]:
    return [b.count for b in dist.buckets]


def metric_from_proto(metric: Any, time_ns: int, descriptor: Any = None,
                      bucket_counts: Optional[BucketCounts] = None) -> Optional[sdk.Metric]:
    """One ``opencensus.proto.metrics.v1.Metric`` as an SDK ``Metric``, or None.

    None for a SUMMARY (the SDK's data model has none) or a metric without
    points.  ``descriptor`` replaces the message's own (for streams that sent
    it earlier); ``time_ns`` is the point time of points that carry none.
    """
    if descriptor is None:
        descriptor = metric.metric_descriptor
    kind = int(descriptor.type)
    keys = [k.key for k in descriptor.label_keys]
    counts_of = bucket_counts or _per_bucket
    points = []
    for series in metric.timeseries:
        if not series.points:
            continue
        attrs = sdk.attributes(keys, [lv.value if lv.has_value else None
                                        for lv in series.label_values])
        start = _ns(series.start_timestamp) if series.HasField("start_timestamp") else 0
        point = series.points[-1]
        at = _ns(point.timestamp) if point.HasField("timestamp") else time_ns
        which = point.WhichOneof("value")
        if kind == sdk.UNSPECIFIED:  # the OpenCensus protocol says: infer it from the points
            kind = {"int64_value": sdk.GAUGE_INT64, "double_value": sdk.GAUGE_DOUBLE,
                    "distribution_value": sdk.CUMULATIVE_DISTRIBUTION}.get(
                        which or "", sdk.SUMMARY)
        histogram = kind in (sdk.CUMULATIVE_DISTRIBUTION, sdk.GAUGE_DISTRIBUTION)
        if which == "distribution_value" and histogram:
            dist = point.distribution_value
            bounds = list(dist.bucket_options.explicit.bounds)
            counts = counts_of(dist) or [0] * (len(bounds) + 1)
            points.append(sdk.histogram_point(attrs, start or at, at, counts, bounds,
                                                dist.sum, None, None))
        elif histogram or kind == sdk.SUMMARY:
            continue  # a point that does not fit its descriptor
        elif which == "int64_value":
            points.append(sdk.number_point(attrs, start or at, at, int(point.int64_value)))
        elif which == "double_value":
            points.append(sdk.number_point(attrs, start or at, at, point.double_value))
    if not points:
        return None
    return sdk.metric_data(descriptor.name, descriptor.description, descriptor.unit, kind,
                             points)
