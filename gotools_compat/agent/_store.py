"""The agent's series: one map per sender and family, replaced series by series.

Every export of a cumulative metric carries its current totals, so a series is
stored as the last value received and replaced by the next one.  Series are
kept in the shape the renderer needs: the dict key is the finished label
string (UTF-8 bytes, const and target labels included), which makes it a
guarantee that no series appears twice, and a histogram's record is
``(bounds, counts, sum_text)``: the per-bucket counts as sent (a tuple, the
overflow bucket last) and the sum already formatted.  The renderer makes the
cumulative counts at scrape time, so ingest does no per-bucket work.

The store takes metrics in the plain form of :mod:`._model`, whichever wire
they came over; it never sees protobuf messages or JSON.
"""

from __future__ import annotations

import logging
import threading
import time
from itertools import accumulate
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from ._model import Desc, Metric, SeriesOf, Summary, bounded_cache_put
from ._text import bounds_ok, format_float, label_name, label_pair, metric_name

logger = logging.getLogger(__name__)

GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"
GAUGE_HISTOGRAM = "gaugehistogram"
SUMMARY = "summary"

# MetricDescriptor.Type -> kind; 0 (UNSPECIFIED) is inferred from the points.
_KINDS = {1: GAUGE, 2: GAUGE, 3: GAUGE_HISTOGRAM, 4: COUNTER, 5: COUNTER, 6: HISTOGRAM,
          7: SUMMARY}
_SUFFIXES = {
    GAUGE: ("",),
    COUNTER: ("", "_total"),
    HISTOGRAM: ("", "_bucket", "_sum", "_count"),
    GAUGE_HISTOGRAM: ("", "_bucket", "_sum", "_count", "_gsum", "_gcount"),
    SUMMARY: ("", "_sum", "_count"),
}
# Label names a kind uses itself; a sender's label of that name is renamed.
_OWN_LABELS = {HISTOGRAM: ("le",), GAUGE_HISTOGRAM: ("le",), SUMMARY: ("quantile",)}
_VALUE_CACHE_LIMIT = 10_000
_MISSING: Any = object()

SenderKey = Tuple[str, str, int]
Record = Any  # int | float | (bounds, counts, sum_text) | (count, sum, quantiles)


class Family:
    """One exposed metric family: name, kind, help, unit."""

    __slots__ = ("name", "kind", "help", "unit", "templates")

    def __init__(self, name: str, kind: str, help: str, unit: str) -> None:
        self.name = name
        self.kind = kind
        self.help = help
        self.unit = unit
        self.templates: Dict[Any, bytes] = {}  # filled by the renderer


class _Plan:
    """How to turn one sender metric descriptor into series of a family."""

    __slots__ = ("family", "keys", "caches", "gauge")

    def __init__(self, family: Family, keys: List[str]) -> None:
        self.family = family
        self.keys = keys
        # Per label: its cache of value -> pair and the pair's opening `key="`.
        self.caches: List[Tuple[Dict[str, bytes], str, bytes]] = [
            ({}, key, ('%s="' % key).encode("utf-8")) for key in keys]
        self.gauge = family.kind in (GAUGE, GAUGE_HISTOGRAM)


class Sender:
    """One process that sends to the agent, told apart by its node."""

    __slots__ = ("key", "job", "instance", "prefix", "last_seen", "series")

    def __init__(self, key: SenderKey, job: str, instance: str, prefix: bytes) -> None:
        self.key = key
        self.job = job
        self.instance = instance
        self.prefix = prefix
        self.last_seen = time.monotonic()
        self.series: Dict[str, Dict[bytes, Record]] = {}


def _inferred(value: Any) -> Optional[str]:
    """The kind of a metric of type UNSPECIFIED, from the value of its first series."""
    kind = type(value)
    if kind is int or kind is float:
        return GAUGE
    if kind is tuple:
        return HISTOGRAM
    if kind is Summary:
        return SUMMARY
    return None


def sender_key(node: Any) -> SenderKey:
    if node is None:
        return ("", "", 0)
    ident = node.identifier
    return (node.service_info.name, ident.host_name, ident.pid)


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
        return (new[0], counts, format_float(float(old[2]) + float(new[2])))
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


