"""The opencensus-proto request of a JSON metrics body, built from the same dicts.

Only built when someone asks for it (OTLP forwarding), from the dicts the
fast path (:mod:`._jsonfast`) read: messages built in place, without
``json_format``; a shape it does not take raises one of
:data:`._jsonfast.FALLBACK`.
"""

from __future__ import annotations

from typing import Any, Dict

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp as _Timestamp

from gotools_compat._oc import proto

from ._jsonfast import (DIST_KEYS, LABEL_KEYS, METRIC_KEYS, POINT_KEYS, REQUEST_KEYS, SERIES_KEYS,
                        MetricsRequest, Unusual, double, get, int64)

proto.install()

from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

_Metric = metrics_pb2.Metric


def request(doc: Any) -> Any:
    """The opencensus-proto request of a decoded body the fast path takes."""
    if not isinstance(doc, dict) or not doc.keys() <= REQUEST_KEYS:
        raise Unusual()
    out = MetricsRequest()
    if doc.get("node") is not None:
        json_format.ParseDict(doc["node"], out.node)
    if doc.get("resource") is not None:
        json_format.ParseDict(doc["resource"], out.resource)
    stamps: Dict[str, Any] = {}
    metrics = doc.get("metrics") or ()
    if not isinstance(metrics, list):
        raise Unusual()
    out.metrics.extend([_metric(m, stamps) for m in metrics])
    return out


def _stamp(text: Any, stamps: Dict[str, Any]) -> Any:
    stamp = stamps.get(text)
    if stamp is None:
        if not isinstance(text, str):
            raise Unusual()
        stamp = stamps[text] = _Timestamp()
        stamp.FromJsonString(text)
    return stamp


def _metric(m: Any, stamps: Dict[str, Any]) -> Any:
    # Built in place: message-valued constructor arguments would be copied at
    # every level of nesting.
    if not isinstance(m, dict) or not m.keys() <= METRIC_KEYS:
        raise Unusual()
    metric = _Metric()
    descriptor = get(m, "metric_descriptor", "metricDescriptor")
    if descriptor is not None:
        json_format.ParseDict(descriptor, metric.metric_descriptor)
    add_series = metric.timeseries.add
    for ts in m.get("timeseries") or ():
        if not ts.keys() <= SERIES_KEYS:
            raise Unusual()
        series = add_series()
        start = get(ts, "start_timestamp", "startTimestamp")
        if start is not None:
            series.start_timestamp.CopyFrom(_stamp(start, stamps))
        add_label = series.label_values.add
        for v in get(ts, "label_values", "labelValues") or ():
            if not v.keys() <= LABEL_KEYS:
                raise Unusual()
            value = v.get("value", "")
            if type(value) is not str:
                raise Unusual()
            add_label(value=value, has_value=bool(get(v, "has_value", "hasValue")))
        add_point = series.points.add
        for p in ts.get("points") or ():
            _build_point(p, add_point(), stamps)
    return metric


def _build_point(p: Any, point: Any, stamps: Dict[str, Any]) -> None:
    if not p.keys() <= POINT_KEYS:
        raise Unusual()
    stamp = p.get("timestamp")
    if stamp is not None:
        point.timestamp.CopyFrom(_stamp(stamp, stamps))
    dist = get(p, "distribution_value", "distributionValue")
    if dist is not None:
        _build_distribution(dist, point.distribution_value)
        return
    value = get(p, "int64_value", "int64Value")
    if value is not None:
        point.int64_value = int64(value)
        return
    value = get(p, "double_value", "doubleValue")
    if value is not None:
        point.double_value = double(value)
        return
    raise Unusual()


def _build_distribution(d: Any, dist: Any) -> None:
    if not d.keys() <= DIST_KEYS:
        raise Unusual()
    raw = get(d, "bucket_options", "bucketOptions")
    if raw is not None:
        if not raw.keys() <= {"explicit"}:
            raise Unusual()
        bounds = (raw.get("explicit") or {}).get("bounds") or []
        dist.bucket_options.explicit.bounds.extend([double(b) for b in bounds])
    dist.count = int64(d.get("count", 0))
    dist.sum = double(d.get("sum", 0.0))
    dist.sum_of_squared_deviation = double(
        get(d, "sum_of_squared_deviation", "sumOfSquaredDeviation") or 0.0)
    add = dist.buckets.add
    for b in d.get("buckets") or ():
        if not b.keys() <= {"count"}:
            raise Unusual()  # exemplars
        add(count=int64(b.get("count", 0)))
