"""Metrics, as in Go's ``telemetry/metric`` package, kept in opencensus views.

``Scalar(...).count_float64(m)`` and friends, and ``HistogramFloat64(...).record(m)``,
build a metric on a measure: an opencensus ``View`` named after the metric,
with one column per key, whose rows are filled by ``m.record(ctx, v)``.
Each returns the metric's name, as in Go.

Definitions are checked at once: a bad name, key or bucket list is a
``ValueError`` or ``TypeError`` here, never a surprise at record time.  A
second metric with a name already taken is the same metric when the
definition is the same (same kind, measure, keys, description and buckets)
and a ``ValueError`` otherwise (E12).

Rows: one per combination of the values the metric's keys have in the
recording context; a key the context lacks is a row of its own (label value
None, "no value").  Cardinality policy: a metric keeps at most ``max_rows``
rows (default :data:`MAX_ROWS`); values of further combinations are counted in
one row whose every label is ``"__overflow__"``, with one WARNING, so memory
stays bounded and nothing recorded is lost.

Forks: a child of ``os.fork()`` starts every row at zero (gauges too), its
series starting at the fork, so it never reports its parent's totals as its
own; the parent keeps its rows.

Histograms count a value in bucket ``b`` when ``value <= b`` (Go, Prometheus,
OpenTelemetry), keep the bounds exactly as declared (zero and negatives
included) and add an overflow bucket; each row has count, sum, min, max and
sum of squared deviation.

Reading: :func:`collect` gives Go's data (``Int64Data``...);
:func:`registered` lists each metric as exporters read it, with its
:class:`Kind` and its rows' snapshots (:mod:`gotools_compat.metric.snapshot`).
"""

from __future__ import annotations

import datetime
import logging
import math
from typing import (TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar,
                    Union)

from gotools_compat import _oc  # noqa: F401  (clock patch before opencensus.stats)
from gotools_compat._oc import aggregation as agg
from gotools_compat._oc import views
from gotools_compat.event import Context, Key
from gotools_compat.metric.snapshot import (HistogramRowSnapshot, HistogramSnapshot, Kind, Labels,
                                            Registered, RowSnapshot)
from gotools_compat.metric import _registry
from gotools_compat.stats import Float64, Int64, _Measure

if TYPE_CHECKING:
    from gotools_compat.metric.data import (Float64Data, HistogramFloat64Data,
                                            HistogramFloat64Row, HistogramInt64Data,
                                            HistogramInt64Row, HistogramRow, Int64Data,
                                            MetricData)

log = logging.getLogger(__name__)

MAX_ROWS = 10_000

Number = Union[int, float]

class _Rows(views.Recorder):
    """The rows of one metric, and the subscriber that finds them from a Context.

    The row table itself (locks, the row limit, opencensus tag maps) is the
    bridge's ``views.Recorder``, which knows only label strings; here the
    metric's keys and the recording context meet it.
    """

    def __init__(self, name: str, keys: Tuple[Key[Any], ...], aggregation: agg.Aggregation,
                 accept: Callable[[Any], Any], max_rows: int) -> None:
        super().__init__(name, tuple(key.name for key in keys), aggregation, accept, max_rows)
        self.keys = keys
        self._bad_context_warned = False

    # The subscriber.  Called on every record: keep it short.

    def record(self, ctx: Any, value: Any) -> None:
        if ctx is None:
            row = self.ambient_row()
        else:
            try:
                row = ctx._rows[self]
            except (KeyError, AttributeError, TypeError):
                row = self.context_row(ctx)
        row.add(value)

    def context_row(self, ctx: Any) -> agg.Row:
        if not isinstance(ctx, Context):
            if not self._bad_context_warned:
                self._bad_context_warned = True
                log.warning("metric %r was recorded with %s instead of a Context; the "
                            "ambient opencensus tags are used", self.name, type(ctx).__name__)
            return self.ambient_row()
        labels = ctx.labels(self.keys)
        values = ctx._values
        tags = tuple(values.get(key) for key in self.keys)
        # Rows live as long as the metric and a context never changes, so the
        # context can keep the row (the overflow row too: at the limit, a new
        # combination stays there).
        row = ctx._rows[self] = self.row(labels, labels if tags == labels else tags)
        return row


#: The label value of every key in the row that takes the values of tag
#: combinations beyond a metric's ``max_rows``.
OVERFLOW = views.OVERFLOW