class Store:
    """Series of all senders, thread-safe; readers take snapshots."""

    def __init__(self, namespace: str = "promdemo",
                 const_labels: Optional[Dict[str, str]] = None,
                 target_labels: bool = True, expire_after: float = 300.0) -> None:
        self.namespace = namespace
        self.target_labels = target_labels
        self.expire_after = expire_after
        self._const = [(label_name(k), v) for k, v in (const_labels or {}).items()]
        self._reserved: Set[str] = {k for k, _ in self._const}
        if target_labels:
            self._reserved.update(("job", "instance"))
        self._lock = threading.Lock()
        self._families: Dict[str, Family] = {}
        self._samples: Dict[str, str] = {}
        self._senders: Dict[SenderKey, Sender] = {}
        self._plans: Dict[Any, Optional[_Plan]] = {}
        self._bounds: Dict[Tuple[float, ...], Optional[Tuple[float, ...]]] = {}
        self.rejected = 0  # time series dropped as malformed, for tests and logs

    # -- senders -----------------------------------------------------------

    def sender(self, node: Any) -> Sender:
        key = sender_key(node)
        found = self._senders.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._senders.get(key)
            if found is None:
                found = self._new_sender(key)
                self._senders[key] = found
        return found

    def _new_sender(self, key: SenderKey) -> Sender:
        job, host, pid = key
        instance = "%s:%d" % (host, pid) if host or pid else ""
        pairs = [label_pair(k, v) for k, v in self._const if v]
        if self.target_labels:
            pairs += [label_pair(k, v) for k, v in (("job", job), ("instance", instance)) if v]
        logger.info("new sender job=%r instance=%r", job, instance)
        return Sender(key, job, instance, b",".join(pairs))

    def senders(self) -> List[Tuple[str, str]]:
        with self._lock:
            return sorted((s.job, s.instance) for s in self._senders.values())

    def expire(self, now: Optional[float] = None) -> int:
        with self._lock:
            return self._expire_locked(time.monotonic() if now is None else now)

    def _expire_locked(self, now: float) -> int:
        if self.expire_after <= 0:
            return 0
        cutoff = now - self.expire_after
        dead = [s for s in self._senders.values() if s.last_seen < cutoff]
        for sender in dead:
            logger.info("sender job=%r instance=%r silent for %.0f s: its series are dropped",
                        sender.job, sender.instance, now - sender.last_seen)
            del self._senders[sender.key]
        if dead:
            live: Set[str] = set()
            for sender in self._senders.values():
                live.update(sender.series)
            for name in [n for n in self._families if n not in live]:
                self._drop_family(name)
        return len(dead)

    def _drop_family(self, name: str) -> None:
        family = self._families.pop(name)
        for suffix in _SUFFIXES[family.kind]:
            self._samples.pop(name + suffix, None)
        self._plans = {k: p for k, p in self._plans.items()
                       if p is not None and p.family is not family}

    # -- families ----------------------------------------------------------

    def _plan(self, desc: Desc, series: SeriesOf) -> Optional[_Plan]:
        kind = _KINDS.get(desc[3])
        if kind is None:
            for _, first in series:
                kind = _inferred(first)
                break
            if kind is None:
                return None
        key = (desc[0], kind, desc[4])
        plan = self._plans.get(key, _MISSING)
        if plan is _MISSING:
            with self._lock:
                plan = self._new_plan(desc, kind, key)
                self._plans[key] = plan
        return plan  # type: ignore[no-any-return]

    def _new_plan(self, desc: Desc, kind: str, key: Any) -> Optional[_Plan]:
        if not desc[0]:
            logger.warning("a metric without a name was dropped")
            return None
        name = metric_name(self.namespace, desc[0])
        if kind == COUNTER and name.endswith("_total") and len(name) > 6:
            name = name[:-6]
        family = self._families.get(name)
        if family is None:
            family = Family(name, kind, desc[1], desc[2])
            if not self._register(family):
                return None
        elif family.kind != kind:
            logger.warning("metric %r is a %s here but a %s elsewhere: dropped",
                           desc[0], kind, family.kind)
            return None
        taken = set(self._reserved) | set(_OWN_LABELS.get(kind, ()))
        keys: List[str] = []
        for raw in key[2]:
            label = label_name(raw)
            while label in taken:
                label = "exported_" + label
            taken.add(label)
            keys.append(label)
        return _Plan(family, keys)

    def _register(self, family: Family) -> bool:
        samples = [family.name + s for s in _SUFFIXES[family.kind]]
        clash = [s for s in samples if s in self._samples]
        if clash:
            logger.warning("metric %r (%s) would repeat the series name %r of %r: dropped",
                           family.name, family.kind, clash[0], self._samples[clash[0]])
            return False
        for sample in samples:
            self._samples[sample] = family.name
        self._families[family.name] = family
        return True

    # -- ingest ------------------------------------------------------------

    def ingest(self, sender: Sender, metrics: Iterable[Metric]) -> int:
        """Store the metrics of one export; returns the number of series taken.

        All or nothing: when reading a series raises (BadRequest), nothing is stored."""
        updates: List[Tuple[_Plan, Dict[bytes, Record]]] = []
        taken = 0
        for desc, timeseries in metrics:
            plan = self._plan(desc, timeseries)
            if plan is None:
                continue
            kind = plan.family.kind
            if kind in (HISTOGRAM, GAUGE_HISTOGRAM):
                series = self._histograms(plan, sender.prefix, timeseries)
            elif kind == SUMMARY:
                series = self._summaries(plan, sender.prefix, timeseries)
            else:
                series = self._scalars(plan, sender.prefix, timeseries)
            taken += len(series)
            updates.append((plan, series))
        with self._lock:
            sender.last_seen = time.monotonic()
            if self._senders.get(sender.key) is not sender:
                self._senders[sender.key] = sender  # expired meanwhile: it is back
            for plan, series in updates:
                family = plan.family
                if self._families.get(family.name) is not family and not self._register(family):
                    continue
                # A later copy of a metric in the same export replaces the earlier one.
                stored = sender.series.get(family.name)
                if stored is None:
                    sender.series[family.name] = series
                else:
                    stored.update(series)
        return taken

    def _labels(self, plan: _Plan, prefix: bytes, values: Sequence[str]) -> bytes:
        if not values:
            return prefix
        parts = [prefix] if prefix else []
        append = parts.append
        for (cache, key, opening), text in zip(plan.caches, values):
            if text:  # an empty value is no label in Prometheus
                pair = cache.get(text)
                if pair is None:  # label_pair and bounded_cache_put inlined
                    if '"' in text or "\\" in text or "\n" in text:
                        pair = label_pair(key, text)
                    else:
                        pair = opening + text.encode("utf-8") + b'"'
                    if len(cache) >= _VALUE_CACHE_LIMIT:
                        cache.clear()
                    cache[text] = pair
                append(pair)
        return b",".join(parts)

    def _bounds_of(self, raw: Tuple[float, ...]) -> Optional[Tuple[float, ...]]:
        with self._lock:
            checked = raw if bounds_ok(raw) else None
            bounded_cache_put(self._bounds, raw, checked, _VALUE_CACHE_LIMIT)
        return checked

    def _histograms(self, plan: _Plan, prefix: bytes,
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
            if raw is not last_raw:  # readers hand over one object for the same bounds
                bounds = known.get(raw, _MISSING)
                if bounds is _MISSING:
                    bounds = self._bounds_of(raw)
                last_raw = raw
                size = len(bounds) + 1 if bounds is not None else 0
            # format_float inlined for the common sum: finite, not integral.
            if -1e15 < total < 1e15 and not total.is_integer():
                sum_text = b"%r" % total
            else:
                sum_text = format_float(total)
            if size and len(counts) == size and min(counts) >= 0:
                # The common case: per-bucket counts as sent, copied (a
                # record is immutable and shares nothing with its reader).
                record = (bounds, tuple(counts), sum_text)
            else:
                if not counts:
                    cum: Optional[List[int]] = [count]
                    record_bounds: Any = ()
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

    def _scalars(self, plan: _Plan, prefix: bytes,
                 timeseries: SeriesOf) -> Dict[bytes, Record]:
        out: Dict[bytes, Record] = {}
        gauge = plan.gauge
        for values, value in timeseries:
            kind = type(value)
            if kind is not int and kind is not float:
                self.rejected += 1
                continue
            lbl = self._labels(plan, prefix, values)
            if not gauge and lbl in out:
                value = out[lbl] + value
            out[lbl] = value
        return out

    def _summaries(self, plan: _Plan, prefix: bytes,
                   timeseries: SeriesOf) -> Dict[bytes, Record]:
        out: Dict[bytes, Record] = {}
        for values, value in timeseries:
            if type(value) is not Summary:
                self.rejected += 1
                continue
            record = (value.count, value.sum, value.quantiles)
            lbl = self._labels(plan, prefix, values)
            if lbl in out:
                record = merge(SUMMARY, lbl, out[lbl], record)
            out[lbl] = record
        return out

    # -- reading -----------------------------------------------------------

    def snapshot(self) -> List[Tuple[Family, List[Tuple[bytes, Record]]]]:
        """Every family with its series, sorted by name; series of one label
        string from several senders are merged (summed; gauges: the newest).
        Records are immutable and the lists are copies: render without a lock."""
        with self._lock:
            self._expire_locked(time.monotonic())
            senders = sorted(self._senders.values(), key=lambda s: s.last_seen)
            copied = []
            for name in sorted(self._families):
                parts = [list(s.series[name].items()) for s in senders if name in s.series]
                if parts:
                    copied.append((self._families[name], parts))
        out = []
        for family, parts in copied:
            if len(parts) == 1:
                out.append((family, parts[0]))
                continue
            merged: Dict[bytes, Record] = {}
            for part in parts:  # oldest sender first: gauges keep the newest
                for lbl, record in part:
                    old = merged.get(lbl)
                    merged[lbl] = record if old is None else merge(family.kind, lbl, old, record)
            out.append((family, list(merged.items())))
        return out
