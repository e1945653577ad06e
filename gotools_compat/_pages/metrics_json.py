"""``/metrics.json``: every metric family and its series, in one document for the page.

Both servers write it with :class:`Doc` (the agent from its store's
snapshot, ``export.prometheus`` from ``metric.registered()``), so a page
reads the same shape from either::

    {"source": "gotools-agent 0.1.0", "interval": 2.0, "now": 1712345678.5,
     "changed": 1712345670.25, "tracez": true,
     "families": [
       {"name": "promdemo_latencyDistribution", "type": "histogram",
        "help": "the various latencies", "unit": "ms",
        "series": [{"labels": {"vendor": "otc", "job": "go-tools-test"},
                    "le": ["0.0", "10.0", "+Inf"], "buckets": [0, 6, 1],
                    "count": 7, "sum": 9081}]},
       {"name": "x", "type": "counter", "help": "", "unit": "1",
        "series": [{"labels": {}, "value": 12}]},
       {"name": "q", "type": "summary", "help": "", "unit": "",
        "series": [{"labels": {}, "count": 3, "sum": 1.5,
                    "quantiles": [[0.5, 0.25], [0.99, 1.0]]}]}]}

- ``type``: ``counter``, ``gauge``, ``histogram``, ``gaugehistogram`` or
  ``summary``; ``name`` is the family name of ``/metrics`` (a counter's
  samples there add ``_total``); label names are as ``/metrics`` shows them.
- A histogram's ``buckets`` are **per bucket** (not cumulative): the values
  ``<= le`` and above the previous bound, the last one ``+Inf``; ``le`` is
  spelled as on ``/metrics``.  ``count`` is their sum.
- Numbers are JSON numbers; a non-finite one is the string ``"NaN"``,
  ``"+Inf"`` or ``"-Inf"`` (JSON has no such numbers).
- ``interval``: the seconds between the page's polls (see :class:`Paced`);
  ``now``: the server's clock (Unix seconds); ``changed``: when ``families``
  last differed from the previous answer (the first answer counts as a change).

The text is assembled as bytes from cached fragments (label objects, ``le``
lists, the last answer's text of each unchanged histogram series) rather
than through ``json.dumps`` of nested dicts, so ten thousand histogram
series take a few tens of milliseconds (``benchmarks/bench_pages.py``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import zlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from gotools_compat._promtext import format_le

DEFAULT_INTERVAL = 2.0  # seconds between the page's polls, unless a server says otherwise
_CACHE_LIMIT = 100_000
_dumps = json.dumps
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_PLAIN_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_ESCAPED = re.compile(r'\\[\\"n]')


def number_json(value: Any) -> bytes:
    """An int or float as JSON; non-finite floats as the strings "NaN", "+Inf", "-Inf"."""
    if type(value) is int:
        return b"%d" % value
    value = float(value)
    if math.isfinite(value):
        if value.is_integer() and -1e15 < value < 1e15:
            return b"%d" % value
        return repr(value).encode("ascii")
    return b'"NaN"' if value != value else (b'"+Inf"' if value > 0 else b'"-Inf"')


def sum_json(text: bytes) -> bytes:
    """A sum already written as Prometheus text (``21762``, ``0.25``, ``NaN``) as JSON."""
    return b'"%s"' % text if text[-1:] in (b"N", b"f") else text  # NaN, +Inf, -Inf


def labels_json(pairs: Iterable[Tuple[str, str]]) -> bytes:
    """A JSON object of label names to values, in the order given (ASCII: escaped)."""
    return _dumps(dict(pairs)).encode("ascii")


def le_json(bounds: Sequence[Any]) -> bytes:
    """The ``le`` list of a histogram's finite ``bounds``: as /metrics spells them, and +Inf."""
    return _dumps([format_le(b) for b in bounds] + ["+Inf"]).encode("ascii")


def parse_labels(text: bytes) -> List[Tuple[str, str]]:
    """The pairs of a label string as the text format writes it (``a="x",b="y\\"z"``)."""
    if not text:
        return []
    decoded = text.decode("utf-8", "replace")
    if "\\" not in decoded:
        return _PLAIN_PAIR.findall(decoded)  # no escapes: no value holds a quote
    return [(name, _ESCAPED.sub(lambda m: _UNESCAPE[m.group(0)], value))
            for name, value in _PAIR.findall(decoded)]


class LabelCache:
    """Label keys (the agent's label strings, or any key) to JSON objects, bounded."""

    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        self.limit = limit
        self._map: Dict[Any, bytes] = {}

    def get(self, key: bytes) -> bytes:
        """The JSON object of an agent's label string."""
        found = self._map.get(key)
        if found is None:
            found = self.put(key, labels_json(parse_labels(key)))
        return found

    def put(self, key: Any, value: bytes) -> bytes:
        if len(self._map) >= self.limit:
            self._map.clear()
        self._map[key] = value
        return value

    def lookup(self, key: Any) -> Optional[bytes]:
        return self._map.get(key)


class Texts:
    """Each histogram series' text of the last answer, kept for the next.

    A series whose counts and sum are as they were is not formatted again
    (the page polls more often than most senders export).  Only the series
    of the last answer are kept: the memory follows the series present."""

    __slots__ = ("old", "new")

    def __init__(self) -> None:
        self.old: Dict[Any, Tuple[Any, bytes, bytes, bytes]] = {}
        self.new: Dict[Any, Tuple[Any, bytes, bytes, bytes]] = {}

    def next_answer(self) -> None:
        self.old, self.new = self.new, {}


