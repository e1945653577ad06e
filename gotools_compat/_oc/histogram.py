"""Histogram rows: bucket counts, sum, min, max and squared deviation, folded in batches.

Bucket rule, as Go, Prometheus and OpenTelemetry: a value counts in the first
bucket whose bound is ``>= value``; bounds are kept exactly as declared, zero
and negatives included (opencensus's own Explicit refuses them and counts
``value < bound``: E9).  Records reach the row as every row's do (see
:mod:`.rows`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import mul
from threading import Lock
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from opencensus.metrics.export import value as oc_value

from gotools_compat._oc.rows import Labels, Number, Row, new_point

if TYPE_CHECKING:
    from opencensus.metrics.export.point import Point

    from gotools_compat._oc.aggregation import Distribution

# Buckets are immutable: the common small counts share one object each,
# which saves up to 14 allocations per series on every collection.
SMALL_INTS = 1024
_BUCKETS: List[oc_value.Bucket] = []  # filled on first use, not at import


def _shared_buckets() -> List[oc_value.Bucket]:
    if not _BUCKETS:
        _BUCKETS[:] = [oc_value.Bucket(count) for count in range(SMALL_INTS)]
    return _BUCKETS


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
        self.counts = [0] * (len(self.bounds) + 1)
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
        self.counts = [0] * len(self.counts)
        self.sum = 0 if isinstance(self.sum, int) else 0.0
        self.min = self.max = None
        self.mean = self.m2 = 0.0

    def snapshot(self) -> Tuple[List[int], Number, Optional[Number], Optional[Number], float]:
        """(per-bucket counts with overflow, sum, min, max, sum of squared deviation)."""
        with self.lock:
            self._drain_locked()
            return self.counts[:], self.sum, self.min, self.max, self.m2

    def to_point(self, timestamp: Any) -> Point:
        dist = CompatDistribution.__new__(CompatDistribution)
        with self.lock:
            self._drain_locked()
            counts = self.counts
            shared = _BUCKETS or _shared_buckets()
            dist._buckets = [shared[c] if c < SMALL_INTS else oc_value.Bucket(c) for c in counts]
            dist._sum = self.sum
            dist._sum_of_squared_deviation = self.m2
            dist.min = self.min
            dist.max = self.max
        dist._count = sum(counts)
        dist._bucket_options = self.options.bucket_options
        return new_point(dist, timestamp)

    def _copy(self) -> "HistogramRow":
        copy = HistogramRow(Lock(), self.labels, self.tags, self.options,
                            isinstance(self.sum, int))
        copy.counts = self.counts[:]
        copy.sum, copy.min, copy.max, copy.mean, copy.m2 = (
            self.sum, self.min, self.max, self.mean, self.m2)
        return copy
