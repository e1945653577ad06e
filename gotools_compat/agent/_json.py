"""HTTP bodies (``POST /v1/metrics``, ``/v1/trace``): JSON or binary protobuf.

``json_format.Parse`` manages about 9,000 histogram series a second.  Metrics
bodies are therefore read with ``json.loads`` and the common shapes (what Go's
x/tools exporter and grpc-gateway clients send, in either field spelling) go
straight from the decoded dicts into the store's form (:mod:`._model`),
without protobuf messages (bucket exemplars are not read: the store has no
use for them); anything unusual (summaries, values as strings like "NaN",
unknown fields) goes through ``json_format.ParseDict``, which also produces
the error message for a 400.  The opencensus-proto
request is only built when someone asks for it (OTLP forwarding):
:func:`_fast_request` builds it from the same dicts.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp as _Timestamp

from gotools_compat._oc import proto

from . import _lean
from ._jsondoc import MAX_DEPTH as MAX_DEPTH
from ._jsondoc import load as _load
from ._jsondoc import too_deep as too_deep
from ._model import BadRequest, Desc, Export, Metric, Series, bounded_cache_put

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
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


_DESCRIPTOR_KEYS = {"name", "description", "unit", "type", "label_keys", "labelKeys"}
_TYPES = dict(_Descriptor.Type.items())
_CACHE_LIMIT = 65_536
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_ints: Dict[str, int] = {}
_stamps: Dict[str, Any] = {}


class _Unusual(Exception):
    """A shape the fast path does not take; json_format takes over."""


_FALLBACK = (_Unusual, json_format.ParseError, TypeError, ValueError, AttributeError, KeyError,
             RecursionError)


# -- the cyclic collector, paused while a request's JSON tree is alive ---------

_PAUSE_LIMIT = 1.0  # seconds the collector may stay paused without a break
_pause_lock = threading.Lock()
_pausers = 0
_paused_at = 0.0  # 0.0: the collector is not paused by us


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a JSON request is read and stored.

    ``json.loads`` builds some 30 dicts and lists per histogram series, alive
    until the request is stored.  They form no cycles and reference counting
    frees them, but while the collector runs each is traversed by several young
    collections and makes a full collection of the whole heap due sooner: the
    pause makes HTTP/JSON ingest 1.25-1.4 times as fast (benchmarks/
    bench_agent.py, with and without it back to back: 39,400 against 28,100
    and 32,500 against 26,200 series per CPU-second).
    So the first request in pauses the collector
    if it is enabled and the last one out enables it again.  A collector that
    the application disabled is left alone, and one paused for longer than
    ``_PAUSE_LIMIT`` (overlapping requests without a break) is enabled again
    at the next request until the requests stop overlapping: garbage from
    other threads is collected late, never not at all.
    """
    global _pausers, _paused_at
    with _pause_lock:
        if _pausers == 0 and gc.isenabled():
            gc.disable()
            _paused_at = time.monotonic()
        elif _paused_at and time.monotonic() - _paused_at > _PAUSE_LIMIT:
            gc.enable()
            _paused_at = 0.0
        _pausers += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pausers -= 1
            if _pausers == 0 and _paused_at:
                gc.enable()
                _paused_at = 0.0


def parse_metrics(body: bytes, max_depth: int = MAX_DEPTH) -> Export:
    """A JSON ``ExportMetricsServiceRequest``; BadRequest if invalid.  Bodies
    the fast path does not take may nest at most ``max_depth`` deep."""
    doc = _load(body)
    try:
        return _fast_export(doc)
    except _FALLBACK:
        return _lean.from_proto(_slow(doc, MetricsRequest(), max_depth))


