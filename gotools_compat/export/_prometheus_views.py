"""How ``export.prometheus`` shows the app's plain opencensus views: prometheus_client families.

Each opencensus ``Metric`` (any descriptor type) becomes the family of its
type, with the names, label names and ``le``/``quantile`` values of our own
metrics; prometheus_client's writers render them.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from opencensus.metrics.export.metric_descriptor import MetricDescriptorType as _Type
from prometheus_client.core import (CounterMetricFamily, GaugeHistogramMetricFamily,
                                    GaugeMetricFamily, Metric)

from gotools_compat._oc.prometheus import distribution_buckets
from gotools_compat._promtext import format_le, metric_name

from ._prometheus_metrics import SUFFIXES, label_names

# opencensus descriptor types by what they carry.
_GAUGES = (_Type.GAUGE_INT64, _Type.GAUGE_DOUBLE)
_COUNTERS = (_Type.CUMULATIVE_INT64, _Type.CUMULATIVE_DOUBLE)
_NUMBERS = _GAUGES + _COUNTERS
_CUMULATIVE = _COUNTERS + (_Type.CUMULATIVE_DISTRIBUTION,)


def view_family(metric: Any, namespace: str) -> Optional[Metric]:
    """A prometheus_client family for an opencensus ``Metric`` (any descriptor type)."""
    descriptor = metric.descriptor
    name = metric_name(namespace, descriptor.name)
    names = label_names([key.key for key in descriptor.label_keys])
    doc = descriptor.description or ""
    kind = int(descriptor.type)
    family: Metric
    if kind in _GAUGES:
        family = GaugeMetricFamily(name, doc, labels=names)
    elif kind in _COUNTERS:
        family = CounterMetricFamily(name, doc, labels=names)
    elif kind == _Type.GAUGE_DISTRIBUTION:
        family = GaugeHistogramMetricFamily(name, doc, labels=names)
    elif kind == _Type.CUMULATIVE_DISTRIBUTION:
        family = Metric(name, doc, "histogram")
    else:  # SUMMARY: opencensus's MetricDescriptor refuses it, so no view makes one
        return None
    # Series whose label values differ only in None vs "" are one series in
    # Prometheus (see export.prometheus): cumulative ones are summed, gauges
    # keep the later series.
    points: Dict[Tuple[str, ...], Any] = {}
    for series in metric.time_series:
        if not series.points:
            continue
        values = tuple(["" if v.value is None else v.value for v in series.label_values])
        value = _plain(kind, series.points[-1].value)
        if values in points and kind in _CUMULATIVE:
            value = _sum_points(points[values], value)
        points[values] = value
    for values, value in points.items():
        _add_point(family, kind, names, list(values), value)
    return family


def _plain(kind: int, value: Any) -> Any:
    """An opencensus point value as a number or ``(counts, sum, bounds)``."""
    if kind in _NUMBERS:
        return value.value
    bounds, counts = distribution_buckets(value)
    return counts, value.sum, bounds


def _sum_points(old: Any, new: Any) -> Any:
    if type(new) is tuple:
        if old[2] != new[2]:
            return new  # bounds differ: cannot be added
        return [a + b for a, b in zip(old[0], new[0])], old[1] + new[1], new[2]
    return old + new


def _add_point(family: Metric, kind: int, names: Tuple[str, ...], values: List[str],
               value: Any) -> None:
    if kind in _NUMBERS:
        family.add_metric(values, value)  # type: ignore[attr-defined]
        return
    counts, total, bounds = value
    les = [format_le(b) for b in bounds] + ["+Inf"]
    cumulative = list(accumulate(counts))
    if kind == _Type.GAUGE_DISTRIBUTION:
        family.add_metric(values, list(zip(les, cumulative)), total)  # type: ignore
        return
    labels = dict(zip(names, values))
    for le, count in zip(les, cumulative):
        family.add_sample(family.name + "_bucket", dict(labels, le=le), count)
    family.add_sample(family.name + "_count", labels, cumulative[-1])
    family.add_sample(family.name + "_sum", labels, total)


class Families:
    """A collector over prepared families, for prometheus_client's renderers."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def family_claims(family: Metric) -> Set[str]:
    """The sample names a family takes (for the collision check)."""
    return {family.name} | {family.name + s for s in SUFFIXES.get(family.type, ())}
