"""OpenTelemetry SDK metric data built from plain values: names, numbers, label values.

The mapping is in :mod:`gotools_compat._otel`'s doc.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import sys
import warnings
from typing import (Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Union,
                    cast)

from opencensus.metrics.export.metric_descriptor import MetricDescriptorType

from gotools_compat._version import __version__


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
                                                  ResourceMetrics, ScopeMetrics, Sum)
    from opentelemetry.sdk.metrics.export import HistogramDataPoint as HistogramDataPoint
    from opentelemetry.sdk.metrics.export import Metric as Metric
    from opentelemetry.sdk.metrics.export import MetricsData as MetricsData
    from opentelemetry.sdk.metrics.export import NumberDataPoint as NumberDataPoint
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

# The descriptor types, opencensus's (MetricDescriptor.Type on the wire).
GAUGE_INT64 = MetricDescriptorType.GAUGE_INT64
GAUGE_DOUBLE = MetricDescriptorType.GAUGE_DOUBLE
GAUGE_DISTRIBUTION = MetricDescriptorType.GAUGE_DISTRIBUTION
CUMULATIVE_INT64 = MetricDescriptorType.CUMULATIVE_INT64
CUMULATIVE_DOUBLE = MetricDescriptorType.CUMULATIVE_DOUBLE
CUMULATIVE_DISTRIBUTION = MetricDescriptorType.CUMULATIVE_DISTRIBUTION
SUMMARY = MetricDescriptorType.SUMMARY
# The wire's UNSPECIFIED, which opencensus's class lacks: infer the type from the points.
UNSPECIFIED = 0

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
