"""The spans of ``serve()``'s ``/debug/tracez``: those that end in this process.

A :class:`SpanStore` belongs to one ``prometheus.Exporter``; it takes the
spans (``event.start_span``, ``with event.span(...)``) that end while the
exporter is the process exporter (``export.set_exporter(exporter)``, or in
``export.multi(...)``).

- On the caller's thread (:meth:`SpanStore.ended`) it only appends a
  reference to the ended span, with a sequence number, to a deque bounded
  at ``max_spans``: O(1), a few hundred nanoseconds, never raises.
- When a page asks (on the server's thread), the spans taken since are
  converted to the records of :mod:`gotools_compat._pages.tracez_json`
  (strings cut to 4096 characters, at most 32 attributes and 128
  annotations per span), counted per name, and kept: at most ``max_spans``
  records and ``max_span_bytes`` bytes (about: ``record_size``), the
  oldest dropped first.  ``dropped`` counts every span that ended here and
  is not kept, by cause: pushed out of the deque before a page read it
  (``unread``; those are in no name's row either), or out of the records by
  the count or the byte bound.
"""

from __future__ import annotations

import collections
import itertools
import math
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from gotools_compat._pages.tracez_json import (Cut, KeptSpans, record_size, tracez_json,
                                               tracez_table)
from gotools_compat._server.limits import check_ints
from gotools_compat._wire.protobuf import INT64_MAX, INT64_MIN
from gotools_compat._wire.spans import MAX_ATTRIBUTES, as_text

DEFAULT_MAX_SPANS = 1_000
DEFAULT_MAX_SPAN_BYTES = 16 * 1024 * 1024
MAX_ANNOTATIONS = 128  # the latest log events of a span (event.MAX_EVENTS)

_span_class: Any = None  # event.Span, loaded with the first span end


def _value(value: Any, cut: Cut) -> Any:
    """An attribute value for JSON: as ``_wire.spans`` types it for the wire."""
    kind = value.__class__
    if kind is str:
        return cut(value)
    if kind is bool:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if INT64_MIN <= value <= INT64_MAX:
            return int(value)
    elif kind is float:
        if math.isfinite(value):
            return value
        return "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")
    return cut(as_text(value))


def _attributes(tags: Any, cut: Cut, extra: Optional[Tuple[str, Any]] = None
                ) -> Dict[str, Any]:
    found: Dict[str, Any] = {}
    for tag in tags or ():
        key = getattr(tag, "key", None)
        if key is None:
            continue
        name = getattr(key, "name", None)
        if name.__class__ is not str:
            name = as_text(key)
        name = cut(name)
        if name in found or len(found) < MAX_ATTRIBUTES:
            found[name] = _value(tag.value, cut)
    if extra is not None:
        found[extra[0]] = _value(extra[1], cut)
    return found


def _annotation(ev: Any, cut: Cut) -> Dict[str, Any]:
    """A log event as the agent shows the annotation ocagent sends of it."""
    message = as_text(ev.message) if ev.message else ""
    error = ev.error
    extra = None
    if error is not None:
        if message:
            extra = ("Error", error)
        else:
            message = as_text(error)
    if not message:
        message = ", ".join("%s=%s" % pair for pair in sorted(
            _attributes(ev.tags, cut, extra).items()))
    return {"timeUnixNano": ev.at_ns, "value": cut(message)}


def span_record(span: Any, service: str, cut: Cut) -> Dict[str, Any]:
    """An ended ``event.Span`` as the record the tracez page reads."""
    status = span.status or (0, "")
    events = span.events or ()
    return {
        "traceId": "%032x" % span.trace_id,
        "spanId": "%016x" % span.id,
        "parentSpanId": "%016x" % span.parent_id if span.parent_id else "",
        "name": cut(as_text(span.name)),
        "kind": "UNSPECIFIED",
        "service": service,
        "startUnixNano": span.start,
        "durationNano": max(0, span.end - span.start),
        "status": {"code": int(status[0]), "message": cut(as_text(status[1]))},
        "attributes": _attributes(span.tags, cut),
        "annotations": [_annotation(ev, cut) for ev in list(events)[-MAX_ANNOTATIONS:]],
    }


