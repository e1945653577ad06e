"""HTTP/JSON bodies (``POST /v1/metrics``, ``/v1/trace``) into protobuf messages.

``json_format.Parse`` manages about 9,000 histogram series a second.  Metrics
bodies are therefore read with ``json.loads`` and the common shapes (what Go's
x/tools exporter and grpc-gateway clients send, in either field spelling) are
built into messages directly; anything unusual (summaries, exemplars, values
as strings like "NaN", unknown fields) goes through ``json_format.ParseDict``,
which also produces the error message for a 400.
"""

from __future__ import annotations

import json
from typing import Any, Dict

from google.protobuf import json_format, message
from google.protobuf.timestamp_pb2 import Timestamp as _Timestamp

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.agent.trace.v1 import trace_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest
TraceRequest = trace_service_pb2.ExportTraceServiceRequest

_Point = metrics_pb2.Point
_TimeSeries = metrics_pb2.TimeSeries
_LabelValue = metrics_pb2.LabelValue
_Distribution = metrics_pb2.DistributionValue
_Bucket = metrics_pb2.DistributionValue.Bucket
_BucketOptions = metrics_pb2.DistributionValue.BucketOptions
_Explicit = metrics_pb2.DistributionValue.BucketOptions.Explicit
_Descriptor = metrics_pb2.MetricDescriptor
_Metric = metrics_pb2.Metric

_REQUEST_KEYS = {"node", "metrics", "resource"}
_METRIC_KEYS = {"metric_descriptor", "metricDescriptor", "timeseries"}
_SERIES_KEYS = {"start_timestamp", "startTimestamp", "label_values", "labelValues", "points"}
_LABEL_KEYS = {"value", "has_value", "hasValue"}
_POINT_KEYS = {"timestamp", "int64Value", "int64_value", "doubleValue", "double_value",
               "distributionValue", "distribution_value"}
_DIST_KEYS = {"count", "sum", "sum_of_squared_deviation", "sumOfSquaredDeviation",
              "bucket_options", "bucketOptions", "buckets"}


class BadRequest(ValueError):
    """A body that is not a valid request: the HTTP handler answers 400."""


class _Unusual(Exception):
    """A shape the fast path does not build; json_format takes over."""


def parse_metrics(body: bytes) -> Any:
    doc = _load(body)
    try:
        return _fast_request(doc)
    except (_Unusual, json_format.ParseError, TypeError, ValueError, AttributeError,
            KeyError):
        return _slow(doc, MetricsRequest())


def parse_trace(body: bytes) -> Any:
    return _slow(_load(body), TraceRequest())


def parse_binary(body: bytes, cls: Any) -> Any:
    try:
        return cls.FromString(body)
    except message.DecodeError as exc:
        raise BadRequest("invalid protobuf %s: %s" % (cls.DESCRIPTOR.name, exc)) from None


def _load(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("invalid JSON: %s" % exc) from None


def _slow(doc: Any, request: Any) -> Any:
    if not isinstance(doc, dict):
        raise BadRequest("invalid request: a JSON object is expected")
    try:
        return json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as exc:
        raise BadRequest("invalid %s: %s" % (request.DESCRIPTOR.name, exc)) from None


def _get(d: Dict[str, Any], snake: str, camel: str) -> Any:
    value = d.get(snake)
    return d.get(camel) if value is None else value


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and value.lstrip("-").isdigit():  # int64 as a JSON string
        return int(value)
    raise _Unusual()


def _float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise _Unusual()


def _fast_request(doc: Any) -> Any:
    if not isinstance(doc, dict) or not doc.keys() <= _REQUEST_KEYS:
        raise _Unusual()
    request = MetricsRequest()
    if doc.get("node") is not None:
        json_format.ParseDict(doc["node"], request.node)
    if doc.get("resource") is not None:
        json_format.ParseDict(doc["resource"], request.resource)
    stamps: Dict[str, Any] = {}
    metrics = doc.get("metrics") or ()
    if not isinstance(metrics, list):
        raise _Unusual()
    request.metrics.extend([_fast_metric(m, stamps) for m in metrics])
    return request


def _stamp(text: Any, stamps: Dict[str, Any]) -> Any:
    stamp = stamps.get(text)
    if stamp is None:
        if not isinstance(text, str):
            raise _Unusual()
        stamp = stamps[text] = _Timestamp()
        stamp.FromJsonString(text)
    return stamp


def _fast_metric(m: Any, stamps: Dict[str, Any]) -> Any:
    # Built in place: message-valued constructor arguments would be copied at
    # every level of nesting.
    if not isinstance(m, dict) or not m.keys() <= _METRIC_KEYS:
        raise _Unusual()
    metric = _Metric()
    descriptor = _get(m, "metric_descriptor", "metricDescriptor")
    if descriptor is not None:
        json_format.ParseDict(descriptor, metric.metric_descriptor)
    add_series = metric.timeseries.add
    for ts in m.get("timeseries") or ():
        if not ts.keys() <= _SERIES_KEYS:
            raise _Unusual()
        series = add_series()
        start = _get(ts, "start_timestamp", "startTimestamp")
        if start is not None:
            series.start_timestamp.CopyFrom(_stamp(start, stamps))
        add_label = series.label_values.add
        for v in _get(ts, "label_values", "labelValues") or ():
            if not v.keys() <= _LABEL_KEYS:
                raise _Unusual()
            value = v.get("value", "")
            if type(value) is not str:
                raise _Unusual()
            add_label(value=value, has_value=bool(_get(v, "has_value", "hasValue")))
        add_point = series.points.add
        for p in ts.get("points") or ():
            _point(p, add_point(), stamps)
    return metric


def _point(p: Any, point: Any, stamps: Dict[str, Any]) -> None:
    if not p.keys() <= _POINT_KEYS:
        raise _Unusual()
    stamp = p.get("timestamp")
    if stamp is not None:
        point.timestamp.CopyFrom(_stamp(stamp, stamps))
    dist = _get(p, "distribution_value", "distributionValue")
    if dist is not None:
        _distribution(dist, point.distribution_value)
        return
    value = _get(p, "int64_value", "int64Value")
    if value is not None:
        point.int64_value = _int(value)
        return
    value = _get(p, "double_value", "doubleValue")
    if value is not None:
        point.double_value = _float(value)
        return
    raise _Unusual()


def _distribution(d: Any, dist: Any) -> None:
    if not d.keys() <= _DIST_KEYS:
        raise _Unusual()
    raw = _get(d, "bucket_options", "bucketOptions")
    if raw is not None:
        if not raw.keys() <= {"explicit"}:
            raise _Unusual()
        bounds = (raw.get("explicit") or {}).get("bounds") or []
        dist.bucket_options.explicit.bounds.extend([_float(b) for b in bounds])
    dist.count = _int(d.get("count", 0))
    dist.sum = _float(d.get("sum", 0.0))
    dist.sum_of_squared_deviation = _float(
        _get(d, "sum_of_squared_deviation", "sumOfSquaredDeviation") or 0.0)
    add = dist.buckets.add
    for b in d.get("buckets") or ():
        if not b.keys() <= {"count"}:
            raise _Unusual()  # exemplars
        add(count=_int(b.get("count", 0)))
