"""Snapshots handed to exporters: plain data, as Go's ``metric.*Data``.

Plain classes rather than dataclasses, which would cost import time (inspect).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, List, Optional, Union

from gotools_compat.event import Tag

if TYPE_CHECKING:
    from gotools_compat._oc import histogram

Number = Union[int, float]


class _Data:
    __slots__ = ("info", "end_time", "rows", "_groups")

    def __init__(self, info: Any, end_time: datetime.datetime, groups: List[List[Tag]],
                 rows: List[Any]) -> None:
        self.info = info
        self.end_time = end_time
        self._groups = groups
        self.rows = rows

    def handle(self) -> str:
        """The metric's name (Go's ``Handle()``)."""
        return str(self.info.name)

    def groups(self) -> List[List[Tag]]:
        """One tag list per row, in row order (Go's ``Groups()``)."""
        return self._groups

    def __repr__(self) -> str:
        return "%s(%r, rows=%r)" % (type(self).__name__, self.info, self.rows)


class Int64Data(_Data):
    """Rows of a count, an Int64 sum or an Int64 gauge (``is_gauge``)."""

    __slots__ = ("is_gauge",)
    rows: List[int]

    def __init__(self, info: Any, end_time: datetime.datetime, groups: List[List[Tag]],
                 is_gauge: bool, rows: List[int]) -> None:
        super().__init__(info, end_time, groups, rows)
        self.is_gauge = is_gauge


class Float64Data(_Data):
    """Rows of a Float64 sum or gauge (``is_gauge``)."""

    __slots__ = ("is_gauge",)
    rows: List[float]

    def __init__(self, info: Any, end_time: datetime.datetime, groups: List[List[Tag]],
                 is_gauge: bool, rows: List[float]) -> None:
        super().__init__(info, end_time, groups, rows)
        self.is_gauge = is_gauge


class HistogramRow:
    """One row of a histogram.

    ``values`` are cumulative per bound, as Go's (values[i] counts every value
    ``<= buckets[i]``); ``counts`` are per bucket plus the overflow bucket, as
    on the OpenCensus wire.
    """

    __slots__ = ("values", "counts", "count", "sum", "min", "max", "sum_of_squared_deviation")

    def __init__(self, values: List[int], counts: List[int], count: int, sum: Number,
                 min: Optional[Number], max: Optional[Number],
                 sum_of_squared_deviation: float) -> None:
        self.values = values
        self.counts = counts
        self.count = count
        self.sum = sum
        self.min = min
        self.max = max
        self.sum_of_squared_deviation = sum_of_squared_deviation

    def __repr__(self) -> str:
        return ("HistogramRow(counts=%r, count=%r, sum=%r, min=%r, max=%r)"
                % (self.counts, self.count, self.sum, self.min, self.max))


HistogramInt64Row = HistogramRow
HistogramFloat64Row = HistogramRow


class HistogramInt64Data(_Data):
    __slots__ = ()
    rows: List[HistogramRow]


class HistogramFloat64Data(_Data):
    __slots__ = ()
    rows: List[HistogramRow]


MetricData = Union[Int64Data, Float64Data, HistogramInt64Data, HistogramFloat64Data]


def _histogram_row(row: histogram.HistogramRow) -> HistogramRow:
    counts, total, lo, hi, m2 = row.snapshot()
    values = []
    running = 0
    for count in counts[:-1]:
        running += count
        values.append(running)
    return HistogramRow(values, counts, sum(counts), total, lo, hi, m2)


def snapshot(entry: Any, now: datetime.datetime) -> MetricData:
    """The data of one registered metric (``metric.Registered``) at ``now``."""
    recorder = entry.recorder
    rows = recorder.snapshot_rows()
    keys = recorder.keys
    groups = [[Tag(key, value) for key, value in zip(keys, row.tags)] for row in rows]
    kind = entry.kind
    if kind.is_histogram:
        cls = HistogramInt64Data if kind.is_int else HistogramFloat64Data
        return cls(entry.info, now, groups,
                   [_histogram_row(row) for row in rows])
    values = [row.value() for row in rows]
    if kind.is_int:
        return Int64Data(entry.info, now, groups, entry.is_gauge, values)
    return Float64Data(entry.info, now, groups, entry.is_gauge, values)
