"""Metric kinds, the exposed family, and the rules for a kind's stored records.

A stored record is an ``int`` or ``float`` (gauges, counters), a histogram's
``(bounds, per-bucket counts, sum_text)`` (the overflow bucket last, the sum
already formatted) or a summary's ``(count, sum, quantiles)``.  Records are
immutable: readers copy references, never values.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Any, Dict, Iterator, List, Optional, Protocol, Tuple

from opencensus.metrics.export.metric_descriptor import MetricDescriptorType as T

from gotools_compat._promtext import clean, float_bytes

from ._model import Summary

GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"
GAUGE_HISTOGRAM = "gaugehistogram"
SUMMARY = "summary"

# MetricDescriptor.Type -> kind; UNSPECIFIED (0, not in the class) is inferred from the points.
KINDS = {T.GAUGE_INT64: GAUGE, T.GAUGE_DOUBLE: GAUGE, T.GAUGE_DISTRIBUTION: GAUGE_HISTOGRAM,
         T.CUMULATIVE_INT64: COUNTER, T.CUMULATIVE_DOUBLE: COUNTER,
         T.CUMULATIVE_DISTRIBUTION: HISTOGRAM, T.SUMMARY: SUMMARY}
SUFFIXES = {
    GAUGE: ("",),
    COUNTER: ("", "_total"),
    HISTOGRAM: ("", "_bucket", "_sum", "_count"),
    GAUGE_HISTOGRAM: ("", "_bucket", "_sum", "_count", "_gsum", "_gcount"),
    SUMMARY: ("", "_sum", "_count"),
}
# Label names a kind uses itself; a sender's label of that name is renamed.
OWN_LABELS = {HISTOGRAM: ("le",), GAUGE_HISTOGRAM: ("le",), SUMMARY: ("quantile",)}

Record = Any  # int | float | (bounds, counts, sum_text) | (count, sum, quantiles)


class Items(Protocol):
    """One family's series in a snapshot: ``(labels, record)`` pairs, and how many."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Tuple[bytes, Record]]: ...


class Family:
    """One exposed metric family: name, kind, help, unit.

    The help text is kept valid UTF-8 (lone surrogates made U+FFFD), so no
    sender's description can break a scrape."""

    __slots__ = ("name", "kind", "help", "unit", "templates")

    def __init__(self, name: str, kind: str, help: str, unit: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help if help.isascii() else clean(help)
        self.unit = unit
        self.templates: Dict[Any, bytes] = {}  # filled by the renderer


def inferred(value: Any) -> Optional[str]:
    """The kind of a metric of type UNSPECIFIED, from the value of its first series."""
    kind = type(value)
    if kind is int or kind is float:
        return GAUGE
    if kind is tuple:
        return HISTOGRAM
    if kind is Summary:
        return SUMMARY
    return None


def merge(kind: str, lbl: bytes, old: Record, new: Record) -> Record:
    """Two records of one series: the sum, or for gauges the newer one."""
    if kind in (GAUGE, GAUGE_HISTOGRAM):
        return new
    if kind == COUNTER:
        return old + new
    if kind == HISTOGRAM:
        if old[0] != new[0]:
            return new  # different bounds cannot be added
        counts = tuple([a + b for a, b in zip(old[1], new[1])])
        return (new[0], counts, float_bytes(float(old[2]) + float(new[2])))
    return (old[0] + new[0], old[1] + new[1], new[2])  # summary


def cumulative_counts(counts: List[int], nbounds: int, count: int) -> Optional[List[int]]:
    """Cumulative bucket counts ending with +Inf, or None when they make no sense.

    ``counts`` (changed in place) are per bucket with an overflow bucket, or
    Go x/tools' form: one cumulative count per bound, no overflow bucket.
    """
    n = len(counts)
    if n == nbounds + 1:
        if min(counts) < 0:
            return None
        return list(accumulate(counts))
    if n == nbounds and n:
        # Go's x/tools exporter: one cumulative count per bound, no overflow.
        if min(counts) < 0:
            return None
        if all(a <= b for a, b in zip(counts, counts[1:])):
            counts.append(max(count, counts[-1]))
            return counts
        cum = list(accumulate(counts))
        cum.append(max(count, cum[-1]))
        return cum
    return None


def per_bucket(cum: List[int]) -> Tuple[int, ...]:
    """Per-bucket counts of cumulative ones (which never decrease)."""
    return (cum[0],) + tuple([b - a for a, b in zip(cum, cum[1:])])


def quantiles_ok(quantiles: Tuple[Tuple[float, float], ...]) -> bool:
    """Each quantile in [0, 1] and none twice (two 50th percentiles would be
    two samples of one series)."""
    seen = set()
    for q, _ in quantiles:
        if not 0.0 <= q <= 1.0 or q in seen:
            return False
        seen.add(q)
    return True