class SpanStore:
    """The latest spans that ended in this process, bounded; see the module doc."""

    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS,
                 max_span_bytes: int = DEFAULT_MAX_SPAN_BYTES, service: str = "",
                 max_tracez_spans: int = 1_000) -> None:
        check_ints(0, (("max_spans", max_spans),))
        check_ints(1, (("max_span_bytes", max_span_bytes),
                       ("max_tracez_spans", max_tracez_spans)))
        self.max_spans = max_spans
        self.max_span_bytes = max_span_bytes
        self.max_tracez_spans = max_tracez_spans
        self.service = service[:4096]
        self._inbox: Deque[Tuple[int, Any]] = collections.deque(maxlen=max(1, self.max_spans))
        self._sequence = itertools.count()
        self._lock = threading.Lock()  # the readers' (the inbox needs none)
        self._kept = KeptSpans(self.max_spans, self.max_span_bytes)
        self._taken = 0  # spans taken out of the inbox
        self._last = -1  # the highest sequence number taken
        self.evicted = self._kept.evicted
        self.truncated = 0  # strings cut to 4096 characters

    # The caller's thread.

    def ended(self, ctx: Any) -> None:
        """Note the span of ``ctx``, which just ended (an ``END_SPAN`` event)."""
        global _span_class
        span: Any = getattr(ctx, "_span", None)
        if span.__class__ is not _span_class:
            if _span_class is not None or span is None:
                return
            from gotools_compat.event.spans import Span

            _span_class = Span
            if span.__class__ is not Span:
                return
        if self.max_spans and span.end > 0:
            self._inbox.append((next(self._sequence), span))

    # The readers' (the server's threads).

    def _take(self) -> None:
        """Convert and keep the spans that ended since the last read.  (Held: the lock.)"""
        inbox, kept = self._inbox, self._kept
        cut = Cut()
        while inbox:
            try:
                number, span = inbox.popleft()
            except IndexError:
                break
            self._taken += 1
            if number > self._last:
                self._last = number
            record = span_record(span, self.service, cut)
            kept.count(record)
            kept.keep(record, record_size(record))
        self.truncated += cut.count
        kept.evict()

    @property
    def seen(self) -> bool:
        """Whether any span ended here (kept or not)."""
        return bool(self._inbox) or self._last >= 0

    def dropped(self) -> Dict[str, int]:
        """The spans that ended here and are not kept, by cause."""
        with self._lock:
            self._take()
            return self._dropped()

    def _dropped(self) -> Dict[str, int]:
        # Numbers handed out and not taken: spans pushed out of the full inbox.
        # (A number taken by a thread that has not appended yet counts here
        # until it has: the count is computed, never accumulated.)
        unread = max(0, self._last + 1 - self._taken)
        return dict(self.evicted, unread=unread)

    def summary(self) -> List[Dict[str, Any]]:
        with self._lock:
            self._take()
            return self._kept.names.summary()

    def recent(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The latest ``limit`` spans, oldest first; at most ``max_tracez_spans``."""
        with self._lock:
            self._take()
            return self._kept.recent(min(limit, self.max_tracez_spans))

    def kept(self) -> List[Dict[str, Any]]:
        """Every span kept, oldest first (references: records are never changed)."""
        with self._lock:
            self._take()
            return self._kept.kept()

    def json(self, query: Callable[[str, str], str], interval: float) -> bytes:
        """``/debug/tracez.json``, with ``dropped`` (see :meth:`dropped`) beside the
        agent's fields; raises ``BadQuery``."""
        with self._lock:
            self._take()
            dropped = self._dropped()
        return tracez_json(self, query, interval, {"dropped": dropped})

    def html(self, limit: int = 50) -> bytes:
        """``/debug/tracez?format=table``."""
        return tracez_table(self.summary(), self.recent(limit))
