"""This process's metrics as OpenTelemetry SDK data: our rows, plain opencensus views.

The builders and the mapping are :mod:`gotools_compat._otel`'s; this is the
app side, which reads the metrics (:func:`gotools_compat.metric.registered`)
and opencensus's view manager (through ``gotools_compat._oc``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from gotools_compat import metric
from gotools_compat._oc import prometheus as oc_prometheus
from gotools_compat._otel.data import (CUMULATIVE_DISTRIBUTION, GAUGE_DISTRIBUTION,
                                       OVERFLOW_ATTRIBUTES, SUMMARY, Attributes,
                                       HistogramDataPoint, Metric, NumberDataPoint, attributes,
                                       histogram_point, metric_data, ns_from_datetime,
                                       ns_from_iso, number_point)


# Our metrics, straight from their rows.

class _Plan:
    """What is fixed for one of our metrics: names, bounds, attributes per row key."""

    __slots__ = ("entry", "name", "description", "unit", "type", "histogram", "bounds",
                 "columns", "attrs", "start_text", "start_ns")

    def __init__(self, entry: metric.Registered) -> None:
        kind = entry.kind
        self.entry = entry
        self.name = entry.name
        self.description = entry.description
        self.unit = entry.unit
        self.type = entry.opencensus_type  # the OTLP mapping starts from it
        self.histogram = kind.is_histogram
        self.bounds: Tuple[float, ...] = tuple(float(b) for b in entry.buckets)
        self.columns: Tuple[str, ...] = tuple(key.name for key in entry.keys)
        self.attrs: Dict[Any, Attributes] = {}
        self.start_text = ""
        self.start_ns = 0

    def _attributes(self, labels: metric.Labels) -> Attributes:
        if self.columns and all(v == metric.OVERFLOW for v in labels):
            attrs = OVERFLOW_ATTRIBUTES
        else:
            attrs = attributes(self.columns, labels)
        if len(self.attrs) < 2 * self.entry.max_rows + 16:
            self.attrs[labels] = attrs
        return attrs

    def metric(self, time_ns: int) -> Optional[Metric]:
        entry = self.entry
        if not entry.row_count():
            return None
        start_text = entry.start_time  # reset by a fork (see export.otel)
        if start_text != self.start_text:
            self.start_ns = ns_from_iso(start_text)
            self.start_text = start_text
        start = self.start_ns
        cache = self.attrs
        points: List[Any] = []
        append = points.append
        if self.histogram:
            bounds = self.bounds
            for labels, (counts, total, lo, hi, _m2) in entry.histogram_rows():
                attrs = cache.get(labels) or self._attributes(labels)
                # Positional: the SDK's field order (attributes, start, time, count,
                # sum, bucket_counts, explicit_bounds, min, max); a test pins it.
                # (min and max are None only in a row read before its first value.)
                append(HistogramDataPoint(attrs, start, time_ns, sum(counts), total, counts,
                                          bounds, lo, hi))  # type: ignore[arg-type]
        else:
            for labels, value in entry.rows(saturate=True):
                attrs = cache.get(labels) or self._attributes(labels)
                append(NumberDataPoint(attrs, start, time_ns, value))
        if not points:
            return None
        return metric_data(self.name, self.description, self.unit, self.type, points)


_plans: Dict[Any, _Plan] = {}


def our_metrics(time_ns: int) -> List[Metric]:
    """Every metric made with gotools_compat, in definition order (rows, no opencensus)."""
    out: List[Metric] = []
    for plan in metric.each_registered(_plans, _Plan):
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
        bounds, counts = oc_prometheus.distribution_buckets(value)
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
    out: List[Metric] = []
    for oc_metric in oc_prometheus.foreign_metrics():
        converted = from_opencensus(oc_metric, time_ns)
        if converted is not None and converted.data.data_points:
            out.append(converted)
    return out
