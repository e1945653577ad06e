"""``/metrics.json`` of ``serve()``: this process's metrics for the live page at ``/``.

The same families as the exposition (our metrics through their plans, the
app's plain opencensus views through their prometheus_client families, and
the same collisions left out), in the shape of
:mod:`gotools_compat._pages.metrics_json`.  Label values that Prometheus
treats as absent (None, "") are left out of a series' labels.

:func:`tracez_answer` is ``/debug/tracez`` (the page of
:mod:`gotools_compat._pages`), ``/debug/tracez.json`` (the agent's JSON,
:mod:`gotools_compat._pages.tracez_json`) and ``?format=table``, of the
spans that ended in this process (:mod:`._prometheus_spans`), once the
exporter keeps spans (``Exporter.keeps_spans``); ``/metrics.json`` then
says ``"tracez": true``, and the index page links the page.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from prometheus_client.core import Metric

from gotools_compat._pages import (SECURITY_HEADERS, Changes, Doc, LabelCache, Paced, Texts,
                                   asset, document, json_answer, labels_json, number_json)
from gotools_compat._pages.assets import Answer
from gotools_compat._pages.tracez_json import BadQuery
from gotools_compat._version import __version__

from ._prometheus_metrics import Plan
from ._prometheus_spans import SpanStore

SOURCE = "gotools_compat %s" % __version__
_HISTOGRAMS = ("histogram", "gaugehistogram")


class Shown(Protocol):
    """What the page data needs of the exporter."""

    spans: SpanStore

    def _shown(self) -> Tuple[List[Plan], List[Metric]]: ...

    def keeps_spans(self) -> bool: ...


class PageData:
    """``/metrics.json`` of one server: its caches and when its data last changed."""

    def __init__(self, exporter: Shown, interval: float) -> None:
        self.exporter = exporter
        self.interval = interval
        self.paced = Paced(interval)  # at most 2% of a core of the application's
        self.changes = Changes()
        self._labels = LabelCache()
        self.texts = Texts()
        self._le: Dict[str, Tuple[Any, bytes]] = {}  # family -> (its le strings, as JSON)

    def json(self) -> bytes:
        """The answer, or a recent one (:class:`gotools_compat._pages.Paced`)."""
        return self.paced.answer(self.build)

    def build(self, interval: float) -> bytes:
        """The document of the exporter's metrics now, unpaced."""
        plans, foreign = self.exporter._shown()
        doc = Doc(self.texts)
        for plan in plans:
            self._plan(doc, plan)
        for family in foreign:
            _foreign(doc, family)
        return document(doc.families(), source=SOURCE, interval=interval,
                        changes=self.changes, tracez=self.exporter.keeps_spans())

    def _plan(self, doc: Doc, plan: Plan) -> None:
        doc.family(plan.family, plan.type, plan.documentation, plan.entry.unit)
        names, order, name = plan.labelnames, plan.order, plan.family
        cache = self._labels

        def labels_of(values: Any) -> bytes:
            key = (name, values)
            found = cache.lookup(key)
            if found is None:
                plan._note(values)  # two rows that are one series: merged from the next poll
                found = cache.put(key, labels_json(
                    [(names[i], values[i]) for i in order if values[i]]))
            return found

        if plan.histogram:
            known = self._le.get(name)
            if known is None or known[0] is not plan.les:
                known = self._le[name] = (plan.les, json.dumps(plan.les).encode("ascii"))
            le = known[1]
            for values, (counts, total, _lo, _hi, _m2) in plan.rows():
                labels = labels_of(values)
                doc.histogram(labels, le, counts, number_json(total), labels)
        else:
            for values, value in plan.rows():
                doc.scalar(labels_of(values), value)


TRACEZ_PATHS = ("/debug/tracez", "/debug/tracez.json")


def tracez_answer(exporter: Shown, path: str, query: Callable[[str, str], str],
                  interval: float) -> Optional[Answer]:
    """The answer of a ``TRACEZ_PATHS`` path; None when the exporter keeps no spans
    (the path is then the metrics, as every other one)."""
    if path not in TRACEZ_PATHS or not exporter.keeps_spans():
        return None
    view = query("format", "")
    if path == "/debug/tracez.json" or view == "json":
        try:
            return json_answer(exporter.spans.json(query, interval))
        except BadQuery as exc:
            return 400, [("Content-Type", "application/json"), ("Cache-Control", "no-store")] \
                + SECURITY_HEADERS, json.dumps({"error": str(exc)}).encode("utf-8") + b"\n"
    if view == "table":
        try:
            limit = int(query("limit", "50"))
        except ValueError:
            limit = 50
        return 200, [("Content-Type", "text/html; charset=utf-8"),
                     ("Cache-Control", "no-store")] + SECURITY_HEADERS, exporter.spans.html(limit)
    return asset(path)


def _foreign(doc: Doc, family: Metric) -> None:
    """A prometheus_client family (of a plain opencensus view) into ``doc``.

    Views make gauges, counters and histograms only (see ``view_family``)."""
    name, kind = family.name, family.type
    doc.family(name, kind, family.documentation or "", family.unit or "")
    if kind in _HISTOGRAMS:
        _histograms(doc, family)
        return
    sample_name = name + "_total" if kind == "counter" else name
    for sample in family.samples:
        if sample.name == sample_name:
            doc.scalar(labels_json(sorted((k, v) for k, v in sample.labels.items() if v)),
                       sample.value)


def _series_key(labels: Dict[str, str], drop: str) -> Tuple[Tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k != drop and v))


def _histograms(doc: Doc, family: Metric) -> None:
    series: Dict[Any, Dict[str, Any]] = {}
    gauge = family.type == "gaugehistogram"
    sum_name = family.name + ("_gsum" if gauge else "_sum")
    for sample in family.samples:
        key = _series_key(sample.labels, "le")
        entry = series.setdefault(key, {"le": [], "cum": [], "sum": 0.0})
        if sample.name == family.name + "_bucket":
            entry["le"].append(sample.labels.get("le", "+Inf"))
            entry["cum"].append(int(sample.value))
        elif sample.name == sum_name:
            entry["sum"] = sample.value
    for key, entry in series.items():
        cum: List[int] = entry["cum"]
        counts = [b - a for a, b in zip([0] + cum, cum)]
        doc.histogram(labels_json(key), json.dumps(entry["le"]).encode("ascii"), counts,
                      number_json(entry["sum"]))
