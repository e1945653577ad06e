"""``/debug/tracez.json``: the span names, a bucket's spans and a trace, for ``tracez.js``.

Both servers answer it from their span records (the agent from the spans it
received, :mod:`gotools_compat.agent._traces`; ``serve()`` from the spans
that ended in its process, ``export._prometheus_spans``) with
:func:`tracez_json`, so the same page reads the same shape from either.
The contract (also in :mod:`gotools_compat.agent._page_data`): every answer
carries ``spanNames`` (per name ``count``, ``errors`` and ``latency`` by
bucket), ``interval`` and ``kept``; then

- no query: ``recent``, the latest ``limit`` spans (100 by default);
- ``?name=N&latency=L`` (``L`` one of :data:`LATENCY_LABELS`: the bucket
  ``[L, next)``) or ``?name=N&errors=1``: ``spans``, the kept spans of that
  name in that bucket (or with an error status), newest first, at most
  ``limit``, and ``matched``, how many matched in all;
- ``?trace=T``: ``trace``, every kept span of trace ``T`` (32 hex digits) by
  start time, each with ``offsetNano`` (its start after the trace's first),
  and ``matched``.

A bad parameter raises :class:`BadQuery` (the servers answer 400).  A span
record is a dict: ``traceId``, ``spanId``, ``parentSpanId`` (hex, "" for a
root), ``name``, ``kind``, ``service``, ``startUnixNano``, ``durationNano``,
``status`` (``code``, ``message``), ``attributes`` (name -> value) and
``annotations`` (``timeUnixNano``, ``value``).  Pure: no wire format here.
:func:`tracez_table` is ``?format=table``, the page without JavaScript.
"""

from __future__ import annotations

import base64
import bisect
import collections
import html
import itertools
import json
import re
from typing import Any, Callable, Deque, Dict, List, Optional, Protocol, Tuple

from gotools_compat._promtext import utf8

# zPages latency buckets: [0, 10us), [10us, 100us) ... [100s, inf).
LATENCY_NS = (10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000,
              10_000_000_000, 100_000_000_000)
LATENCY_LABELS = ("0s", "10us", "100us", "1ms", "10ms", "100ms", "1s", "10s", "100s")
MAX_STRING = 4096  # characters kept of a span's string
MAX_NAMES = 10_000  # span names counted apart; later ones are counted together
OTHER_NAMES = "(other span names)"
TRACE_ID = re.compile(r"[0-9a-f]{32}")  # the whole value (fullmatch)


class BadQuery(ValueError):
    """A parameter of ``/debug/tracez.json`` that is not valid (HTTP 400)."""


def latency_bucket(duration_ns: int) -> int:
    """The index in LATENCY_LABELS of a span's duration: [label, next label)."""
    return bisect.bisect_right(LATENCY_NS, duration_ns)


class Cut:
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


def record_size(record: Dict[str, Any]) -> int:
    """About how many bytes a span record takes: its strings plus a fixed
    cost per span, attribute and annotation (Python's dicts and ints)."""
    size = 2000 + len(record["name"]) + len(record["service"]) + len(record["status"]["message"])
    for key, value in record["attributes"].items():
        size += 150 + len(key) + (len(value) if isinstance(value, str) else 0)
    for annotation in record["annotations"]:
        size += 300 + len(annotation["value"])
    return size