def parse_trace(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON ``ExportTraceServiceRequest``; BadRequest if invalid or nested
    more than ``max_depth`` deep."""
    return _slow(_load(body), TraceRequest(), max_depth)


def parse_binary_metrics(body: bytes) -> Export:
    """A binary ``ExportMetricsServiceRequest``; BadRequest if invalid,
    including a string field that is not valid UTF-8."""
    return _lean.export(_lean.parse(body))


def _slow(doc: Any, request: Any, max_depth: int = MAX_DEPTH) -> Any:
    if not isinstance(doc, dict):
        raise BadRequest("invalid request: a JSON object is expected")
    if too_deep(doc, max_depth):
        raise BadRequest("invalid %s: JSON nested more than %d deep"
                         % (request.DESCRIPTOR.name, max_depth))
    try:
        return json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, OverflowError,
            RecursionError) as exc:  # OverflowError: json_format on a huge JSON int
        raise BadRequest("invalid %s: %s" % (request.DESCRIPTOR.name, exc)) from None


def _get(d: Dict[str, Any], snake: str, camel: str) -> Any:
    value = d.get(snake)
    return d.get(camel) if value is None else value


def _int(value: Any) -> int:
    """An int64 (out of range: json_format's 400)."""
    if type(value) is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value
    elif type(value) is str:  # int64 as a JSON string
        number = _ints.get(value)
        if number is not None:
            return number
        if value.lstrip("-").isdigit() and value.isascii():
            number = int(value)
            if _INT64_MIN <= number <= _INT64_MAX:
                bounded_cache_put(_ints, value, number, _CACHE_LIMIT)
                return number
    raise _Unusual()


def _float(value: Any) -> float:
    """A double (a JSON integer past its range: json_format's 400)."""
    if type(value) is float:
        return value
    if type(value) is int:
        try:
            return float(value)
        except OverflowError:
            pass
    raise _Unusual()


def _check_stamp(text: Any) -> None:
    """A valid RFC 3339 timestamp (json_format's rule), or _Unusual."""
    if text not in _stamps:
        if type(text) is not str:
            raise _Unusual()
        _Timestamp().FromJsonString(text)
        bounded_cache_put(_stamps, text, True, 4096)


# -- the fast path: dicts to the store's form -------------------------------------


def _fast_export(doc: Any) -> Export:
    if not isinstance(doc, dict) or not doc.keys() <= _REQUEST_KEYS:
        raise _Unusual()
    node = None
    if doc.get("node") is not None:
        node = json_format.ParseDict(doc["node"], common_pb2.Node()).SerializeToString()
    if doc.get("resource") is not None:
        json_format.ParseDict(doc["resource"], MetricsRequest().resource)
    metrics = doc.get("metrics") or ()
    if not isinstance(metrics, list):
        raise _Unusual()
    return Export(node, [_fast_metric_form(m) for m in metrics], lambda: _request_of(doc))


def _desc(d: Any) -> Desc:
    if d is None:
        return ("", "", "", 0, ())
    if not d.keys() <= _DESCRIPTOR_KEYS:
        raise _Unusual()
    kind = d.get("type", 0)
    if type(kind) is str:
        kind = _TYPES[kind]  # KeyError: json_format's message
    elif type(kind) is not int:
        raise _Unusual()
    keys = []
    for k in _get(d, "label_keys", "labelKeys") or ():
        if not k.keys() <= {"key", "description"} or type(k.get("key", "")) is not str:
            raise _Unusual()
        keys.append(k.get("key", ""))
    texts = (d.get("name", ""), d.get("description", ""), d.get("unit", ""))
    if not all(type(t) is str for t in texts):
        raise _Unusual()
    return (texts[0], texts[1], texts[2], kind, tuple(keys))


def _fast_metric_form(m: Any) -> Metric:
    if not isinstance(m, dict) or not m.keys() <= _METRIC_KEYS:
        raise _Unusual()
    series: List[Series] = []
    memo: List[Any] = [None, ()]  # the last bounds list seen and its tuple
    stamps = _stamps
    for ts in m.get("timeseries") or ():
        if not ts.keys() <= _SERIES_KEYS:
            raise _Unusual()
        start = _get(ts, "startTimestamp", "start_timestamp")
        if start is not None and start not in stamps:
            _check_stamp(start)
        labels = ts.get("labelValues") or ts.get("label_values")
        values: List[str] = []
        for v in labels or ():
            if not v.keys() <= _LABEL_KEYS:
                raise _Unusual()
            value = v.get("value", "")
            if type(value) is not str:
                raise _Unusual()
            values.append(value)
        points = ts.get("points")
        if not points:
            continue
        for p in points:
            value = _point(p, memo)
        series.append((values, value))
    return (_desc(_get(m, "metric_descriptor", "metricDescriptor")), series)


def _point(p: Any, memo: List[Any]) -> Any:
    if not p.keys() <= _POINT_KEYS:
        raise _Unusual()
    stamp = p.get("timestamp")
    if stamp is not None and stamp not in _stamps:
        _check_stamp(stamp)
    d = p.get("distributionValue") or p.get("distribution_value")
    if d is not None:
        return _distribution(d, memo)
    value = _get(p, "int64_value", "int64Value")
    if value is not None:
        return _int(value)
    value = _get(p, "double_value", "doubleValue")
    if value is not None:
        return _float(value)
    raise _Unusual()


def _distribution(d: Any, memo: List[Any]) -> Tuple[int, float, Tuple[float, ...], List[int]]:
    if not d.keys() <= _DIST_KEYS:
        raise _Unusual()
    bounds: Tuple[float, ...] = ()
    options = d.get("bucketOptions") or d.get("bucket_options")
    if options is not None:
        if not options.keys() <= {"explicit"}:
            raise _Unusual()
        listed = (options.get("explicit") or {}).get("bounds") or []
        if listed == memo[0]:
            bounds = memo[1]
        else:
            bounds = tuple([_float(b) for b in listed])
            memo[:] = [listed, bounds]
    _float(_get(d, "sum_of_squared_deviation", "sumOfSquaredDeviation") or 0.0)
    buckets = d.get("buckets") or ()
    # Buckets are {"count": "<int64>"} or {} (a zero count left out); their
    # exemplars are not read, the store has no use for them.
    try:
        ints = _ints  # int64 strings seen before
        counts = [ints[b["count"]] if b else 0 for b in buckets]
    except (KeyError, TypeError):
        counts = [_int(b.get("count", 0)) for b in buckets]
    return (_int(d.get("count", 0)), _float(d.get("sum", 0.0)), bounds, counts)


# -- the opencensus-proto request, built from the same dicts (for forwarding) -------


def _request_of(doc: Any) -> Any:
    try:
        return _fast_request(doc)
    except _FALLBACK:
        return _slow(doc, MetricsRequest())


def _fast_request(doc: Any) -> Any:
    """The opencensus-proto request of a body the fast path took."""
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
            _build_point(p, add_point(), stamps)
    return metric


def _build_point(p: Any, point: Any, stamps: Dict[str, Any]) -> None:
    if not p.keys() <= _POINT_KEYS:
        raise _Unusual()
    stamp = p.get("timestamp")
    if stamp is not None:
        point.timestamp.CopyFrom(_stamp(stamp, stamps))
    dist = _get(p, "distribution_value", "distributionValue")
    if dist is not None:
        _build_distribution(dist, point.distribution_value)
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


def _build_distribution(d: Any, dist: Any) -> None:
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
