"""JSON metrics bodies read straight from the decoded dicts into the store's form.

``json_format.Parse`` manages about 9,000 histogram series a second, so the
common shapes (what Go's x/tools exporter and grpc-gateway clients send, in
either field spelling) go from ``json.loads``'s dicts into the store's form
(:mod:`._model`) without protobuf messages; bucket exemplars are not read
(the store has no use for them).  Anything unusual (summaries, values as
strings like "NaN", unknown fields) raises one of :data:`FALLBACK`, and
:mod:`._json` hands the body to ``json_format`` instead.  The value readers
here (:func:`int64`, :func:`double`, :func:`get`) are :mod:`._jsonrequest`'s too.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp as _Timestamp

from gotools_compat._oc import proto
from gotools_compat._wire.protobuf import INT64_MAX, INT64_MIN

from ._model import Desc, Export, Metric, Series, bounded_cache_put

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

MetricsRequest = metrics_service_pb2.ExportMetricsServiceRequest

REQUEST_KEYS = {"node", "metrics", "resource"}
METRIC_KEYS = {"metric_descriptor", "metricDescriptor", "timeseries"}
SERIES_KEYS = {"start_timestamp", "startTimestamp", "label_values", "labelValues", "points"}
LABEL_KEYS = {"value", "has_value", "hasValue"}
POINT_KEYS = {"timestamp", "int64Value", "int64_value", "doubleValue", "double_value",
              "distributionValue", "distribution_value"}
DIST_KEYS = {"count", "sum", "sum_of_squared_deviation", "sumOfSquaredDeviation",
             "bucket_options", "bucketOptions", "buckets"}
_DESCRIPTOR_KEYS = {"name", "description", "unit", "type", "label_keys", "labelKeys"}
_TYPES = dict(metrics_pb2.MetricDescriptor.Type.items())
_CACHE_LIMIT = 65_536
_ints: Dict[str, int] = {}
_stamps: Dict[str, Any] = {}


class Unusual(Exception):
    """A shape the fast path does not take; json_format takes over."""


#: What the fast paths raise on a body they do not take.
FALLBACK = (Unusual, json_format.ParseError, TypeError, ValueError, AttributeError, KeyError,
            RecursionError)


def get(d: Dict[str, Any], snake: str, camel: str) -> Any:
    value = d.get(snake)
    return d.get(camel) if value is None else value


def int64(value: Any) -> int:
    """An int64 (out of range: json_format's 400)."""
    if type(value) is int:
        if INT64_MIN <= value <= INT64_MAX:
            return value
    elif type(value) is str:  # int64 as a JSON string
        number = _ints.get(value)
        if number is not None:
            return number
        if value.lstrip("-").isdigit() and value.isascii():
            number = int(value)
            if INT64_MIN <= number <= INT64_MAX:
                bounded_cache_put(_ints, value, number, _CACHE_LIMIT)
                return number
    raise Unusual()


def double(value: Any) -> float:
    """A double (a JSON integer past its range: json_format's 400)."""
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    raise Unusual()


def _check_stamp(text: Any) -> None:
    """A valid RFC 3339 timestamp (json_format's rule), or Unusual."""
    if text not in _stamps:
        if type(text) is not str:
            raise Unusual()
        _Timestamp().FromJsonString(text)
        bounded_cache_put(_stamps, text, True, 4096)


# -- the fast path: dicts to the store's form -------------------------------------


def export(doc: Any, request: Callable[[], Any]) -> Export:
    """The store's form of a decoded metrics body; ``request()`` builds its
    opencensus-proto request when someone asks for it.  One of FALLBACK if
    the body is not one the fast path takes."""
    if not isinstance(doc, dict) or not doc.keys() <= REQUEST_KEYS:
        raise Unusual()
    node = None
    if doc.get("node") is not None:
        node = json_format.ParseDict(doc["node"], common_pb2.Node()).SerializeToString()
    if doc.get("resource") is not None:
        json_format.ParseDict(doc["resource"], MetricsRequest().resource)
    metrics = doc.get("metrics") or ()
    if not isinstance(metrics, list):
        raise Unusual()
    return Export(node, [_metric_form(m) for m in metrics], request)


def _desc(d: Any) -> Desc:
    if d is None:
        return ("", "", "", 0, ())
    if not d.keys() <= _DESCRIPTOR_KEYS:
        raise Unusual()
    kind = d.get("type", 0)
    if type(kind) is str:
        kind = _TYPES[kind]  # KeyError: json_format's message
    elif type(kind) is not int:
        raise Unusual()
    keys = []
    for k in get(d, "label_keys", "labelKeys") or ():
        if not k.keys() <= {"key", "description"} or type(k.get("key", "")) is not str:
            raise Unusual()
        keys.append(k.get("key", ""))
    texts = (d.get("name", ""), d.get("description", ""), d.get("unit", ""))
    if not all(type(t) is str for t in texts):
        raise Unusual()
    return (texts[0], texts[1], texts[2], kind, tuple(keys))


def _metric_form(m: Any) -> Metric:
    if not isinstance(m, dict) or not m.keys() <= METRIC_KEYS:
        raise Unusual()
    series: List[Series] = []
    memo: List[Any] = [None, ()]  # the last bounds list seen and its tuple
    stamps = _stamps
    for ts in m.get("timeseries") or ():
        if not ts.keys() <= SERIES_KEYS:
            raise Unusual()
        start = get(ts, "startTimestamp", "start_timestamp")
        if start is not None and start not in stamps:
            _check_stamp(start)
        labels = ts.get("labelValues") or ts.get("label_values")
        values: List[str] = []
        for v in labels or ():
            if not v.keys() <= LABEL_KEYS:
                raise Unusual()
            value = v.get("value", "")
            if type(value) is not str:
                raise Unusual()
            values.append(value)
        points = ts.get("points")
        if not points:
            continue
        for p in points:
            value = _point(p, memo)
        series.append((values, value))
    return (_desc(get(m, "metric_descriptor", "metricDescriptor")), series)


def _point(p: Any, memo: List[Any]) -> Any:
    if not p.keys() <= POINT_KEYS:
        raise Unusual()
    stamp = p.get("timestamp")
    if stamp is not None and stamp not in _stamps:
        _check_stamp(stamp)
    d = p.get("distributionValue") or p.get("distribution_value")
    if d is not None:
        return _distribution(d, memo)
    value = get(p, "int64_value", "int64Value")
    if value is not None:
        return int64(value)
    value = get(p, "double_value", "doubleValue")
    if value is not None:
        return double(value)
    raise Unusual()


def _distribution(d: Any, memo: List[Any]) -> Tuple[int, float, Tuple[float, ...], List[int]]:
    if not d.keys() <= DIST_KEYS:
        raise Unusual()
    bounds: Tuple[float, ...] = ()
    options = d.get("bucketOptions") or d.get("bucket_options")
    if options is not None:
        if not options.keys() <= {"explicit"}:
            raise Unusual()
        listed = (options.get("explicit") or {}).get("bounds") or []
        if listed == memo[0]:
            bounds = memo[1]
        else:
            bounds = tuple([double(b) for b in listed])
            memo[:] = [listed, bounds]
    double(get(d, "sum_of_squared_deviation", "sumOfSquaredDeviation") or 0.0)
    buckets = d.get("buckets") or ()
    # Buckets are {"count": "<int64>"} or {} (a zero count left out); their
    # exemplars are not read, the store has no use for them.
    try:
        ints = _ints  # int64 strings seen before
        counts = [ints[b["count"]] if b else 0 for b in buckets]
    except (KeyError, TypeError):
        counts = [int64(b.get("count", 0)) for b in buckets]
    return (int64(d.get("count", 0)), double(d.get("sum", 0.0)), bounds, counts)
