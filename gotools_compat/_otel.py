"""Metrics as OpenTelemetry SDK data: the builders, our rows, plain opencensus views.

Only the optional ``otel`` extra's packages are imported here, and only this
module and :mod:`gotools_compat._otel_ocproto` (for the agent) import them;
the core never does.

The mapping, the same for our metrics, plain opencensus views and (through
``_otel_ocproto``) what an agent receives over the OpenCensus protocol:

=============================  ============================================
opencensus descriptor type     OpenTelemetry data
=============================  ============================================
GAUGE_INT64, GAUGE_DOUBLE      ``Gauge`` (int points stay ``as_int``)
CUMULATIVE_INT64, _DOUBLE      ``Sum``, monotonic, cumulative
CUMULATIVE_DISTRIBUTION        ``Histogram``, cumulative, explicit bounds
GAUGE_DISTRIBUTION             ``Histogram``, delta (OTel has no gauge histogram)
SUMMARY                        left out (the SDK's data model has no Summary)
=============================  ============================================

Label values become string attributes named after the label keys (the
opencensus row key, so the same series whatever path it takes); a label
without a value ("no value") is left out of the attributes.  A metric's row
of tag combinations beyond its ``max_rows`` carries the OpenTelemetry SDK's
own overflow attribute set, ``{"otel.metric.overflow": True}``.

Histogram points carry the bounds as declared (as floats), per-bucket counts
with the overflow bucket last, count, sum, and min/max where known
(opencensus distributions have none: those points leave them unset).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import sys
import warnings
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union,
                    cast)

from gotools_compat import __version__
from gotools_compat._oc import views


@contextlib.contextmanager
def quiet_imports() -> Iterator[None]:
    """Import OpenTelemetry modules without their import-time warnings.

    Old protobuf/googleapis releases warn on import on old Pythons; that is
    theirs, and no reason to fail an app that runs with -W error.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning,
                                module=r"(google|opentelemetry)(\.|$)")
        warnings.filterwarnings("ignore", category=FutureWarning,
                                module=r"(google|opentelemetry)(\.|$)")
        yield


with quiet_imports():
    from opentelemetry.sdk.metrics.export import (AggregationTemporality, Gauge, Histogram,
                                                  HistogramDataPoint,
                                                  NumberDataPoint, ResourceMetrics,
                                                  ScopeMetrics, Sum)
    from opentelemetry.sdk.metrics.export import Metric as Metric
    from opentelemetry.sdk.metrics.export import MetricsData as MetricsData
    from opentelemetry.sdk.resources import OTELResourceDetector
    from opentelemetry.sdk.resources import Resource as Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

log = logging.getLogger(__name__)

Number = Union[int, float]
Attributes = Dict[str, Any]

CUMULATIVE = AggregationTemporality.CUMULATIVE
DELTA = AggregationTemporality.DELTA

SCOPE = InstrumentationScope("gotools_compat", __version__)

OVERFLOW_ATTRIBUTES: Attributes = {"otel.metric.overflow": True}

# opencensus MetricDescriptorType values.
GAUGE_INT64, GAUGE_DOUBLE, GAUGE_DISTRIBUTION = 1, 2, 3
CUMULATIVE_INT64, CUMULATIVE_DOUBLE, CUMULATIVE_DISTRIBUTION, SUMMARY = 4, 5, 6, 7

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

_warned: Set[str] = set()


def warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


# Time.

def ns_from_datetime(dt: datetime.datetime) -> int:
    """Nanoseconds since the epoch; a naive datetime is UTC (as opencensus's are)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


_iso_cache: Dict[str, int] = {}


def ns_from_iso(text: str) -> int:
    """Nanoseconds for opencensus's ``%Y-%m-%dT%H:%M:%S.%fZ`` start times (cached)."""
    ns = _iso_cache.get(text)
    if ns is None:
        dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
        ns = ns_from_datetime(dt)
        if len(_iso_cache) < 10_000:
            _iso_cache[text] = ns
    return ns


# Builders, shared by every source (our rows, opencensus Metrics, OC protobuf).

def attributes(keys: Sequence[str], values: Sequence[Optional[str]]) -> Attributes:
    """Attributes for one series: a value of None ("no value") is left out."""
    return {k: v for k, v in zip(keys, values) if v is not None}


