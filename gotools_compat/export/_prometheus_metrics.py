"""How ``export.prometheus`` writes our own metrics: names, label names, and each row's lines.

A :class:`Plan` per metric holds its family and sample names, its HELP and
TYPE lines for either format and, cached per row key, the prefix of each of
its lines, so that a scrape formats only numbers.  Rows that Prometheus
would show as one series (label values None and "") are merged here.  The
text rules (names, escaping, numbers) are :mod:`gotools_compat._promtext`'s.
"""

from __future__ import annotations

import logging
from itertools import accumulate
from operator import concat
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gotools_compat import metric
from gotools_compat._promtext import (Number, counter_family, format_le, format_value, header,
                                      label_chars, label_pair, metric_name)

log = logging.getLogger(__name__)

_RESERVED_LABELS = frozenset(("le", "quantile"))
#: The sample names each type claims beside its family name.
SUFFIXES = {"counter": ("_total", "_created"), "gauge": (),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
            "gaugehistogram": ("_bucket", "_gcount", "_gsum")}

Labels = metric.Labels

_concat = cast(Callable[[str, str], str], concat)


def label_names(columns: Sequence[str]) -> Tuple[str, ...]:
    """The Prometheus label names for a metric's key names (see the module doc)."""
    out: List[str] = []
    for column in columns:
        name = label_chars(column)
        if name[0].isdigit() or name.startswith("__") or name in _RESERVED_LABELS:
            name = "key_" + name
        base, n = name, 1
        while name in out:
            n += 1
            name = "%s_%d" % (base, n)
        out.append(name)
    return tuple(out)


