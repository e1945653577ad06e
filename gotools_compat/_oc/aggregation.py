"""Compat aggregations: the rows behind each metric, as opencensus aggregation data.

Recording appends the value to the row's buffer (one atomic ``list.append``,
no lock); the buffer is folded into the totals by whoever finds it full, and
before every read (``to_point``, ``snapshot``).  Folding a batch uses C
builtins (sort, bisect, sum, min, max), which is both cheaper per value than
updating every statistic on each record and keeps the record path free of
locks.  Totals are exact: a value is in the buffer or in the totals, never
both, never neither (the fold takes ``buf[:n]`` and deletes exactly those
``n`` under the metric's lock; concurrent appends land after them).

Bucket rule, as Go, Prometheus and OpenTelemetry: a value counts in the first
bucket whose bound is ``>= value``; bounds are kept exactly as declared, zero
and negatives included (opencensus's own Explicit refuses them and counts
``value < bound``: E9).
"""

from __future__ import annotations

import logging
from array import array
from bisect import bisect_left, bisect_right
from operator import mul
from threading import Lock
from time import sleep
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from opencensus.metrics.export import point as oc_point
from opencensus.metrics.export import value as oc_value
from opencensus.metrics.export.metric_descriptor import MetricDescriptorType

log = logging.getLogger(__name__)

Number = Union[int, float]

INT64_MAX = 2 ** 63 - 1
INT64_MIN = -(2 ** 63)
_saturated: Set[int] = set()  # ids of rows already warned about (rows live forever)
Labels = Tuple[Optional[str], ...]

# A full buffer is folded by the thread that filled it.  64 values keep the
# fold cheap per value and bound the memory of a busy row.
DRAIN_AT = 64
# ... and waits for the lock to fold one that reached this many (see drain_soon).
DRAIN_LIMIT = 1024

# Buckets are immutable: the common small counts share one object each,
# which saves up to 14 allocations per series on every collection.
_SMALL_INTS = 1024
_BUCKETS: List[oc_value.Bucket] = []  # filled on first use, not at import


def _shared_buckets() -> List[oc_value.Bucket]:
    if not _BUCKETS:
        _BUCKETS[:] = [oc_value.Bucket(count) for count in range(_SMALL_INTS)]
    return _BUCKETS


