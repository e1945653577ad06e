"""The aggregations of our metrics: what an opencensus View needs, and a row factory.

Each is what a ``View`` takes as its aggregation (``get_metric_type``) and
makes the metric's rows (``new_row``): :mod:`.rows` (count, sum, latest
value) and :mod:`.histogram`, which loads with the first histogram defined.
"""

from __future__ import annotations

from threading import Lock
from typing import Any, Sequence, Tuple, Union

from opencensus.metrics.export import value as oc_value
from opencensus.metrics.export.metric_descriptor import MetricDescriptorType

from gotools_compat._oc.rows import (DRAIN_AT, DRAIN_LIMIT, INT64_MAX, INT64_MIN, CountRow, Labels,
                                     LastValueRow, Number, Row, SumRow)


class Count:
    kind = "count"

    @staticmethod
    def get_metric_type(measure: Any) -> int:
        return int(MetricDescriptorType.CUMULATIVE_INT64)

    def new_row(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> Row:
        return CountRow(lock, labels, tags)


class Sum:
    kind = "sum"

    def __init__(self, is_int: bool) -> None:
        self.is_int = is_int

    def get_metric_type(self, measure: Any) -> int:
        return int(MetricDescriptorType.CUMULATIVE_INT64 if self.is_int
                   else MetricDescriptorType.CUMULATIVE_DOUBLE)

    def new_row(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> Row:
        return SumRow(lock, labels, tags, self.is_int)


class LastValue:
    kind = "latest"

    def __init__(self, is_int: bool) -> None:
        self.is_int = is_int

    def get_metric_type(self, measure: Any) -> int:
        return int(MetricDescriptorType.GAUGE_INT64 if self.is_int
                   else MetricDescriptorType.GAUGE_DOUBLE)

    def new_row(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> Row:
        return LastValueRow(lock, labels, tags, self.is_int)


class Distribution:
    kind = "histogram"

    def __init__(self, bounds: Sequence[Number], is_int: bool) -> None:
        # Histogram rows (and bisect) load here: a program with no histogram
        # never imports them.
        from gotools_compat._oc.histogram import HistogramRow

        self._row = HistogramRow
        self.bounds = tuple(bounds)
        self.is_int = is_int
        explicit = oc_value.Explicit.__new__(oc_value.Explicit)
        explicit._bounds = [float(b) for b in self.bounds]
        self.bucket_options = oc_value.BucketOptions(explicit)

    @staticmethod
    def get_metric_type(measure: Any) -> int:
        return int(MetricDescriptorType.CUMULATIVE_DISTRIBUTION)

    def new_row(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> Row:
        return self._row(lock, labels, tags, self, self.is_int)


Aggregation = Union[Count, Sum, LastValue, Distribution]


__all__ = ["Count", "Sum", "LastValue", "Distribution", "Aggregation", "Row", "CountRow",
           "SumRow", "LastValueRow", "Labels", "Number",
           "INT64_MAX", "INT64_MIN", "DRAIN_AT", "DRAIN_LIMIT"]