class Plan:
    """How one of our metrics renders: names, headers and each row's line prefixes.

    Prefixes are cached per row key, so a scrape formats only numbers.
    """

    def __init__(self, entry: metric.Registered, namespace: str) -> None:
        self.entry = entry
        kind = entry.kind
        self.histogram = kind.is_histogram
        self.type = "histogram" if self.histogram else "gauge" if kind.is_gauge else "counter"
        name = metric_name(namespace, entry.name)
        if self.type == "counter":
            name = counter_family(name)
        self.family = name
        self.sample = name + "_total" if self.type == "counter" else name
        self.labelnames = label_names([key.name for key in entry.keys])
        self.documentation = entry.description
        self.header_text = header(name, self.type, self.documentation, False)
        self.header_om = header(name, self.type, self.documentation, True)
        self.claims = {name} | {name + suffix for suffix in SUFFIXES[self.type]}
        # Labels are written sorted by name (as prometheus_client does), "le"
        # after them (as the agent and Go do).  Keys renamed above are never "le".
        self.order = sorted(range(len(self.labelnames)), key=self.labelnames.__getitem__)
        if self.histogram:
            bounds = entry.buckets
            self.negative = bounds[0] < 0
            self.les = [format_le(b) for b in bounds] + ["+Inf"]
        self.series: Dict[Any, Any] = {}
        self.warned_negative = False
        # Row keys with a None or "" value, by their form with None as "": two
        # keys of one form are one Prometheus series (see the module doc).
        self.blank_forms: Dict[Labels, Labels] = {}
        self.merge = False  # such a pair exists: rows are merged from now on

    def _note(self, labels: Labels) -> None:
        """Note a row key (when its prefix is made; again is harmless)."""
        if None in labels or "" in labels:
            form = tuple(["" if v is None else v for v in labels])
            if self.blank_forms.setdefault(form, labels) != labels:
                self.merge = True

    def rows(self) -> Iterable[Tuple[Labels, Any]]:
        """The metric's row snapshots, merged where Prometheus would show one series twice."""
        if self.histogram:
            histograms = self.entry.histogram_rows()
            return _merged(histograms, _add_histograms) if self.merge else histograms
        rows = self.entry.rows()
        if not self.merge:
            return rows
        return _merged(rows, _last if self.type == "gauge" else _add)

    def _pairs(self, labels: Sequence[Optional[str]]) -> List[str]:
        names = self.labelnames
        return [label_pair(names[i], labels[i] or "") for i in self.order]

    def scalar_prefix(self, labels: Labels) -> str:
        self._note(labels)
        pairs = self._pairs(labels)
        prefix = "%s{%s} " % (self.sample, ",".join(pairs)) if pairs else self.sample + " "
        self.series[labels] = prefix
        return prefix

    def histogram_prefixes(self, labels: Labels) -> Tuple[List[str], str, str]:
        self._note(labels)
        pairs = self._pairs(labels)
        before = "".join(p + "," for p in pairs)
        name = self.family
        buckets = ['%s_bucket{%sle="%s"} ' % (name, before, le) for le in self.les]
        plain = "{%s}" % ",".join(pairs) if pairs else ""
        entry = (buckets, "%s_sum%s " % (name, plain), "%s_count%s " % (name, plain))
        self.series[labels] = entry
        return entry

    # Rendering.

    def render(self, out: List[str], openmetrics: bool) -> None:
        start, merging = len(out), self.merge
        self._render(out, openmetrics)
        if self.merge and not merging:  # a new row key made a pair: again, merged
            del out[start:]
            self._render(out, openmetrics)

    def _render(self, out: List[str], openmetrics: bool) -> None:
        rows = self.rows()
        out.append(self.header_om if openmetrics else self.header_text)
        series = self.series
        if not self.histogram:
            positive = openmetrics and self.type == "counter"
            for labels, value in rows:
                prefix = series.get(labels) or self.scalar_prefix(labels)
                if positive and not value >= 0:
                    self._negative_counter()
                    continue
                out.append(prefix + format_value(value) + "\n")
            return
        negative = openmetrics and self.negative
        for labels, (counts, total, _lo, _hi, _m2) in rows:
            buckets, sum_prefix, count_prefix = (series.get(labels)
                                                 or self.histogram_prefixes(labels))
            cumulative = list(map(str, accumulate(counts)))
            out.append("\n".join(map(_concat, buckets, cumulative)))
            # OpenMetrics allows no _sum with negative buckets, no negative or
            # NaN _sum, and no _count without _sum.
            if negative or (openmetrics and not total >= 0):
                out.append("\n")
            else:
                out.append("\n%s%s\n%s%s\n" % (sum_prefix, format_value(total), count_prefix,
                                               cumulative[-1]))

    def _negative_counter(self) -> None:
        if not self.warned_negative:
            self.warned_negative = True
            log.warning("sum metric %r has a negative (or NaN) row, which OpenMetrics forbids "
                        "for a counter: such rows are left out of OpenMetrics scrapes (the text "
                        "format shows them); use a latest_* metric for values that go down",
                        self.entry.name)

    def family_metric(self) -> Metric:
        merging = self.merge
        family = self._family_metric(merging)
        if self.merge and not merging:  # a new row key made a pair: again, merged
            family = self._family_metric(True)
        return family

    def _family_metric(self, merging: bool) -> Metric:
        names, series, note = self.labelnames, self.series, self._note
        rows = self.rows()
        if not self.histogram:
            family: Metric
            cls = CounterMetricFamily if self.type == "counter" else GaugeMetricFamily
            family = cls(self.family, self.documentation, labels=names)
            for labels, value in rows:
                if not merging and labels not in series:  # not noted by a render yet
                    note(labels)
                family.add_metric(["" if v is None else v for v in labels], value)
            return family
        family = Metric(self.family, self.documentation, "histogram")
        for labels, (counts, total, _lo, _hi, _m2) in rows:
            if not merging and labels not in series:
                note(labels)
            pairs = dict(zip(names, ["" if v is None else v for v in labels]))
            running = 0
            for le, count in zip(self.les, counts):
                running += count
                family.add_sample(self.family + "_bucket", dict(pairs, le=le), running)
            family.add_sample(self.family + "_sum", pairs, total)
            family.add_sample(self.family + "_count", pairs, running)
        return family


# Rows that are one Prometheus series (label values None and ""), read as one row.

def _merged(rows: Iterable[Tuple[Labels, Any]],
            combine: Callable[[List[Any]], Any]) -> List[Tuple[Labels, Any]]:
    groups: Dict[Labels, List[Any]] = {}
    for labels, value in rows:
        if None in labels:
            labels = tuple(["" if v is None else v for v in labels])
        groups.setdefault(labels, []).append(value)
    return [(labels, values[0] if len(values) == 1 else combine(values))
            for labels, values in groups.items()]


def _last(values: List[Number]) -> Number:
    return values[-1]  # a gauge: the row created last


def _add(values: List[Number]) -> Number:
    return sum(values)


def _add_histograms(values: List[Any]) -> Any:
    # Only the counts and the sum are shown.
    counts = [sum(c) for c in zip(*[value[0] for value in values])]
    return counts, sum(value[1] for value in values), None, None, 0.0