class Doc:
    """The ``families`` list of ``/metrics.json``, written family by family.

    Pieces (ASCII bytes) go to one list, joined once; a histogram series is
    one ``%`` of a template cached per bucket count (as the agent's renderer
    does), or, with ``texts``, the last answer's text of an unchanged series."""

    __slots__ = ("_out", "_first", "_texts")

    def __init__(self, texts: Optional[Texts] = None) -> None:
        self._out: List[bytes] = [b"["]
        self._first = True  # no series in the open family yet
        self._texts = texts
        if texts is not None:
            texts.next_answer()

    def family(self, name: str, kind: str, help_text: str, unit: str) -> None:
        out = self._out
        if len(out) > 1:
            out.append(b"]},")
        out.append(('{"name":%s,"type":%s,"help":%s,"unit":%s,"series":[' % (
            _dumps(name), _dumps(kind), _dumps(help_text), _dumps(unit))).encode("ascii"))
        self._first = True

    def _comma(self) -> None:
        if self._first:
            self._first = False
        else:
            self._out.append(b",")

    def scalar(self, labels: bytes, value: Any) -> None:
        self._comma()
        self._out.append(b'{"labels":%s,"value":%s}' % (labels, number_json(value)))

    def histogram(self, labels: bytes, le: bytes, counts: Sequence[int], total: bytes,
                  key: Any = None) -> None:
        """``le`` from :func:`le_json`, ``counts`` per bucket, ``total`` JSON
        (:func:`sum_json`); ``key`` names the series for :class:`Texts`."""
        if self._first:
            self._first = False
        else:
            self._out.append(b",")
        texts = self._texts
        if texts is not None and key is not None:
            known = texts.old.get(key)
            if known is not None and known[0] == counts and known[1] == total \
                    and known[2] is le:
                texts.new[key] = known
                self._out.append(known[3])
                return
        template = _TEMPLATES.get(len(counts))
        if template is None:
            template = _TEMPLATES[len(counts)] = (
                b'{"labels":%s,"le":%s,"buckets":[' + b",".join([b"%d"] * len(counts))
                + b'],"count":%d,"sum":%s}')
        text = template % ((labels, le) + tuple(counts) + (sum(counts), total))
        if texts is not None and key is not None:
            texts.new[key] = (counts, total, le, text)
        self._out.append(text)

    def summary(self, labels: bytes, count: int, total: Any,
                quantiles: Iterable[Tuple[float, float]]) -> None:
        self._comma()
        pairs = b",".join(b"[%s,%s]" % (number_json(q), number_json(v)) for q, v in quantiles)
        self._out.append(b'{"labels":%s,"count":%d,"sum":%s,"quantiles":[%s]}' % (
            labels, count, number_json(total), pairs))

    def families(self) -> bytes:
        """The JSON list of every family written."""
        out = self._out
        out.append(b"]}]" if len(out) > 1 else b"]")
        return b"".join(out)


_TEMPLATES: Dict[int, bytes] = {}


class Changes:
    """When the data last changed: a checksum of each answer's families (CRC-32
    and length: fast, and a change it misses is one in four billion), compared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digest = (0, -1)
        self._changed = 0.0

    def seen(self, families: bytes, now: float) -> float:
        """Note one answer's ``families``; returns when they last changed."""
        digest = (zlib.crc32(families), len(families))
        with self._lock:
            if digest != self._digest:
                self._digest = digest
                self._changed = now
            return self._changed


class Paced:
    """Answers for the page that cost the server at most ``share`` of one core.

    - The interval an answer asks for is the server's (``interval``), or
      longer where building the answer takes long: at least ``cost / share``
      (a store whose JSON takes 100 ms is polled every 5 s, not every 2 s).
    - Pages that poll together share one answer: one built less than half
      an interval ago is served again (so ten open pages cost one).
    """

    def __init__(self, interval: float, share: float = 0.02) -> None:
        self.base = interval
        self.share = share
        self._lock = threading.Lock()
        self._body = b""
        self._built = -math.inf
        self.cost = 0.0  # CPU seconds the last answer took to build

    def interval(self) -> float:
        """The interval the next answer asks pages to poll at."""
        paced = self.cost / self.share
        return self.base if paced <= self.base else math.ceil(paced * 2) / 2

    def answer(self, build: Callable[[float], bytes]) -> bytes:
        """The current answer: ``build(interval)``'s, or a recent one's."""
        with self._lock:
            if time.monotonic() - self._built < self.base / 2:
                return self._body
            start = time.perf_counter()
            body = build(self.interval())
            self.cost = time.perf_counter() - start
            self._built = time.monotonic()
            self._body = body
            return body


def document(families: bytes, *, source: str, interval: float, changes: Changes,
             tracez: bool) -> bytes:
    """The whole ``/metrics.json`` of ``families`` (from :meth:`Doc.families`)."""
    now = time.time()
    changed = changes.seen(families, now)
    head = b'{"source":%s,"interval":%s,"now":%.3f,"changed":%.3f,"tracez":%s,"families":' % (
        _dumps(source).encode("ascii"), number_json(interval), now, changed,
        b"true" if tracez else b"false")
    return b"".join((head, families, b"}"))
