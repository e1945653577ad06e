"""Received spans: a store bounded in count and bytes, a tracez page like the
agent's zPages, JSON."""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from gotools_compat._pages.tracez_json import LATENCY_LABELS as LATENCY_LABELS
from gotools_compat._pages.tracez_json import MAX_STRING as MAX_STRING
from gotools_compat._pages.tracez_json import Cut as _Cut
from gotools_compat._pages.tracez_json import json_default as _json_default
from gotools_compat._pages.tracez_json import latency_bucket as latency_bucket
from gotools_compat._pages.tracez_json import record_size as record_size
from gotools_compat._pages.tracez_json import KeptSpans, tracez_table
from gotools_compat._server.limits import check_ints

from ._kinds import COUNTER, GAUGE, Family

# (The latency buckets, string cuts, record sizes and the tracez JSON are
# gotools_compat._pages.tracez_json's, shared with serve() of export.prometheus.)
_KINDS = {0: "UNSPECIFIED", 1: "SERVER", 2: "CLIENT"}


def _hex(raw: bytes) -> str:
    return raw.hex()


def _nanos(stamp: Any) -> int:
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


def _attribute(value: Any, cut: Callable[[str], str]) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return cut(value.string_value.value)
    if which is None:
        return None
    return getattr(value, which)


def span_record(service: str, span: Any, cut: Optional[_Cut] = None) -> Dict[str, Any]:
    """A received span as a plain JSON-ready dict; strings cut to 4096 characters."""
    cut = _Cut() if cut is None else cut
    start = _nanos(span.start_time)
    end = _nanos(span.end_time)
    attributes = {cut(k): _attribute(v, cut) for k, v in span.attributes.attribute_map.items()}
    annotations = []
    for event in span.time_events.time_event:
        which = event.WhichOneof("value")
        if which == "annotation":
            text = cut(event.annotation.description.value or ", ".join(
                "%s=%s" % (k, _attribute(v, cut))
                for k, v in sorted(event.annotation.attributes.attribute_map.items())))
        elif which == "message_event":
            text = "%s id=%d" % ("SENT" if event.message_event.type == 1 else "RECEIVED",
                                 event.message_event.id)
        else:
            continue
        annotations.append({"timeUnixNano": _nanos(event.time), "value": text})
    parent = bytes(span.parent_span_id)
    return {
        "traceId": _hex(span.trace_id),
        "spanId": _hex(span.span_id),
        "parentSpanId": _hex(parent) if parent.strip(b"\0") else "",
        "name": cut(span.name.value),
        "kind": _KINDS.get(span.kind, "UNSPECIFIED"),
        "service": cut(service),
        "startUnixNano": start,
        "durationNano": max(0, end - start),
        "status": {"code": span.status.code, "message": cut(span.status.message)},
        "attributes": attributes,
        "annotations": annotations,
    }


class TraceStore:
    """The latest spans, bounded in number and in bytes, and counts per span
    name that never shrink.

    - ``max_spans`` spans and ``max_span_bytes`` bytes (about: see
      :func:`record_size`) of them are kept; the oldest go first.
    - Strings (name, attribute keys and values, annotations, status) are cut
      to 4096 characters; a span still over ``max_bytes_per_span`` is not
      kept and not forwarded, only counted (in its name's row, too).
    - ``/debug/tracez`` lists at most ``max_tracez_spans`` spans, whatever
      ``limit`` asks for.
    """

    def __init__(self, max_spans: int = 10_000,
                 on_spans: Optional[Callable[[List[Dict[str, Any]]], None]] = None, *,
                 max_span_bytes: int = 64 * 1024 * 1024, max_bytes_per_span: int = 64 * 1024,
                 max_tracez_spans: int = 1_000) -> None:
        check_ints(1, (("max_spans", max_spans), ("max_span_bytes", max_span_bytes),
                       ("max_bytes_per_span", max_bytes_per_span),
                       ("max_tracez_spans", max_tracez_spans)))
        self.max_spans = max_spans
        self.max_span_bytes = max_span_bytes
        self.max_bytes_per_span = max_bytes_per_span
        self.max_tracez_spans = max_tracez_spans
        self._lock = threading.Lock()
        self._kept = KeptSpans(self.max_spans, self.max_span_bytes)
        self.evicted = self._kept.evicted  # kept, then pushed out, by bound
        self._on_spans = on_spans
        self.received = 0
        self.too_large = 0  # spans over max_bytes_per_span: not kept
        self.truncated = 0  # strings cut to 4096 characters

    def add(self, node: Any, spans: Any) -> int:
        """Keep the spans of one request; returns the number received."""
        spans = list(spans)
        self.keep(node, spans)
        return len(spans)

    def keep(self, node: Any, spans: Any) -> List[Any]:
        """Keep the spans of one request; returns the ones kept (not over
        ``max_bytes_per_span``), as they came, to forward."""
        service = node.service_info.name if node is not None else ""
        cut = _Cut()
        spans = list(spans)
        records = [span_record(service, span, cut) for span in spans]
        sizes = [record_size(record) for record in records]
        kept = []
        kept_spans = []
        with self._lock:
            self.received += len(records)
            self.truncated += cut.count
            for span, record, size in zip(spans, records, sizes):
                self._kept.count(record)
                if size > self.max_bytes_per_span:
                    self.too_large += 1
                    continue
                kept.append(record)
                kept_spans.append(span)
                self._kept.keep(record, size)
            self._kept.evict()
        if self._on_spans is not None and kept:
            self._on_spans(kept)
        return kept_spans

    def summary(self) -> List[Dict[str, Any]]:
        with self._lock:
            return self._kept.names.summary()

    def recent(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The latest ``limit`` spans, oldest first; at most ``max_tracez_spans``."""
        with self._lock:
            return self._kept.recent(min(limit, self.max_tracez_spans))

    def kept(self) -> List[Dict[str, Any]]:
        """Every span kept, oldest first (references: records are never changed)."""
        with self._lock:
            return self._kept.kept()

    def json(self, limit: int = 100) -> bytes:
        doc = {"spanNames": self.summary(), "recent": self.recent(limit)}
        return json.dumps(doc, default=_json_default).encode("utf-8")  # ASCII: escaped

    def html(self, limit: int = 50) -> bytes:
        return tracez_table(self.summary(), self.recent(limit))

    def own_families(self) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
        """Counters and gauges for the agent's /metrics, in the renderer's form."""
        with self._lock:
            rows = (
                ("gotools_agent_spans_received", COUNTER, "Spans received.",
                 [(b"", self.received)]),
                ("gotools_agent_spans_dropped", COUNTER,
                 "Spans not kept nor forwarded: over max_bytes_per_span after strings "
                 "were cut.", [(b'cause="max_bytes_per_span"', self.too_large)]),
                ("gotools_agent_spans_evicted", COUNTER,
                 "Kept spans pushed out by newer ones, by the bound that was reached.",
                 [(b'cause="%s"' % cause.encode("ascii"), n)
                  for cause, n in self.evicted.items()]),
                ("gotools_agent_span_strings_truncated", COUNTER,
                 "Span strings cut to %d characters." % MAX_STRING, [(b"", self.truncated)]),
                ("gotools_agent_spans_kept", GAUGE, "Spans kept for /debug/tracez.",
                 [(b"", len(self._kept.records))]),
                ("gotools_agent_span_bytes", GAUGE,
                 "Approximate bytes of the spans kept for /debug/tracez.",
                 [(b"", self._kept.bytes)]),
            )
        return [(Family(name, kind, help_text, ""), list(series))
                for name, kind, help_text, series in rows]