def registered() -> List[Registered]:
    """Every metric made with this package, in definition order (what exporters read)."""
    with _registry.lock:
        return list(_registry.current().values())


_T = TypeVar("_T")


def each_registered(cache: Dict[Registered, _T], make: Callable[[Registered], _T]) -> List[_T]:
    """An exporter's object for every registered metric, in definition order.

    ``cache`` keeps them between calls: ``make(entry)`` builds the object of
    a metric seen for the first time; those of metrics no longer registered
    (a registry closed or swapped, :mod:`gotools_compat.testing`) are dropped.
    """
    entries = registered()
    if len(cache) > len(entries):
        listed = set(entries)
        for stale in [e for e in list(cache) if e not in listed]:
            cache.pop(stale, None)
    out = []
    for entry in entries:
        found = cache.get(entry)
        if found is None:
            found = cache[entry] = make(entry)
        out.append(found)
    return out


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError("%s name must be a str, not %s" % (what, type(name).__name__))
    if not 0 < len(name) <= 255 or not all(32 <= ord(c) <= 126 for c in name):
        raise ValueError("%s name %r must be 1 to 255 printable ASCII characters"
                         % (what, name))
    return name


def _check_keys(keys: Sequence[Key[Any]]) -> Tuple[Key[Any], ...]:
    if isinstance(keys, (str, bytes)) or not isinstance(keys, (list, tuple)):
        raise TypeError("keys must be a list or tuple of event keys")
    names = set()
    for key in keys:
        if not isinstance(key, Key):
            raise TypeError("keys must be made by event.new_*_key(), not %r" % (key,))
        if key.name in names:
            raise ValueError("two keys named %r in one metric" % key.name)
        names.add(key.name)
    return tuple(keys)


def _check_max_rows(max_rows: Optional[int]) -> int:
    if max_rows is None:
        return MAX_ROWS
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError("max_rows must be a positive int, not %r" % (max_rows,))
    return max_rows


def _check_buckets(buckets: Sequence[Number], is_int: bool) -> Tuple[Number, ...]:
    if isinstance(buckets, (str, bytes)) or not isinstance(buckets, (list, tuple)):
        raise TypeError("buckets must be a list or tuple of numbers")
    if not buckets:
        raise ValueError("a histogram needs at least one bucket bound")
    out: List[Number] = []
    for bound in buckets:
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise TypeError("bucket bounds must be numbers, not %r" % (bound,))
        if is_int and not isinstance(bound, int):
            raise TypeError("HistogramInt64 bounds must be ints, not %r" % (bound,))
        if not is_int:
            bound = float(bound)
            if not math.isfinite(bound):
                raise ValueError("bucket bounds must be finite, not %r" % (bound,))
        out.append(bound)
    for lower, upper in zip(out, out[1:]):
        if not lower < upper:
            raise ValueError("bucket bounds must be strictly increasing; %r then %r"
                             % (lower, upper))
    return tuple(out)


def _register(info: Any, kind: Kind, measure: _Measure, measure_type: type,
              aggregation: agg.Aggregation, extra: Tuple[Any, ...] = ()) -> str:
    if not isinstance(measure, measure_type):
        raise TypeError("%s needs a stats.%s measure, not %r"
                        % (kind, measure_type.__name__, measure))
    name: str = info.name
    definition = (kind, measure, info.keys, info.description) + extra
    with _registry.lock:
        metrics = _registry.current()
        existing = metrics.get(name)
        if existing is not None:
            if existing.definition == definition:
                return name
            raise ValueError("metric %r already exists with another definition (%s on %r)"
                             % (name, existing.definition[0], existing.definition[1]))
        if measure.opencensus is None:
            measure.opencensus = views.opencensus_measure(
                measure.name, measure.description, measure.unit, isinstance(measure, Int64))
        recorder = _Rows(name, info.keys, aggregation, measure.accept, info.max_rows)
        views.register(name, info.description, measure.opencensus, recorder)
        measure._add_subscriber(_registry.subscriber(recorder))
        metrics[name] = Registered(info, definition, recorder, kind.is_gauge)
    return name


