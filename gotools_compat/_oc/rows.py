"""The rows behind each metric: counts, sums and latest values, and how records reach them.

Recording appends the value to the row's buffer (one atomic ``list.append``,
no lock); the buffer is folded into the totals by whoever finds it full, and
before every read (``to_point``, ``snapshot``).  Folding a batch uses C
builtins (sort, bisect, sum, min, max), which is both cheaper per value than
updating every statistic on each record and keeps the record path free of
locks.  Totals are exact: a value is in the buffer or in the totals, never
both, never neither (the fold takes ``buf[:n]`` and deletes exactly those
``n`` under the metric's lock; concurrent appends land after them).

Each row is also opencensus aggregation data (``to_point``).  Histogram rows
are :mod:`.histogram`'s; the aggregations that make rows, :mod:`.aggregation`'s.
"""

from __future__ import annotations

import logging
from threading import Lock
from time import sleep
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from opencensus.metrics.export import value as oc_value

if TYPE_CHECKING:
    from opencensus.metrics.export.point import Point

log = logging.getLogger(__name__)

Number = Union[int, float]

INT64_MAX = 2 ** 63 - 1
INT64_MIN = -(2 ** 63)
Labels = Tuple[Optional[str], ...]

# A full buffer is folded by the thread that filled it.  64 values keep the
# fold cheap per value and bound the memory of a busy row.
DRAIN_AT = 64
# ... and waits for the lock to fold one that reached this many (see drain_soon).
DRAIN_LIMIT = 1024

_Point: Any = None


def new_point(value: Any, timestamp: Any) -> Point:
    """An opencensus ``Point``; its module loads with the first export, which needs it."""
    global _Point
    if _Point is None:
        from opencensus.metrics.export import point

        _Point = point.Point
    return _Point(value, timestamp)


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

    def to_point(self, timestamp: Any) -> Point:
        return new_point(oc_value.ValueLong(self.value()), timestamp)

    def _copy(self) -> "CountRow":
        copy = CountRow(Lock(), self.labels, self.tags)
        copy.count = self.count
        return copy


class SumRow(Row):
    __slots__ = ("sum", "value_type", "saturation_warned")

    def __init__(self, lock: Lock, labels: Labels, tags: Tuple[Any, ...],
                 is_int: bool) -> None:
        super().__init__(lock, labels, tags)
        self.sum: Number = 0 if is_int else 0.0
        self.value_type = oc_value.ValueLong if is_int else oc_value.ValueDouble
        self.saturation_warned = False

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
            if not self.saturation_warned:
                self.saturation_warned = True
                log.warning("an Int64 sum (row %r) is %d, past the int64 range: it is "
                            "exported as %d", self.labels, value,
                            INT64_MAX if value > 0 else INT64_MIN)
            return INT64_MAX if value > 0 else INT64_MIN
        return value

    def to_point(self, timestamp: Any) -> Point:
        return new_point(self.value_type(self.wire_value()), timestamp)

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

    def to_point(self, timestamp: Any) -> Point:
        return new_point(self.value_type(self.last), timestamp)

    def _copy(self) -> "LastValueRow":
        copy = LastValueRow(Lock(), self.labels, self.tags, self.value_type is oc_value.ValueLong)
        copy.last = self.last
        return copy