class Row:
    """One tag combination of one metric.  ``labels`` is the opencensus row key."""

    __slots__ = ("buf", "lock", "labels", "tags")

    def __init__(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> None:
        self.buf: List[Any] = []
        self.lock = lock
        self.labels = labels
        self.tags = tags

    def add(self, value: Any) -> None:
        buf = self.buf
        buf.append(value)
        if len(buf) >= DRAIN_AT:
            self.drain_soon()

    def drain_soon(self) -> None:
        """Fold the buffer now, unless another thread holds the metric's lock.

        Then it stays for a later record (or the reader) to fold; past
        DRAIN_LIMIT values this thread waits, which bounds the buffer.  It
        never blocks on the lock: a thread that blocks there gets the lock
        back while the GIL is elsewhere and holds it while it waits for the
        GIL, so the recording threads end up taking turns every few records
        (two threads took 1.5x to 1.9x the time of one).  It yields the GIL
        until the lock is free instead.
        """
        lock = self.lock
        if lock.acquire(False):
            try:
                self._drain_locked()
            finally:
                lock.release()
        elif len(self.buf) >= DRAIN_LIMIT:
            while not lock.acquire(False):
                sleep(0)  # let the holder, which wants the GIL, finish
            try:
                self._drain_locked()
            finally:
                lock.release()

    def drain(self) -> None:
        with self.lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        buf = self.buf
        if buf:
            items = buf[:]
            del buf[:len(items)]
            self._fold(items)

    def _fold(self, items: List[Any]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Back to zero (a forked child); called with the lock held."""
        del self.buf[:]
        self._zero()

    def _zero(self) -> None:
        raise NotImplementedError

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Row":
        # opencensus deep-copies view data on its MeasurementMap path (E8);
        # a copy is a folded snapshot that shares nothing mutable.
        with self.lock:
            self._drain_locked()
            copy = self._copy()
        return copy

    def _copy(self) -> "Row":
        raise NotImplementedError


class CountRow(Row):
    __slots__ = ("count",)

    def __init__(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> None:
        super().__init__(lock, labels, tags)
        self.count = 0

    def _fold(self, items: List[Any]) -> None:
        self.count += len(items)

    def _zero(self) -> None:
        self.count = 0

    def value(self) -> int:
        with self.lock:
            self._drain_locked()
            return self.count

    wire_value = value

    def to_point(self, timestamp: Any) -> oc_point.Point:
        return oc_point.Point(oc_value.ValueLong(self.value()), timestamp)

    def _copy(self) -> "CountRow":
        copy = CountRow(Lock(), self.labels, self.tags)
        copy.count = self.count
        return copy


class SumRow(Row):
    __slots__ = ("sum", "value_type")

    def __init__(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...],
                 is_int: bool) -> None:
        super().__init__(lock, labels, tags)
        self.sum: Number = 0 if is_int else 0.0
        self.value_type = oc_value.ValueLong if is_int else oc_value.ValueDouble

    def _fold(self, items: List[Any]) -> None:
        self.sum += sum(items)

    def _zero(self) -> None:
        self.sum = 0 if self.value_type is oc_value.ValueLong else 0.0

    def value(self) -> Number:
        """The exact sum (an int of any size for Int64 measures)."""
        with self.lock:
            self._drain_locked()
            return self.sum

    def wire_value(self) -> Number:
        """The sum as an int64 wire field can carry it: saturated at the int64 limits.

        Only an Int64 sum can pass them (each value is an int64, the sum is
        not); Prometheus text keeps the exact value, the OpenCensus and OTLP
        wires get the limit, with one WARNING per row.
        """
        value = self.value()
        if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            if id(self) not in _saturated:
                _saturated.add(id(self))
                log.warning("an Int64 sum (row %r) is %d, past the int64 range: it is "
                            "exported as %d", self.labels, value,
                            INT64_MAX if value > 0 else INT64_MIN)
            return INT64_MAX if value > 0 else INT64_MIN
        return value

    def to_point(self, timestamp: Any) -> oc_point.Point:
        return oc_point.Point(self.value_type(self.wire_value()), timestamp)

    def _copy(self) -> "SumRow":
        copy = SumRow(Lock(), self.labels, self.tags, self.value_type is oc_value.ValueLong)
        copy.sum = self.sum
        return copy


class LastValueRow(Row):
    """A gauge: one assignment per record, no buffer (last write wins)."""

    __slots__ = ("last", "value_type")

    def __init__(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...],
                 is_int: bool) -> None:
        super().__init__(lock, labels, tags)
        self.last: Number = 0 if is_int else 0.0
        self.value_type = oc_value.ValueLong if is_int else oc_value.ValueDouble

    def add(self, value: Any) -> None:
        self.last = value

    def _zero(self) -> None:
        self.last = 0 if self.value_type is oc_value.ValueLong else 0.0

    def value(self) -> Number:
        return self.last

    wire_value = value

    def to_point(self, timestamp: Any) -> oc_point.Point:
        return oc_point.Point(self.value_type(self.last), timestamp)

    def _copy(self) -> "LastValueRow":
        copy = LastValueRow(Lock(), self.labels, self.tags, self.value_type is oc_value.ValueLong)
        copy.last = self.last
        return copy


class CompatDistribution(oc_value.ValueDistribution):  # type: ignore[misc]
    """opencensus's ValueDistribution, plus the row's min and max.

    Built without the stock constructor, which re-validates every bucket, and
    with our bounds, which may be zero or negative.
    """

    min: Optional[Number]
    max: Optional[Number]


class HistogramRow(Row):
    __slots__ = ("options", "bounds", "counts", "sum", "min", "max", "mean", "m2")

    def __init__(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...],
                 options: "Distribution", is_int: bool) -> None:
        super().__init__(lock, labels, tags)
        self.options = options
        self.bounds = options.bounds
        self.counts = array("q", bytes(8 * (len(self.bounds) + 1)))
        self.sum: Number = 0 if is_int else 0.0
        self.min: Optional[Number] = None
        self.max: Optional[Number] = None
        self.mean = 0.0
        self.m2 = 0.0

    def _fold(self, items: List[Any]) -> None:
        counts = self.counts
        bounds = self.bounds
        n = len(items)
        if n < 8:
            for v in items:
                counts[bisect_left(bounds, v)] += 1
            lo, hi = min(items), max(items)
        else:
            items.sort()
            done = 0
            for i, bound in enumerate(bounds):
                upto = bisect_right(items, bound)  # values <= bound
                if upto != done:
                    counts[i] += upto - done
                    done = upto
            counts[-1] += n - done
            lo, hi = items[0], items[-1]
        if self.min is None or lo < self.min:
            self.min = lo
        if self.max is None or hi > self.max:
            self.max = hi
        self.sum += sum(items)
        # Mean and squared deviation of the batch, shifted by its first value
        # for accuracy, merged into the row's (Chan et al.).
        shift = items[0]
        if n == 1:
            batch_mean, batch_m2 = float(shift), 0.0
        else:
            deltas = [v - shift for v in items]
            total = sum(deltas)
            batch_mean = shift + total / n
            batch_m2 = max(float(sum(map(mul, deltas, deltas)) - total * total / n), 0.0)
        before = sum(counts) - n
        if before == 0:
            self.mean, self.m2 = batch_mean, batch_m2
        else:
            after = before + n
            delta = batch_mean - self.mean
            self.mean += delta * n / after
            self.m2 += batch_m2 + delta * delta * before * n / after

    def _zero(self) -> None:
        self.counts = array("q", bytes(8 * len(self.counts)))
        self.sum = 0 if isinstance(self.sum, int) else 0.0
        self.min = self.max = None
        self.mean = self.m2 = 0.0

    def snapshot(self) -> Tuple[List[int], Number, Optional[Number], Optional[Number], float]:
        """(per-bucket counts with overflow, sum, min, max, sum of squared deviation)."""
        with self.lock:
            self._drain_locked()
            return self.counts.tolist(), self.sum, self.min, self.max, self.m2

    def to_point(self, timestamp: Any) -> oc_point.Point:
        dist = CompatDistribution.__new__(CompatDistribution)
        with self.lock:
            self._drain_locked()
            counts = self.counts
            shared = _BUCKETS or _shared_buckets()
            dist._buckets = [shared[c] if c < _SMALL_INTS else oc_value.Bucket(c) for c in counts]
            dist._sum = self.sum
            dist._sum_of_squared_deviation = self.m2
            dist.min = self.min
            dist.max = self.max
        dist._count = sum(counts)
        dist._bucket_options = self.options.bucket_options
        return oc_point.Point(dist, timestamp)

    def _copy(self) -> "HistogramRow":
        copy = HistogramRow(Lock(), self.labels, self.tags, self.options,
                            isinstance(self.sum, int))
        copy.counts = array("q", self.counts)
        copy.sum, copy.min, copy.max, copy.mean, copy.m2 = (
            self.sum, self.min, self.max, self.mean, self.m2)
        return copy


# The aggregations: what a View needs (its descriptor type) and a row factory.

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
        self.bounds = tuple(bounds)
        self.is_int = is_int
        explicit = oc_value.Explicit.__new__(oc_value.Explicit)
        explicit._bounds = [float(b) for b in self.bounds]
        self.bucket_options = oc_value.BucketOptions(explicit)

    @staticmethod
    def get_metric_type(measure: Any) -> int:
        return int(MetricDescriptorType.CUMULATIVE_DISTRIBUTION)

    def new_row(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...]) -> Row:
        return HistogramRow(lock, labels, tags, self, self.is_int)


Aggregation = Union[Count, Sum, LastValue, Distribution]