class Scalar:
    """Construction info for a scalar metric (Go's ``metric.Scalar``)."""

    def __init__(self, name: str, description: str = "", keys: Sequence[Key[Any]] = (),
                 max_rows: Optional[int] = None) -> None:
        self.name = _check_name(name, "metric")
        if not isinstance(description, str):
            raise TypeError("description must be a str")
        self.description = description
        self.keys = _check_keys(keys)
        self.max_rows = _check_max_rows(max_rows)

    def __repr__(self) -> str:
        return "Scalar(%r)" % self.name

    def count_int64(self, measure: Int64) -> str:
        """A cumulative count of records on ``measure``."""
        return _register(self, Kind.COUNT_INT64, measure, Int64, agg.Count())

    def sum_int64(self, measure: Int64) -> str:
        """A cumulative sum of ``measure``'s values (an exact int)."""
        return _register(self, Kind.SUM_INT64, measure, Int64, agg.Sum(True))

    def latest_int64(self, measure: Int64) -> str:
        """A gauge: the last value recorded on ``measure``."""
        return _register(self, Kind.LATEST_INT64, measure, Int64, agg.LastValue(True))

    def count_float64(self, measure: Float64) -> str:
        """A cumulative count of records on ``measure`` (an int, as in Go)."""
        return _register(self, Kind.COUNT_FLOAT64, measure, Float64, agg.Count())

    def sum_float64(self, measure: Float64) -> str:
        """A cumulative sum of ``measure``'s values."""
        return _register(self, Kind.SUM_FLOAT64, measure, Float64, agg.Sum(False))

    def latest_float64(self, measure: Float64) -> str:
        """A gauge: the last value recorded on ``measure``."""
        return _register(self, Kind.LATEST_FLOAT64, measure, Float64, agg.LastValue(False))


class _Histogram:
    _is_int = False

    def __init__(self, name: str, description: str = "", buckets: Sequence[Number] = (),
                 keys: Sequence[Key[Any]] = (), max_rows: Optional[int] = None) -> None:
        self.name = _check_name(name, "metric")
        if not isinstance(description, str):
            raise TypeError("description must be a str")
        self.description = description
        self.buckets = _check_buckets(buckets, self._is_int)
        self.keys = _check_keys(keys)
        self.max_rows = _check_max_rows(max_rows)

    def __repr__(self) -> str:
        return "%s(%r, buckets=%r)" % (type(self).__name__, self.name, list(self.buckets))


class HistogramInt64(_Histogram):
    """A histogram of an Int64 measure (Go's ``metric.HistogramInt64``)."""

    _is_int = True

    def record(self, measure: Int64) -> str:
        return _register(self, Kind.HISTOGRAM_INT64, measure, Int64,
                         agg.Distribution(self.buckets, True), (self.buckets,))


class HistogramFloat64(_Histogram):
    """A histogram of a Float64 measure (Go's ``metric.HistogramFloat64``)."""

    def record(self, measure: Float64) -> str:
        return _register(self, Kind.HISTOGRAM_FLOAT64, measure, Float64,
                         agg.Distribution(self.buckets, False), (self.buckets,))


def collect() -> List[MetricData]:
    """A snapshot of every metric made with this package, in definition order."""
    from gotools_compat.metric.data import snapshot

    entries = registered()
    now = datetime.datetime.now(datetime.timezone.utc)
    return [snapshot(entry, now) for entry in entries]


def opencensus_measure(measure: _Measure) -> Any:
    """The opencensus measure behind ``measure`` (for ``MeasurementMap`` interop).

    Values recorded on it through opencensus land in the same rows, with the
    same rules, as ``measure.record``.
    """
    with _registry.lock:
        if measure.opencensus is None:
            measure.opencensus = views.opencensus_measure(
                measure.name, measure.description, measure.unit, isinstance(measure, Int64))
        return measure.opencensus


_DATA = frozenset(("Int64Data", "Float64Data", "HistogramInt64Data", "HistogramFloat64Data",
                   "HistogramRow", "HistogramInt64Row", "HistogramFloat64Row", "MetricData"))


def __getattr__(name: str) -> Any:
    # Go's data types load with the first collect() or the first use of a name:
    # a program that only records never pays for them.
    if name in _DATA:
        from gotools_compat.metric import data

        return getattr(data, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


__all__ = [
    "Scalar", "HistogramInt64", "HistogramFloat64", "Int64Data", "Float64Data",
    "HistogramInt64Data", "HistogramFloat64Data", "HistogramRow", "HistogramInt64Row",
    "HistogramFloat64Row", "MetricData", "MAX_ROWS", "collect", "opencensus_measure",
    "Registered", "registered", "each_registered", "Kind", "Labels", "RowSnapshot",
    "HistogramSnapshot", "HistogramRowSnapshot", "OVERFLOW",
]