def metric_data(name: str, description: str, unit: str, descriptor_type: int,
                points: List[Any]) -> Optional[Metric]:
    """One SDK ``Metric`` of opencensus type ``descriptor_type``; None for SUMMARY."""
    data: Union[Sum, Gauge, Histogram]
    if descriptor_type in (CUMULATIVE_INT64, CUMULATIVE_DOUBLE):
        data = Sum(data_points=points, aggregation_temporality=CUMULATIVE, is_monotonic=True)
    elif descriptor_type in (GAUGE_INT64, GAUGE_DOUBLE):
        data = Gauge(data_points=points)
    elif descriptor_type == CUMULATIVE_DISTRIBUTION:
        data = Histogram(data_points=points, aggregation_temporality=CUMULATIVE)
    elif descriptor_type == GAUGE_DISTRIBUTION:
        data = Histogram(data_points=points, aggregation_temporality=DELTA)
    else:
        warn_once("type:%s" % name, "metric %r has opencensus type %s, which OpenTelemetry "
                  "SDK data cannot carry; it is left out", name, descriptor_type)
        return None
    return Metric(name=name, description=description, unit=unit, data=data)


def number_point(attrs: Attributes, start_ns: int, time_ns: int, value: Number) -> Any:
    return NumberDataPoint(attributes=attrs, start_time_unix_nano=start_ns,
                           time_unix_nano=time_ns, value=value)


def histogram_point(attrs: Attributes, start_ns: int, time_ns: int, counts: List[int],
                    bounds: Sequence[float], total: Number, lo: Optional[Number],
                    hi: Optional[Number]) -> Any:
    """A histogram point; ``counts`` are per bucket, the overflow bucket last.

    ``lo``/``hi`` None leave min/max unset on the wire (OTLP's optional fields).
    """
    return HistogramDataPoint(
        attributes=attrs, start_time_unix_nano=start_ns, time_unix_nano=time_ns,
        count=sum(counts), sum=total, bucket_counts=counts, explicit_bounds=bounds,
        min=cast(float, lo), max=cast(float, hi))


def metrics_data(resource: Resource, metrics: Sequence[Metric],
                 scope: InstrumentationScope = SCOPE) -> MetricsData:
    return MetricsData(resource_metrics=[ResourceMetrics(
        resource=resource,
        scope_metrics=[ScopeMetrics(scope=scope, metrics=list(metrics), schema_url="")],
        schema_url="")])


def resource(service: Optional[str], host: Optional[str], pid: int,
             extra: Optional[Mapping[str, Any]] = None) -> Resource:
    """The SDK's resource with ``service.name``, ``host.name`` and ``process.pid``.

    Precedence, highest first: ``service``/``host`` given here and ``extra``;
    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (read by the SDK);
    the defaults, the program's base name and the host name.  ``process.pid``
    is always ``pid``.
    """
    attrs: Dict[str, Any] = {"service.name": _program_name(), "host.name": socket.gethostname()}
    attrs.update(OTELResourceDetector().detect().attributes)
    if service:
        attrs["service.name"] = service
    if host:
        attrs["host.name"] = host
    attrs.update(extra or {})
    attrs["process.pid"] = pid
    return Resource.create(attrs)


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
    return os.path.basename(argv0) or "python"


# Our metrics, straight from their rows.

