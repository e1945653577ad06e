"""What the agent's live pages read: ``/metrics.json`` and ``/debug/tracez.json``.

``/metrics.json`` is the store's snapshot (the series of ``/metrics``, the
agent's own included) in the shape of :mod:`gotools_compat._pages.metrics_json`.

``/debug/tracez.json`` answers (all carry ``spanNames``, the counts per span
name as before, ``interval`` and ``kept``, the number of spans kept):

- no query: ``recent``, the latest ``limit`` spans (the answer it always gave);
- ``?name=N&latency=L`` (``L`` one of ``0s``, ``10us`` ... ``100s``: the
  bucket ``[L, next)``) or ``?name=N&errors=1``: ``spans``, the kept spans
  of that name in that bucket (or with an error status), newest first, at
  most ``limit``, and ``matched``, how many matched in all;
- ``?trace=T``: ``trace``, every kept span of trace ``T`` (32 hex digits),
  by start time, at most ``max_tracez_spans``, each with ``offsetNano``, its
  start after the trace's first (exact: JavaScript numbers cannot hold Unix
  nanoseconds), and ``matched``.

Each span is the record of :func:`._traces.span_record`.  Bad parameters
are a :class:`._model.BadRequest` (400).  The answer is built by
:mod:`gotools_compat._pages.tracez_json`, which ``serve()`` of
``export.prometheus`` uses too, on the spans that end in its process.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from gotools_compat._pages import Changes, Doc, LabelCache, Paced, Texts, document, le_json
from gotools_compat._pages.metrics_json import sum_json
from gotools_compat._pages.tracez_json import BadQuery
from gotools_compat._pages.tracez_json import tracez_json as _tracez_json
from gotools_compat._version import __version__

from ._kinds import GAUGE_HISTOGRAM, HISTOGRAM, SUMMARY, Family, Items
from ._model import BadRequest
from ._traces import TraceStore

SOURCE = "gotools-agent %s" % __version__


class PageData:
    """``/metrics.json`` of the agent: caches label objects and ``le`` lists."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.paced = Paced(interval)
        self.changes = Changes()
        self._labels = LabelCache()
        self.texts = Texts()
        self._le: Dict[Tuple[float, ...], bytes] = {}

    def _le_of(self, bounds: Tuple[float, ...]) -> bytes:
        found = self._le.get(bounds)
        if found is None:
            if len(self._le) >= 10_000:
                self._le.clear()
            found = self._le[bounds] = le_json(bounds)
        return found

    def metrics_json(self, snapshot: Callable[[], List[Tuple[Family, Items]]]) -> bytes:
        """The answer of ``snapshot()``, or a recent one (:class:`Paced`)."""
        return self.paced.answer(lambda interval: self.build(snapshot(), interval))

    def build(self, snapshot: List[Tuple[Family, Items]], interval: float) -> bytes:
        """The document of ``snapshot`` now, unpaced (``texts`` keeps each series' text)."""
        doc = Doc(self.texts)
        labels = self._labels.get
        for family, items in snapshot:
            doc.family(family.name, family.kind, family.help, family.unit)
            kind = family.kind
            if kind in (HISTOGRAM, GAUGE_HISTOGRAM):
                histogram = doc.histogram
                last: Any = None
                le = b""
                for lbl, (bounds, counts, total) in items:
                    if bounds is not last:  # the store interns bounds: mostly one object
                        last, le = bounds, self._le_of(bounds)
                    # (Keyed by labels alone: a series' text is its labels and numbers.)
                    histogram(labels(lbl), le, counts, sum_json(total), lbl)
            elif kind == SUMMARY:
                for lbl, (count, total, quantiles) in items:
                    doc.summary(labels(lbl), count, total, quantiles)
            else:
                scalar = doc.scalar
                for lbl, value in items:
                    scalar(labels(lbl), value)
        return document(doc.families(), source=SOURCE, interval=interval,
                        changes=self.changes, tracez=True)


def tracez_json(traces: TraceStore, query: Callable[[str, str], str], interval: float) -> bytes:
    """The ``/debug/tracez.json`` answer for the request's ``query(name, default)``
    (:func:`gotools_compat._pages.tracez_json.tracez_json`, shared with ``serve()``)."""
    try:
        return _tracez_json(traces, query, interval)
    except BadQuery as exc:
        raise BadRequest(str(exc)) from None