class SpanNames:
    """Counts per span name (count, errors, per latency bucket) that never shrink.

    At most :data:`MAX_NAMES` names apart; spans of later names are counted
    under :data:`OTHER_NAMES`.  Not locked: its owner holds its own lock."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: Dict[str, List[int]] = {}  # name -> [count, errors, *latency]

    def add(self, name: str, code: int, duration_ns: int) -> None:
        rows = self._rows
        row = rows.get(name)
        if row is None:
            if len(rows) >= MAX_NAMES:
                name = OTHER_NAMES
            row = rows.setdefault(name, [0] * (2 + len(LATENCY_LABELS)))
        row[0] += 1
        row[1] += code != 0
        row[2 + latency_bucket(duration_ns)] += 1

    def summary(self) -> List[Dict[str, Any]]:
        """``spanNames``: one row per name, by name."""
        return [{"name": name, "count": row[0], "errors": row[1],
                 "latency": dict(zip(LATENCY_LABELS, row[2:]))}
                for name, row in sorted(self._rows.items())]


class KeptSpans:
    """The span records a store keeps, oldest first, and the counts per name.

    At most ``max_spans`` records and ``max_span_bytes`` bytes (about: each
    record its :func:`record_size`); past either the oldest go, counted in
    ``evicted`` by bound.  Every record :meth:`count` is given is counted in
    :attr:`names`, kept or not.  Not locked: its owner holds its own lock
    around every call, and around :meth:`recent` and :meth:`kept`.
    """

    __slots__ = ("max_spans", "max_span_bytes", "names", "evicted", "records", "bytes")

    def __init__(self, max_spans: int, max_span_bytes: int) -> None:
        self.max_spans = max_spans
        self.max_span_bytes = max_span_bytes
        self.names = SpanNames()
        self.evicted = {"max_spans": 0, "max_span_bytes": 0}
        self.records: Deque[Tuple[int, Dict[str, Any]]] = collections.deque()
        self.bytes = 0

    def count(self, record: Dict[str, Any]) -> None:
        self.names.add(record["name"], record["status"]["code"], record["durationNano"])

    def keep(self, record: Dict[str, Any], size: int) -> None:
        """Keep ``record`` (of ``size`` bytes); call :meth:`evict` after a batch."""
        self.records.append((size, record))
        self.bytes += size

    def evict(self) -> None:
        records = self.records
        while len(records) > self.max_spans:
            self.bytes -= records.popleft()[0]
            self.evicted["max_spans"] += 1
        while self.bytes > self.max_span_bytes and records:
            self.bytes -= records.popleft()[0]
            self.evicted["max_span_bytes"] += 1

    def recent(self, limit: int) -> List[Dict[str, Any]]:
        """The latest ``limit`` records, oldest first."""
        if limit <= 0:
            return []
        start = max(0, len(self.records) - limit)
        return [record for _, record in itertools.islice(self.records, start, None)]

    def kept(self) -> List[Dict[str, Any]]:
        """Every record kept, oldest first (references: records are never changed)."""
        return [record for _, record in self.records]


class Spans(Protocol):
    """What :func:`tracez_json` reads of a span store."""

    max_tracez_spans: int

    def summary(self) -> List[Dict[str, Any]]: ...

    def recent(self, limit: int = 100) -> List[Dict[str, Any]]: ...

    def kept(self) -> List[Dict[str, Any]]: ...


def json_default(value: Any) -> Any:
    """What JSON cannot hold: bytes as base64, anything else as its ``str()``."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def tracez_json(spans: Spans, query: Callable[[str, str], str], interval: float,
                extra: Optional[Dict[str, Any]] = None) -> bytes:
    """The answer for the request's ``query(name, default)``; ``extra``: more fields."""
    try:
        limit = int(query("limit", "100"))
    except ValueError:
        limit = 100
    doc: Dict[str, Any] = {"spanNames": spans.summary(), "interval": interval}
    if extra:
        doc.update(extra)
    name, trace = query("name", ""), query("trace", "").lower()
    if trace:
        if not TRACE_ID.fullmatch(trace):
            raise BadQuery("trace: expected 32 hex digits, not %r" % trace[:64])
        kept = spans.kept()
        found = [record for record in kept if record["traceId"] == trace]
        found.sort(key=lambda record: record["startUnixNano"])
        start = found[0]["startUnixNano"] if found else 0
        # offsetNano: exact, where a browser's doubles cannot tell nanoseconds
        # of Unix time apart (2**53 ns is 104 days).
        shown = [dict(record, offsetNano=record["startUnixNano"] - start)
                 for record in found[:spans.max_tracez_spans]]
        doc.update(kept=len(kept), matched=len(found), trace=shown)
    elif name:
        latency, errors = query("latency", ""), query("errors", "") not in ("", "0")
        if latency and latency not in LATENCY_LABELS:
            raise BadQuery("latency: one of %s, not %r" % (", ".join(LATENCY_LABELS),
                                                           latency[:64]))
        bucket = LATENCY_LABELS.index(latency) if latency else -1
        kept = spans.kept()
        found = [record for record in reversed(kept) if record["name"] == name
                 and (bucket < 0 or latency_bucket(record["durationNano"]) == bucket)
                 and (not errors or record["status"]["code"] != 0)]
        doc.update(kept=len(kept), matched=len(found),
                   spans=found[:max(0, min(limit, spans.max_tracez_spans))])
    else:
        doc.update(kept=len(spans.kept()), recent=spans.recent(limit))
    return json.dumps(doc, default=json_default).encode("utf-8")  # ASCII: escaped


def tracez_table(summary: List[Dict[str, Any]], recent: List[Dict[str, Any]]) -> bytes:
    """``/debug/tracez?format=table``: ``summary`` and the ``recent`` spans (oldest
    first, shown newest first) as plain HTML tables, for a browser without JavaScript."""
    head = "".join("<th>&ge;%s</th>" % label for label in LATENCY_LABELS)
    rows = []
    for row in summary:
        cells = "".join("<td>%d</td>" % n for n in row["latency"].values())
        rows.append("<tr><td>%s</td><td>%d</td><td>%d</td>%s</tr>" % (
            html.escape(row["name"]), row["count"], row["errors"], cells))
    latest = []
    for span in reversed(recent):
        latest.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%.3f ms</td></tr>"
                      % (html.escape(span["service"]), html.escape(span["name"]),
                         span["traceId"], span["spanId"], span["durationNano"] / 1e6))
    page = (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tracez</title></head>"
        "<body><h1>tracez</h1><h2>Span names</h2><table border=\"1\">"
        "<tr><th>Span name</th><th>Count</th><th>Errors</th>%s</tr>%s</table>"
        "<h2>Latest spans</h2><table border=\"1\"><tr><th>Service</th><th>Span name</th>"
        "<th>Trace</th><th>Span</th><th>Duration</th></tr>%s</table>"
        "<p><a href=\"/debug/tracez.json\">JSON</a></p></body></html>"
    ) % (head, "".join(rows), "".join(latest))
    return utf8(page)  # a lone surrogate in a name becomes U+FFFD


__all__ = ["LATENCY_NS", "LATENCY_LABELS", "MAX_STRING", "MAX_NAMES", "OTHER_NAMES", "TRACE_ID",
           "BadQuery", "Cut", "SpanNames", "Spans", "latency_bucket", "record_size",
           "json_default", "tracez_json", "tracez_table"]
