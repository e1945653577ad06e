"""Series of one metric of one export, made into the store's records.

The dict key of a series is its finished label string (UTF-8 bytes, const and
target labels included), which guarantees that no series appears twice.
A histogram's record is ``(bounds, counts, sum_text)``: the per-bucket counts
as sent (a tuple, the overflow bucket last) and the sum already formatted.
The renderer makes the cumulative counts at scrape time, so ingest does no
per-bucket work.  Malformed series are dropped here and counted in
``rejected``: they are never rendered.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from gotools_compat._promtext import clean, float_bytes, label_pair_bytes

from ._kinds import (
    GAUGE,
    GAUGE_HISTOGRAM,
    HISTOGRAM,
    SUMMARY,
    Family,
    Record,
    cumulative_counts,
    merge,
    per_bucket,
    quantiles_ok,
)
from ._model import SeriesOf, Summary, bounded_cache_put

VALUE_CACHE_LIMIT = 10_000
_MISSING: Any = object()


def bounds_ok(bounds: Tuple[float, ...]) -> bool:
    """Strictly increasing finite bounds: each ``le`` value distinct."""
    previous = -math.inf
    for bound in bounds:
        if not (bound > previous) or math.isinf(bound) or bound != bound:
            return False
        previous = bound
    return True


class Plan:
    """How to turn one sender metric descriptor into series of a family."""

    __slots__ = ("family", "keys", "caches", "gauge")

    def __init__(self, family: Family, keys: List[str]) -> None:
        self.family = family
        self.keys = keys
        # Per label: its cache of value -> pair and the pair's opening `key="`.
        self.caches: List[Tuple[Dict[str, bytes], str, bytes]] = [
            ({}, key, ('%s="' % key).encode("utf-8")) for key in keys]
        self.gauge = family.kind in (GAUGE, GAUGE_HISTOGRAM)


class SeriesBuilder:
    """The record-making half of the store (see :class:`._store.Store`)."""

    def __init__(self) -> None:
        self.rejected = 0  # time series dropped as malformed, for tests and logs
        self._bounds: Dict[Tuple[float, ...], Optional[Tuple[float, ...]]] = {}
        self._bounds_lock = threading.Lock()

    def series_of(self, plan: Plan, prefix: bytes, timeseries: SeriesOf) -> Dict[bytes, Record]:
        kind = plan.family.kind
        if kind in (HISTOGRAM, GAUGE_HISTOGRAM):
            return self._histograms(plan, prefix, timeseries)
        if kind == SUMMARY:
            return self._summaries(plan, prefix, timeseries)
        return self._scalars(plan, prefix, timeseries)

    def _labels(self, plan: Plan, prefix: bytes, values: Sequence[str]) -> Optional[bytes]:
        """The series' key; None (malformed) for more label values than the metric has keys.

        Fewer values leave the last keys without a value, which is no label."""
        if not values:
            return prefix
        if len(values) > len(plan.caches):
            return None
        parts = [prefix] if prefix else []
        append = parts.append
        for (cache, key, opening), text in zip(plan.caches, values):
            if text:  # an empty value is no label in Prometheus
                pair = cache.get(text)
                if pair is None:  # label_pair_bytes and bounded_cache_put inlined
                    if '"' in text or "\\" in text or "\n" in text:
                        pair = label_pair_bytes(key, text)
                    else:
                        try:
                            pair = opening + text.encode("utf-8") + b'"'
                        except UnicodeEncodeError:  # a lone surrogate: U+FFFD
                            pair = opening + clean(text).encode("utf-8") + b'"'
                    if len(cache) >= VALUE_CACHE_LIMIT:
                        cache.clear()
                    cache[text] = pair
                append(pair)
        return b",".join(parts)

    def _bounds_of(self, raw: Tuple[float, ...]) -> Optional[Tuple[float, ...]]:
        with self._bounds_lock:
            checked = raw if bounds_ok(raw) else None
            bounded_cache_put(self._bounds, raw, checked, VALUE_CACHE_LIMIT)
        return checked

    def _histograms(self, plan: Plan, prefix: bytes,
                    timeseries: SeriesOf) -> Dict[bytes, Record]:
        out: Dict[bytes, Record] = {}
        known = self._bounds
        labels = self._labels
        gauge = plan.gauge
        last_raw: Any = None
        bounds: Any = None
        size = 0
        for values, value in timeseries:
            if type(value) is not tuple:
                self.rejected += 1
                continue
            count, total, raw, counts = value
            lbl = labels(plan, prefix, values) if values else prefix
            if lbl is None:
                self.rejected += 1
                continue
            if raw is not last_raw:  # readers hand over one object for the same bounds
                bounds = known.get(raw, _MISSING)
                if bounds is _MISSING:
                    bounds = self._bounds_of(raw)
                last_raw = raw
                size = len(bounds) + 1 if bounds is not None else 0
            # float_bytes inlined for the common sum: finite, not integral.
            if -1e15 < total < 1e15 and not total.is_integer():
                sum_text = b"%r" % total
            else:
                sum_text = float_bytes(total)
            if size and len(counts) == size and count >= 0 and min(counts) >= 0:
                # The common case: per-bucket counts as sent, copied (a
                # record is immutable and shares nothing with its reader).
                record = (bounds, tuple(counts), sum_text)
            else:
                if count < 0:
                    cum: Optional[List[int]] = None  # a negative count is no count
                    record_bounds: Any = ()
                elif not counts:
                    cum = [count]
                    record_bounds = ()
                else:
                    record_bounds = bounds
                    cum = None if bounds is None else cumulative_counts(
                        list(counts), len(bounds), count)
                if cum is None:
                    self.rejected += 1
                    continue
                record = (record_bounds, per_bucket(cum), sum_text)
            if not gauge and lbl in out:
                record = merge(HISTOGRAM, lbl, out[lbl], record)
            out[lbl] = record
        return out

    def _scalars(self, plan: Plan, prefix: bytes,
                 timeseries: SeriesOf) -> Dict[bytes, Record]:
        out: Dict[bytes, Record] = {}
        gauge = plan.gauge
        for values, value in timeseries:
            kind = type(value)
            if kind is not int and kind is not float:
                self.rejected += 1
                continue
            lbl = self._labels(plan, prefix, values)
            if lbl is None:
                self.rejected += 1
                continue
            if not gauge and lbl in out:
                value = out[lbl] + value
            out[lbl] = value
        return out

    def _summaries(self, plan: Plan, prefix: bytes,
                   timeseries: SeriesOf) -> Dict[bytes, Record]:
        out: Dict[bytes, Record] = {}
        for values, value in timeseries:
            # A negative count, a quantile twice (two samples of one series)
            # or outside [0, 1]: the series is rejected, never rendered.
            if type(value) is not Summary or value.count < 0 \
                    or not quantiles_ok(value.quantiles):
                self.rejected += 1
                continue
            record = (value.count, value.sum, value.quantiles)
            lbl = self._labels(plan, prefix, values)
            if lbl is None:
                self.rejected += 1
                continue
            if lbl in out:
                record = merge(SUMMARY, lbl, out[lbl], record)
            out[lbl] = record
        return out
