"""Received spans: a store bounded in count and bytes, a tracez page like the
agent's zPages, JSON."""

from __future__ import annotations

import base64
import collections
import html
import itertools
import json
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from gotools_compat._promtext import utf8

from ._kinds import COUNTER, GAUGE, Family

# zPages latency buckets: [0, 10us), [10us, 100us) ... [100s, inf).
_LATENCY_NS = (10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000,
               10_000_000_000, 100_000_000_000)
LATENCY_LABELS = ("0s", "10us", "100us", "1ms", "10ms", "100ms", "1s", "10s", "100s")
_KINDS = {0: "UNSPECIFIED", 1: "SERVER", 2: "CLIENT"}
_MAX_NAMES = 10_000
_OTHER = "(other span names)"
MAX_STRING = 4096  # characters kept of a span's string


def latency_bucket(duration_ns: int) -> int:
    """The index in LATENCY_LABELS of a span's duration: [label, next label)."""
    return sum(1 for bound in _LATENCY_NS if duration_ns >= bound)


def _hex(raw: bytes) -> str:
    return raw.hex()


def _nanos(stamp: Any) -> int:
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


class _Cut:
    """Cuts strings to ``limit`` characters and counts the ones it cut."""

    __slots__ = ("limit", "count")

    def __init__(self, limit: int = MAX_STRING) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, text: str) -> str:
        if len(text) <= self.limit:
            return text
        self.count += 1
        return text[:self.limit]


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


def record_size(record: Dict[str, Any]) -> int:
    """About how many bytes a span record takes: its strings plus a fixed
    cost per span, attribute and annotation (Python's dicts and ints)."""
    size = 2000 + len(record["name"]) + len(record["service"]) + len(record["status"]["message"])
    for key, value in record["attributes"].items():
        size += 150 + len(key) + (len(value) if isinstance(value, str) else 0)
    for annotation in record["annotations"]:
        size += 300 + len(annotation["value"])
    return size


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
        self.max_spans = max(1, max_spans)
        self.max_span_bytes = max(1, max_span_bytes)
        self.max_bytes_per_span = max(1, max_bytes_per_span)
        self.max_tracez_spans = max(1, max_tracez_spans)
        self._lock = threading.Lock()
        self._recent: Deque[Tuple[int, Dict[str, Any]]] = collections.deque()
        self._bytes = 0
        self._names: Dict[str, List[int]] = {}  # name -> [count, errors, *latency]
        self._on_spans = on_spans
        self.received = 0
        self.too_large = 0  # spans over max_bytes_per_span: not kept
        self.evicted = {"max_spans": 0, "max_span_bytes": 0}  # kept, then pushed out
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
                self._count(record)
                if size > self.max_bytes_per_span:
                    self.too_large += 1
                    continue
                kept.append(record)
                kept_spans.append(span)
                self._recent.append((size, record))
                self._bytes += size
            self._evict()
        if self._on_spans is not None and kept:
            self._on_spans(kept)
        return kept_spans

    def _count(self, record: Dict[str, Any]) -> None:
        name = record["name"]
        row = self._names.get(name)
        if row is None:
            if len(self._names) >= _MAX_NAMES:
                name = _OTHER
            row = self._names.setdefault(name, [0] * (2 + len(LATENCY_LABELS)))
        row[0] += 1
        row[1] += record["status"]["code"] != 0
        row[2 + latency_bucket(record["durationNano"])] += 1

    def _evict(self) -> None:
        recent = self._recent
        while len(recent) > self.max_spans:
            self._bytes -= recent.popleft()[0]
            self.evicted["max_spans"] += 1
        while self._bytes > self.max_span_bytes:
            self._bytes -= recent.popleft()[0]
            self.evicted["max_span_bytes"] += 1

    def summary(self) -> List[Dict[str, Any]]:
        with self._lock:
            rows = sorted(self._names.items())
        return [{"name": name, "count": row[0], "errors": row[1],
                 "latency": dict(zip(LATENCY_LABELS, row[2:]))} for name, row in rows]

    def recent(self, limit: int = 100) -> List[Dict[str, Any]]:
        """The latest ``limit`` spans, oldest first; at most ``max_tracez_spans``."""
        limit = min(limit, self.max_tracez_spans)
        if limit <= 0:
            return []
        with self._lock:
            start = max(0, len(self._recent) - limit)
            return [record for _, record in itertools.islice(self._recent, start, None)]

    def kept(self) -> List[Dict[str, Any]]:
        """Every span kept, oldest first (references: records are never changed)."""
        with self._lock:
            return [record for _, record in self._recent]

    def json(self, limit: int = 100) -> bytes:
        doc = {"spanNames": self.summary(), "recent": self.recent(limit)}
        return json.dumps(doc, default=_json_default).encode("utf-8")  # ASCII: escaped

    def html(self, limit: int = 50) -> bytes:
        head = "".join("<th>&ge;%s</th>" % label for label in LATENCY_LABELS)
        rows = []
        for row in self.summary():
            cells = "".join("<td>%d</td>" % n for n in row["latency"].values())
            rows.append("<tr><td>%s</td><td>%d</td><td>%d</td>%s</tr>" % (
                html.escape(row["name"]), row["count"], row["errors"], cells))
        recent = []
        for span in reversed(self.recent(limit)):
            recent.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.3f ms</td></tr>"
                          % (html.escape(span["service"]), html.escape(span["name"]),
                             span["traceId"], span["spanId"], span["durationNano"] / 1e6))
        page = (
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tracez</title></head>"
            "<body><h1>tracez</h1><h2>Span names</h2><table border=\"1\">"
            "<tr><th>Span name</th><th>Count</th><th>Errors</th>%s</tr>%s</table>"
            "<h2>Latest spans</h2><table border=\"1\"><tr><th>Service</th><th>Span name</th>"
            "<th>Trace</th><th>Span</th><th>Duration</th></tr>%s</table>"
            "<p><a href=\"/debug/tracez.json\">JSON</a></p></body></html>"
        ) % (head, "".join(rows), "".join(recent))
        return utf8(page)  # a lone surrogate in a name becomes U+FFFD

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
                 [(b"", len(self._recent))]),
                ("gotools_agent_span_bytes", GAUGE,
                 "Approximate bytes of the spans kept for /debug/tracez.", [(b"", self._bytes)]),
            )
        return [(Family(name, kind, help_text, ""), list(series))
                for name, kind, help_text, series in rows]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)