class _Plan:
    """What is fixed for one of our metrics: names, bounds, attributes per row key."""

    __slots__ = ("entry", "recorder", "name", "description", "unit", "type", "histogram",
                 "bounds", "columns", "attrs", "start_text", "start_ns")

    def __init__(self, entry: Any) -> None:
        self.entry = entry
        recorder = self.recorder = entry.recorder
        self.name = str(entry.info.name)
        self.description = str(entry.info.description)
        self.unit = str(entry.definition[1].unit)
        self.type = int(recorder.aggregation.get_metric_type(None))
        self.histogram = recorder.aggregation.kind == "histogram"
        self.bounds: Tuple[float, ...] = (
            tuple(float(b) for b in recorder.aggregation.bounds) if self.histogram else ())
        self.columns: Tuple[str, ...] = recorder.columns
        self.attrs: Dict[Any, Attributes] = {}
        self.start_text = ""
        self.start_ns = 0

    def _attributes(self, labels: Tuple[Optional[str], ...]) -> Attributes:
        if self.columns and all(v == views.OVERFLOW for v in labels):
            attrs = OVERFLOW_ATTRIBUTES
        else:
            attrs = attributes(self.columns, labels)
        if len(self.attrs) < 2 * self.recorder.max_rows + 16:
            self.attrs[labels] = attrs
        return attrs

    def metric(self, time_ns: int) -> Optional[Metric]:
        recorder = self.recorder
        rows = recorder.snapshot_rows()
        if not rows:
            return None
        start_text = recorder.start_time  # reset by a fork (see export.otel)
        if start_text != self.start_text:
            self.start_ns = ns_from_iso(start_text)
            self.start_text = start_text
        start = self.start_ns
        cache = self.attrs
        points: List[Any] = []
        append = points.append
        if self.histogram:
            bounds = self.bounds
            for row in rows:
                counts, total, lo, hi = row.snapshot()[:4]
                attrs = cache.get(row.labels) or self._attributes(row.labels)
                # Positional: the SDK's field order (attributes, start, time, count,
                # sum, bucket_counts, explicit_bounds, min, max); a test pins it.
                append(HistogramDataPoint(attrs, start, time_ns, sum(counts), total, counts,
                                          bounds, lo, hi))
        else:
            for row in rows:
                attrs = cache.get(row.labels) or self._attributes(row.labels)
                append(NumberDataPoint(attrs, start, time_ns, row.wire_value()))
        return metric_data(self.name, self.description, self.unit, self.type, points)


_plans: Dict[Any, _Plan] = {}


def our_metrics(time_ns: int) -> List[Metric]:
    """Every metric made with gotools_compat, in definition order (rows, no opencensus)."""
    from gotools_compat import metric as metric_module

    with metric_module._lock:
        entries = list(metric_module._metrics.values())
    out: List[Metric] = []
    for entry in entries:
        plan = _plans.get(entry.recorder)
        if plan is None:
            plan = _plans[entry.recorder] = _Plan(entry)
        converted = plan.metric(time_ns)
        if converted is not None:
            out.append(converted)
    return out


# opencensus Metric objects (plain opencensus views, get_metrics()).

def _oc_start_ns(start: Any, default: int) -> int:
    if start is None:
        return default
    if isinstance(start, str):
        return ns_from_iso(start)
    return ns_from_datetime(start)


def _oc_point(value: Any, kind: int, attrs: Attributes, start_ns: int,
              time_ns: int) -> Any:
    if kind in (CUMULATIVE_DISTRIBUTION, GAUGE_DISTRIBUTION):
        options = value.bucket_options
        explicit = options.type_ if options is not None else None
        bounds = [float(b) for b in explicit.bounds] if explicit is not None else []
        counts = ([b.count for b in value.buckets] if value.buckets
                  else [0] * (len(bounds) + 1))
        # Our compat distributions (a view read through get_metrics()) know min/max.
        return histogram_point(attrs, start_ns, time_ns, counts, bounds, value.sum,
                               getattr(value, "min", None), getattr(value, "max", None))
    return number_point(attrs, start_ns, time_ns, value.value)


def from_opencensus(oc_metric: Any, time_ns: int) -> Optional[Metric]:
    """One opencensus ``Metric`` object (``get_metrics()``) as an SDK ``Metric``.

    Each series' point time is its own when it has one.
    """
    descriptor = oc_metric.descriptor
    kind = int(descriptor.type)
    keys = [key.key for key in descriptor.label_keys]
    points = []
    for series in oc_metric.time_series:
        if kind == SUMMARY or not series.points:
            continue
        attrs = attributes(keys, [lv.value for lv in series.label_values])
        point = series.points[-1]
        at = ns_from_datetime(point.timestamp) if point.timestamp is not None else time_ns
        start = _oc_start_ns(series.start_timestamp, at)
        points.append(_oc_point(point.value, kind, attrs, start, at))
    return metric_data(descriptor.name, descriptor.description or "", descriptor.unit or "",
                       kind, points)


def foreign_metrics(time_ns: int) -> List[Metric]:
    """The app's plain opencensus views (every view that is not one of ours)."""
    from gotools_compat._oc import prometheus as oc_prometheus

    out: List[Metric] = []
    for oc_metric in oc_prometheus.foreign_metrics():
        converted = from_opencensus(oc_metric, time_ns)
        if converted is not None and converted.data.data_points:
            out.append(converted)
    return out
