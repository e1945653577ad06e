"""What exporters read of each metric: its :class:`Kind`, its definition and its rows.

:func:`gotools_compat.metric.registered` lists a :class:`Registered` per
metric.  Its rows are read as snapshots, one per row, taken as the iterator
reaches the row (each row is read whole, under its metric's lock; rows are
not frozen together).  Snapshots are plain tuples rather than objects: a
scrape reads every row, and a tuple per row is what keeps that cheap.
"""

from __future__ import annotations

import enum
from operator import attrgetter, methodcaller
from typing import TYPE_CHECKING, Any, Iterator, Optional, Tuple

from gotools_compat._oc import aggregation as agg
from gotools_compat.event import Key

if TYPE_CHECKING:
    from gotools_compat.stats import _Measure

Number = agg.Number
_MaybeNumber = Optional[Number]
# (The aliases below are builtin generics, cheaper at import than typing's.)

#: A row's label values, one per key in key order: the value as text, None
#: where the recording context had no value for the key (every one is
#: :data:`~gotools_compat.metric.OVERFLOW` in the row that takes the
#: combinations beyond ``max_rows``).
Labels = agg.Labels
#: One row of a count, sum or latest-value metric: ``(labels, value)``.
RowSnapshot = tuple[Labels, Number]
#: A histogram row's numbers: ``(counts, sum, min, max, sum_of_squared_deviation)``;
#: ``counts`` has one count per bucket (``value <= bound``) plus the overflow
#: bucket, not cumulative; min and max are None before the first value.
HistogramSnapshot = tuple[list[int], Number, _MaybeNumber, _MaybeNumber, float]
#: One row of a histogram: ``(labels, HistogramSnapshot)``.
HistogramRowSnapshot = tuple[Labels, HistogramSnapshot]

_labels = attrgetter("labels")
_histogram = methodcaller("snapshot")


class Kind(str, enum.Enum):
    """What a metric keeps: one per constructor (``Scalar.count_int64`` ... ``HistogramFloat64``).

    A ``str`` too: each compares equal to its value (``"count_int64"``...),
    which is what ``Registered.kind`` used to be.
    """

    COUNT_INT64 = "count_int64"
    SUM_INT64 = "sum_int64"
    LATEST_INT64 = "latest_int64"
    COUNT_FLOAT64 = "count_float64"
    SUM_FLOAT64 = "sum_float64"
    LATEST_FLOAT64 = "latest_float64"
    HISTOGRAM_INT64 = "histogram_int64"
    HISTOGRAM_FLOAT64 = "histogram_float64"

    def __str__(self) -> str:
        return str(self.value)

    @property
    def is_gauge(self) -> bool:
        """A latest value, which may go down (the others are cumulative)."""
        return self in _GAUGES

    @property
    def is_histogram(self) -> bool:
        """Rows are histograms (read them with ``Registered.histogram_rows()``)."""
        return self in _HISTOGRAMS

    @property
    def is_int(self) -> bool:
        """Values are ints: counts (of any measure), and the Int64 kinds."""
        return self in _INTS


_GAUGES = frozenset((Kind.LATEST_INT64, Kind.LATEST_FLOAT64))
_HISTOGRAMS = frozenset((Kind.HISTOGRAM_INT64, Kind.HISTOGRAM_FLOAT64))
_INTS = frozenset((Kind.COUNT_INT64, Kind.SUM_INT64, Kind.LATEST_INT64, Kind.COUNT_FLOAT64,
                   Kind.HISTOGRAM_INT64))


class Registered:
    """A metric made with this package, as :func:`~gotools_compat.metric.registered` lists it.

    Read-only.  ``name``, ``description``, ``keys`` and ``max_rows`` are its
    definition's, ``unit`` its measure's; ``buckets`` are a histogram's bounds
    as declared (``()`` for the other kinds).  ``opencensus_type`` is the
    ``MetricDescriptorType`` opencensus gives its view (``get_metrics()``),
    which the OpenCensus and OTLP wires start from.  ``info`` is the definition
    itself (a :class:`~gotools_compat.metric.Scalar` or a histogram),
    ``measure`` the measure it is built on.  :meth:`rows` and
    :meth:`histogram_rows` read its rows.
    """

    __slots__ = ("info", "definition", "recorder", "kind", "is_gauge", "name", "description",
                 "unit", "keys", "buckets", "max_rows", "opencensus_type")

    info: Any
    definition: Tuple[Any, ...]
    recorder: Any
    kind: Kind
    is_gauge: bool
    name: str
    description: str
    unit: str
    keys: Tuple[Key[Any], ...]
    buckets: Tuple[Number, ...]
    max_rows: int
    opencensus_type: int

    def __init__(self, info: Any, definition: Tuple[Any, ...], recorder: Any,
                 is_gauge: bool) -> None:
        kind = Kind(definition[0])
        fields = {
            "info": info, "definition": definition, "recorder": recorder, "kind": kind,
            "is_gauge": is_gauge, "name": str(info.name), "description": str(info.description),
            "unit": str(definition[1].unit), "keys": tuple(info.keys),
            "buckets": tuple(info.buckets) if kind.is_histogram else (),
            "max_rows": int(info.max_rows),
            "opencensus_type": int(recorder.aggregation.get_metric_type(None)),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Registered is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Registered is read-only")

    @property
    def measure(self) -> "_Measure":
        measure: _Measure = self.definition[1]
        return measure

    @property
    def start_time(self) -> str:
        """When its series started: ISO 8601 UTC text as opencensus writes it (a fork resets it)."""
        return str(self.recorder.start_time)

    def row_count(self) -> int:
        """How many rows it has now (without reading them)."""
        return len(self.recorder.rows)

    def rows(self, saturate: bool = False) -> Iterator[RowSnapshot]:
        """Each row of a count, sum or gauge metric as ``(labels, value)``, in creation order.

        Values are exact (an Int64 sum is an int of any size); with
        ``saturate`` they are as an int64 wire field carries them, held at
        the int64 limits (one WARNING per row that passes them).  A histogram
        is a TypeError: see :meth:`histogram_rows`.
        """
        if self.kind.is_histogram:
            raise TypeError("%s is a histogram: read it with histogram_rows()" % self.name)
        rows = self.recorder.snapshot_rows()
        if not rows:
            return iter(())
        read = getattr(type(rows[0]), "wire_value" if saturate else "value")
        return zip(map(_labels, rows), map(read, rows))

    def histogram_rows(self) -> Iterator[HistogramRowSnapshot]:
        """Each row of a histogram as ``(labels, (counts, sum, min, max, ssd))``, in creation order.

        See :data:`HistogramSnapshot`.  Any other kind is a TypeError: see :meth:`rows`.
        """
        if not self.kind.is_histogram:
            raise TypeError("%s is not a histogram: read it with rows()" % self.name)
        rows = self.recorder.snapshot_rows()
        return zip(map(_labels, rows), map(_histogram, rows))

    def __repr__(self) -> str:
        return "Registered(%r, %r)" % (self.info, str(self.kind))


__all__ = ["Kind", "Registered", "Labels", "RowSnapshot", "HistogramSnapshot",
           "HistogramRowSnapshot"]
