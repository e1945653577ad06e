"""Received spans: a bounded store, a tracez page like the agent's zPages, JSON."""

from __future__ import annotations

import base64
import collections
import html
import json
import threading
from typing import Any, Callable, Deque, Dict, List, Optional

# zPages latency buckets: [0, 10us), [10us, 100us) ... [100s, inf).
_LATENCY_NS = (10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000,
               10_000_000_000, 100_000_000_000)
LATENCY_LABELS = ("0s", "10us", "100us", "1ms", "10ms", "100ms", "1s", "10s", "100s")
_KINDS = {0: "UNSPECIFIED", 1: "SERVER", 2: "CLIENT"}
_MAX_NAMES = 10_000
_OTHER = "(other span names)"


def _hex(raw: bytes) -> str:
    return raw.hex()


def _nanos(stamp: Any) -> int:
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


def _attribute(value: Any) -> Any:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value.value
    if which is None:
        return None
    return getattr(value, which)


def span_record(service: str, span: Any) -> Dict[str, Any]:
    """A received span as a plain JSON-ready dict."""
    start = _nanos(span.start_time)
    end = _nanos(span.end_time)
    attributes = {k: _attribute(v) for k, v in span.attributes.attribute_map.items()}
    annotations = []
    for event in span.time_events.time_event:
        which = event.WhichOneof("value")
        if which == "annotation":
            text = event.annotation.description.value or ", ".join(
                "%s=%s" % (k, _attribute(v))
                for k, v in sorted(event.annotation.attributes.attribute_map.items()))
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
        "name": span.name.value,
        "kind": _KINDS.get(span.kind, "UNSPECIFIED"),
        "service": service,
        "startUnixNano": start,
        "durationNano": max(0, end - start),
        "status": {"code": span.status.code, "message": span.status.message},
        "attributes": attributes,
        "annotations": annotations,
    }


class TraceStore:
    """The last ``max_spans`` spans, and counts per span name that never shrink."""

    def __init__(self, max_spans: int = 10_000,
                 on_spans: Optional[Callable[[List[Dict[str, Any]]], None]] = None) -> None:
        self._lock = threading.Lock()
        self._recent: Deque[Dict[str, Any]] = collections.deque(maxlen=max(1, max_spans))
        self._names: Dict[str, List[int]] = {}  # name -> [count, errors, *latency]
        self._on_spans = on_spans

    def add(self, node: Any, spans: Any) -> int:
        service = node.service_info.name if node is not None else ""
        records = [span_record(service, span) for span in spans]
        with self._lock:
            for record in records:
                name = record["name"]
                row = self._names.get(name)
                if row is None:
                    if len(self._names) >= _MAX_NAMES:
                        name = _OTHER
                    row = self._names.setdefault(name, [0] * (2 + len(LATENCY_LABELS)))
                row[0] += 1
                row[1] += record["status"]["code"] != 0
                duration = record["durationNano"]
                bucket = sum(1 for bound in _LATENCY_NS if duration >= bound)
                row[2 + bucket] += 1
                self._recent.append(record)
        if self._on_spans is not None and records:
            self._on_spans(records)
        return len(records)

    def summary(self) -> List[Dict[str, Any]]:
        with self._lock:
            rows = sorted(self._names.items())
        return [{"name": name, "count": row[0], "errors": row[1],
                 "latency": dict(zip(LATENCY_LABELS, row[2:]))} for name, row in rows]

    def recent(self, limit: int = 100) -> List[Dict[str, Any]]:
        with self._lock:
            spans = list(self._recent)
        return spans[-limit:] if limit > 0 else []

    def json(self, limit: int = 100) -> bytes:
        doc = {"spanNames": self.summary(), "recent": self.recent(limit)}
        return json.dumps(doc, default=_json_default).encode("utf-8")

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
        return page.encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)
