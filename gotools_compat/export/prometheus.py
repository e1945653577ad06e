"""An in-process Prometheus endpoint, as Go's ``export/prometheus`` package.

::

    from gotools_compat.export import prometheus
    exp = prometheus.new(namespace="myapp")   # a prometheus_client collector
    server = exp.serve(port=9464)             # 127.0.0.1 unless told otherwise
    ...
    server.stop()

Pull, not push: every scrape reads the current rows of every metric, ours
straight from their rows and the app's plain-opencensus views through
opencensus (nothing is copied per record).  ``exp`` is a prometheus_client
collector too: ``registry.register(exp)`` puts it in any registry, under
``generate_latest``, ``make_wsgi_app`` or ``make_asgi_app``; ``exp.wsgi_app``
is a WSGI app; ``exp.render()`` gives the text.

What the exposition looks like:

- Names are the metric's name as chosen, prefixed with ``namespace + "_"``;
  no unit suffix is added.  Characters Prometheus refuses become ``_``, and a
  name that starts with a digit gets a leading ``_``.  Counters (count and sum
  metrics, cumulative as in Go and opencensus) carry their samples as
  ``<name>_total``, by Prometheus convention; a name that already ends with
  ``_total`` is not suffixed twice.  Latest-value metrics are gauges.
- Histograms: ``<name>_bucket`` with ``le`` for each declared bound (zero and
  negative bounds included) and ``+Inf``; counts are cumulative, counted as
  ``value <= le`` and end at ``<name>_count``.  In the text format every
  histogram carries ``_bucket``, ``_count`` and ``_sum``; in OpenMetrics a
  histogram whose first bound is negative carries buckets only, as that
  format requires (``_sum`` is forbidden there and ``_count`` comes only with
  ``_sum``).
- Label names are the metric's key names.  A character Prometheus refuses
  becomes ``_``; a name that starts with a digit or with ``__`` (reserved),
  and the names ``le`` and ``quantile`` (reserved by histograms and
  summaries), get the prefix ``key_``; should two keys of one metric end up
  with one name, the later ones get ``_2``, ``_3``, ... appended.
- Label values are escaped as the format says.  A key with no value in the
  context (None) is shown as the empty string, which Prometheus treats as
  the label being absent.  So rows that differ only in None against ``""``
  are one series there: they are shown as one, summed (counters and
  histograms) or, for a gauge, the value of the row created last (for plain
  opencensus views: of the later series opencensus lists).
- A sum metric is a counter, as in Go and opencensus (cumulative); should a
  row of it go negative (a measure that records negative values), the text
  format shows it, while OpenMetrics, which forbids negative counters, leaves
  that row out, with one WARNING.  Use a latest-value metric for values that
  go down.
- Values: ints are written exactly (counts, Int64 sums, gauges and histogram
  sums; through a prometheus_client registry they become floats), floats as
  Go formats them.
- Two metrics whose names collide after the rules above (e.g. ``a.b`` and
  ``a_b``, or a gauge ``x_count`` beside a histogram ``x``): the one defined
  first is shown, the other is left out with one WARNING.

Through a prometheus_client registry the collector cannot know the format
its registry will write: it yields the text-format samples (all three series
of every histogram, negative sums as they are), which prometheus_client's
OpenMetrics writer passes on unchanged; ints become floats there.

Content negotiation: :meth:`Exporter.serve` and :meth:`Exporter.wsgi_app`
answer in the text format 0.0.4 whenever the client takes it (Prometheus
does: it lists text/plain after OpenMetrics), since OpenMetrics cannot carry
some of what the text format can (see above); a client that takes only
OpenMetrics gets OpenMetrics.  Either is gzipped when the client asks.

Scrapes that fail (an exception while collecting) answer HTTP 500; each
distinct error is logged once at ERROR with its traceback, repeats at DEBUG;
the next scrape starts afresh.

Apps that use the stock ``opencensus-ext-prometheus`` exporter: pass it to
:func:`take_over`; its endpoint then serves this exporter's correct output
for every view (its own Sum and LastValue views made every scrape an HTTP 500:
E16).
"""

from __future__ import annotations

import gzip
import logging
import re
import threading
from itertools import accumulate
from operator import concat
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set,
                    Tuple, Union, cast)

from prometheus_client.core import (CounterMetricFamily, GaugeHistogramMetricFamily,
                                    GaugeMetricFamily, Metric, SummaryMetricFamily)
from prometheus_client import exposition as _exposition
from prometheus_client import utils as _utils
from prometheus_client.openmetrics import exposition as _om_exposition

from gotools_compat import _server
from gotools_compat import metric as _metric
from gotools_compat._oc import prometheus as _oc_prometheus

log = logging.getLogger(__name__)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
DEFAULT_PORT = 9464
DEFAULT_ADDRESS = "127.0.0.1"
#: The bounds of :meth:`Exporter.serve` (connections, timeouts, sizes).
Limits = _server.Limits
# serve(): scrapes carry no body; two handler threads, whatever the number of scrapers.
_SERVE_LIMITS = Limits(max_body_bytes=64 * 1024, workers=2)

_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_:]")
_BAD_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")
_RESERVED_LABELS = frozenset(("le", "quantile"))
_SUFFIXES = {"counter": ("_total", "_created"), "gauge": (),
             "histogram": ("_bucket", "_count", "_sum", "_created")}

Number = Union[int, float]
Labels = Tuple[Optional[str], ...]

# prometheus_client's own float format (Go's), and its renderers.
floatToGoString = cast(Callable[[Number], str], _utils.floatToGoString)
_text_latest = cast(Callable[[Any], bytes], _exposition.generate_latest)
_om_latest = cast(Callable[[Any], bytes], _om_exposition.generate_latest)


def metric_name(namespace: str, name: str) -> str:
    """The Prometheus name of metric ``name`` under ``namespace``."""
    full = "%s_%s" % (namespace, name) if namespace else name
    full = _BAD_NAME_CHARS.sub("_", full)
    return "_" + full if full[:1].isdigit() else full


def label_names(columns: Sequence[str]) -> Tuple[str, ...]:
    """The Prometheus label names for a metric's key names (see the module doc)."""
    out: List[str] = []
    for column in columns:
        name = _BAD_LABEL_CHARS.sub("_", column) or "_"
        if name[0].isdigit() or name.startswith("__") or name in _RESERVED_LABELS:
            name = "key_" + name
        base, n = name, 1
        while name in out:
            n += 1
            name = "%s_%d" % (base, n)
        out.append(name)
    return tuple(out)


def wants_openmetrics(accept: Optional[str]) -> bool:
    """Whether a scrape with this Accept header gets OpenMetrics rather than text.

    Only when the client does not take the text format: OpenMetrics cannot
    carry what the text format can for some of our data (``_sum``/``_count``
    of histograms with negative bounds, sums that went negative), and
    Prometheus accepts both.
    """
    takes_text = takes_openmetrics = False
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if any(f.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for f in fields[1:]):
            continue
        if media in ("text/plain", "text/*", "*/*"):
            takes_text = True
        elif media == "application/openmetrics-text":
            takes_openmetrics = True
    return takes_openmetrics and not takes_text


def _escape_value(value: Optional[str]) -> str:
    if value is None:
        return ""
    if "\\" in value or "\n" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    # Lone surrogates cannot be written as UTF-8.
    return value.encode("utf-8", "replace").decode("utf-8")


def _escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if openmetrics else text


_concat = cast(Callable[[str, str], str], concat)


def _fmt(value: Number) -> str:
    return str(value) if type(value) is int else floatToGoString(value)


class _Plan:
    """How one of our metrics renders: names, headers and each row's line prefixes.

    Prefixes are cached per row key, so a scrape formats only numbers.
    """

    def __init__(self, entry: Any, namespace: str) -> None:
        self.entry = entry
        recorder = entry.recorder
        self.recorder = recorder
        kind = entry.definition[0]
        self.histogram = kind.startswith("histogram")
        self.type = ("histogram" if self.histogram else
                     "gauge" if entry.is_gauge else "counter")
        name = metric_name(namespace, entry.info.name)
        if self.type == "counter" and name.endswith("_total") and len(name) > 6:
            name = name[:-6]
        self.family = name
        self.sample = name + "_total" if self.type == "counter" else name
        self.labelnames = label_names(recorder.columns)
        self.documentation = entry.info.description
        help_text = _escape_help(self.documentation, False)
        help_om = _escape_help(self.documentation, True)
        text_name = self.sample if self.type == "counter" else name
        self.header_text = "# HELP %s %s\n# TYPE %s %s\n" % (text_name, help_text, text_name,
                                                           self.type)
        self.header_om = "# HELP %s %s\n# TYPE %s %s\n" % (name, help_om, name, self.type)
        self.claims = {name} | {name + suffix for suffix in _SUFFIXES[self.type]}
        # Labels are written sorted by name (as prometheus_client does); "le"
        # sorts among them.  Keys renamed above never collide with "le".
        self.order = sorted(range(len(self.labelnames)), key=self.labelnames.__getitem__)
        sorted_names = [self.labelnames[i] for i in self.order]
        self.le_at = sum(1 for n in sorted_names if n < "le")
        if self.histogram:
            bounds = recorder.aggregation.bounds
            self.negative = bounds[0] < 0
            self.les = [floatToGoString(b) for b in bounds] + ["+Inf"]
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

    def rows(self) -> List[Any]:
        """The recorder's rows, merged where Prometheus would show one series twice."""
        rows: List[Any] = self.recorder.snapshot_rows()
        if not self.merge:
            return rows
        groups: Dict[Labels, List[Any]] = {}
        for row in rows:
            labels = row.labels
            if None in labels:
                labels = tuple(["" if v is None else v for v in labels])
            groups.setdefault(labels, []).append(row)
        gauge = self.type == "gauge"
        return [group[0] if len(group) == 1 else _MergedRow(labels, group, gauge)
                for labels, group in groups.items()]

    def _pairs(self, labels: Sequence[Optional[str]]) -> List[str]:
        names = self.labelnames
        return ['%s="%s"' % (names[i], _escape_value(labels[i])) for i in self.order]

    def scalar_prefix(self, labels: Labels) -> str:
        self._note(labels)
        pairs = self._pairs(labels)
        prefix = "%s{%s} " % (self.sample, ",".join(pairs)) if pairs else self.sample + " "
        self.series[labels] = prefix
        return prefix

    def histogram_prefixes(self, labels: Labels) -> Tuple[List[str], str, str]:
        self._note(labels)
        pairs = self._pairs(labels)
        before = "".join(p + "," for p in pairs[:self.le_at])
        after = "".join("," + p for p in pairs[self.le_at:])
        name = self.family
        buckets = ['%s_bucket{%sle="%s"%s} ' % (name, before, le, after) for le in self.les]
        plain = "{%s}" % ",".join(pairs) if pairs else ""
        entry = (buckets, "%s_count%s " % (name, plain), "%s_sum%s " % (name, plain))
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
            for row in rows:
                prefix = series.get(row.labels) or self.scalar_prefix(row.labels)
                value = row.value()
                if positive and value < 0:
                    self._negative_counter()
                    continue
                out.append(prefix + (str(value) if type(value) is int
                                     else floatToGoString(value)) + "\n")
            return
        bare = openmetrics and self.negative
        for row in rows:
            counts, total = row.snapshot()[:2]
            buckets, count_prefix, sum_prefix = (series.get(row.labels)
                                                 or self.histogram_prefixes(row.labels))
            cumulative = list(map(str, accumulate(counts)))
            out.append("\n".join(map(_concat, buckets, cumulative)))
            if bare:
                out.append("\n")
            else:
                out.append("\n%s%s\n%s%s\n" % (count_prefix, cumulative[-1], sum_prefix,
                                               _fmt(total)))

    def _negative_counter(self) -> None:
        if not self.warned_negative:
            self.warned_negative = True
            log.warning("sum metric %r has a negative row, which OpenMetrics forbids for a "
                        "counter: such rows are left out of OpenMetrics scrapes (the text "
                        "format shows them); use a latest_* metric for values that go down",
                        self.entry.info.name)

    def family_metric(self) -> Metric:
        names = self.labelnames
        if not self.merge:
            for row in self.recorder.snapshot_rows():
                if row.labels not in self.series:  # not noted by a render yet
                    self._note(row.labels)
        rows = self.rows()
        if not self.histogram:
            family: Metric
            cls = CounterMetricFamily if self.type == "counter" else GaugeMetricFamily
            family = cls(self.family, self.documentation, labels=names)
            for row in rows:
                family.add_metric(["" if v is None else v for v in row.labels], row.value())
            return family
        family = Metric(self.family, self.documentation, "histogram")
        for row in rows:
            counts, total = row.snapshot()[:2]
            labels = dict(zip(names, ["" if v is None else v for v in row.labels]))
            running = 0
            for le, count in zip(self.les, counts):
                running += count
                family.add_sample(self.family + "_bucket", dict(labels, le=le), running)
            family.add_sample(self.family + "_count", labels, running)
            family.add_sample(self.family + "_sum", labels, total)
        return family


class _MergedRow:
    """Rows that are one Prometheus series, read as one row (see _Plan.rows)."""

    def __init__(self, labels: Labels, rows: List[Any], gauge: bool) -> None:
        self.labels = labels
        self.rows = rows
        self.gauge = gauge

    def value(self) -> Number:
        if self.gauge:
            value: Number = self.rows[-1].value()
        else:
            value = sum(row.value() for row in self.rows)
        return value

    def snapshot(self) -> Tuple[List[int], Number]:
        snapshots = [row.snapshot() for row in self.rows]
        counts = [sum(c) for c in zip(*[s[0] for s in snapshots])]
        return counts, sum(s[1] for s in snapshots)


def _foreign_family(metric: Any, namespace: str) -> Optional[Metric]:
    """A prometheus_client family for an opencensus ``Metric`` (any descriptor type)."""
    descriptor = metric.descriptor
    name = metric_name(namespace, descriptor.name)
    names = label_names([key.key for key in descriptor.label_keys])
    doc = descriptor.description or ""
    kind = int(descriptor.type)
    family: Metric
    # opencensus MetricDescriptorType: 1, 2 gauges; 3 gauge distribution;
    # 4, 5 cumulative; 6 cumulative distribution; 7 summary.
    if kind in (1, 2):
        family = GaugeMetricFamily(name, doc, labels=names)
    elif kind in (4, 5):
        family = CounterMetricFamily(name, doc, labels=names)
    elif kind == 3:
        family = GaugeHistogramMetricFamily(name, doc, labels=names)
    elif kind == 6:
        family = Metric(name, doc, "histogram")
    elif kind == 7:
        family = SummaryMetricFamily(name, doc, labels=names)
    else:  # pragma: no cover - opencensus has no other types
        return None
    # Series whose label values differ only in None vs "" are one series in
    # Prometheus (see the module doc): cumulative ones are summed, gauges and
    # summaries keep the later series.
    points: Dict[Tuple[str, ...], Any] = {}
    for series in metric.time_series:
        if not series.points:
            continue
        values = tuple(["" if v.value is None else v.value for v in series.label_values])
        value = _plain(kind, series.points[-1].value)
        if values in points and kind in (4, 5, 6):
            value = _sum_points(points[values], value)
        points[values] = value
    for values, value in points.items():
        _add_point(family, kind, names, list(values), value)
    return family


def _plain(kind: int, value: Any) -> Any:
    """An opencensus point value as a number, ``(counts, sum, bounds)`` or the summary."""
    if kind in (1, 2, 4, 5):
        return value.value
    if kind in (3, 6):
        bounds = list(value.bucket_options.type_.bounds) if value.bucket_options.type_ else []
        counts = ([b.count for b in value.buckets] if value.buckets
                  else [0] * (len(bounds) + 1))
        return counts, value.sum, bounds
    return value


def _sum_points(old: Any, new: Any) -> Any:
    if type(new) is tuple:
        if old[2] != new[2]:
            return new  # bounds differ: cannot be added
        return [a + b for a, b in zip(old[0], new[0])], old[1] + new[1], new[2]
    return old + new


def _add_point(family: Metric, kind: int, names: Tuple[str, ...], values: List[str],
               value: Any) -> None:
    if kind in (1, 2, 4, 5):
        family.add_metric(values, value)  # type: ignore[attr-defined]
        return
    if kind == 7:
        snapshot = value.snapshot
        quantiles = [(floatToGoString(p.percentile / 100.0), p.value)
                     for p in (snapshot.value_at_percentiles if snapshot else [])]
        labels = dict(zip(names, values))
        for quantile, q_value in quantiles:
            family.add_sample(family.name, dict(labels, quantile=quantile), q_value)
        family.add_sample(family.name + "_count", labels, value.count or 0)
        family.add_sample(family.name + "_sum", labels, value.sum or 0)
        return
    counts, total, bounds = value
    les = [floatToGoString(b) for b in bounds] + ["+Inf"]
    cumulative = list(accumulate(counts))
    if kind == 3:
        family.add_metric(values, list(zip(les, cumulative)), total)  # type: ignore
        return
    labels = dict(zip(names, values))
    for le, count in zip(les, cumulative):
        family.add_sample(family.name + "_bucket", dict(labels, le=le), count)
    family.add_sample(family.name + "_count", labels, cumulative[-1])
    family.add_sample(family.name + "_sum", labels, total)


class _Families:
    """A collector over prepared families, for prometheus_client's renderers."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _family_claims(family: Metric) -> Set[str]:
    return {family.name} | {family.name + s for s in _SUFFIXES.get(family.type, ())}


class Exporter:
    """The metrics of this process in the Prometheus formats (Go's ``prometheus.Exporter``).

    A prometheus_client collector (``collect``/``describe``), a renderer
    (:meth:`render`), a WSGI app (:meth:`wsgi_app`) and an HTTP server
    (:meth:`serve`).  Exporters share no state: each has its own namespace,
    caches and servers, and none registers itself anywhere on its own.
    """

    def __init__(self, namespace: str = "") -> None:
        if not isinstance(namespace, str):
            raise TypeError("namespace must be a str, not %s" % type(namespace).__name__)
        self.namespace = namespace
        self._plans: Dict[str, _Plan] = {}
        self._warned: Set[str] = set()
        self._errors_seen: Set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "prometheus.Exporter(namespace=%r)" % self.namespace

    # What is shown.

    def _our_plans(self) -> List[_Plan]:
        with _metric._lock:
            entries = list(_metric._metrics.items())
        plans = self._plans
        out = []
        for name, entry in entries:
            plan = plans.get(name)
            if plan is None or plan.entry is not entry:
                plan = plans[name] = _Plan(entry, self.namespace)
            out.append(plan)
        return out

    def _shown(self) -> Tuple[List[_Plan], List[Metric]]:
        """Our plans and the foreign families, minus those whose names collide."""
        claimed: Set[str] = set()
        plans = []
        for plan in self._our_plans():
            if self._claim(claimed, plan.claims, plan.entry.info.name):
                plans.append(plan)
        families = []
        for oc_metric in _oc_prometheus.foreign_metrics():
            family = _foreign_family(oc_metric, self.namespace)
            if family is not None and self._claim(claimed, _family_claims(family),
                                                  oc_metric.descriptor.name):
                families.append(family)
        return plans, families

    def _claim(self, claimed: Set[str], wanted: Set[str], name: str) -> bool:
        if claimed.isdisjoint(wanted):
            claimed |= wanted
            return True
        if name not in self._warned:
            self._warned.add(name)
            log.warning("metric %r is not exported to Prometheus: its name collides with "
                        "another metric's (%s)", name, ", ".join(sorted(claimed & wanted)))
        return False

    # prometheus_client's collector protocol.

    def collect(self) -> Iterator[Metric]:
        """Every metric as a prometheus_client family (for any registry)."""
        plans, families = self._shown()
        for plan in plans:
            yield plan.family_metric()
        yield from families

    def describe(self) -> List[Metric]:
        # Registering must not collect (a registry would otherwise scrape at
        # once and pin today's names as its duplicate check).
        return []

    # Rendering.

    def render(self, openmetrics: bool = False) -> bytes:
        """The exposition in the text format 0.0.4, or in OpenMetrics 1.0.0."""
        plans, families = self._shown()
        out: List[str] = []
        for plan in plans:
            plan.render(out, openmetrics)
        if families:
            if openmetrics:
                rest = _om_latest(_Families(families)).decode("utf-8")
                out.append(rest[:-len("# EOF\n")])
            else:
                out.append(_text_latest(_Families(families)).decode("utf-8"))
        if openmetrics:
            out.append("# EOF\n")
        return "".join(out).encode("utf-8")

    def respond(self, accept: str = "", accept_encoding: str = ""
                ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        """(status, headers, body) of a scrape: content negotiation, gzip, errors."""
        openmetrics = wants_openmetrics(accept)
        try:
            body = self.render(openmetrics)
        except Exception as error:
            self._log_error(error)
            message = "scrape failed: %s\n" % type(error).__name__
            return 500, [("Content-Type", "text/plain; charset=utf-8")], message.encode()
        headers = [("Content-Type", OPENMETRICS_CONTENT_TYPE if openmetrics
                    else TEXT_CONTENT_TYPE)]
        if "gzip" in (accept_encoding or ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return 200, headers, body

    def _log_error(self, error: Exception) -> None:
        signature = "%s: %s" % (type(error).__name__, error)
        with self._lock:
            first = signature not in self._errors_seen
            if first and len(self._errors_seen) < 100:
                self._errors_seen.add(signature)
        if first:
            log.error("Prometheus scrape failed (HTTP 500); later scrapes are not affected, "
                      "this error is logged once", exc_info=error)
        else:
            log.debug("Prometheus scrape failed again: %s", signature)

    def wsgi_app(self, environ: Dict[str, Any],
                 start_response: Callable[..., Any]) -> List[bytes]:
        """A WSGI app serving the metrics (the counterpart of Go's ``Serve(w, r)``)."""
        status, headers, body = self.respond(environ.get("HTTP_ACCEPT", ""),
                                             environ.get("HTTP_ACCEPT_ENCODING", ""))
        reason = "OK" if status == 200 else "Internal Server Error"
        start_response("%d %s" % (status, reason), headers)
        return [body] if environ.get("REQUEST_METHOD") != "HEAD" else [b""]

    def serve(self, port: int = DEFAULT_PORT, addr: Optional[str] = DEFAULT_ADDRESS,
              limits: Optional[Limits] = None) -> "Server":
        """Serve the metrics over HTTP on ``addr:port`` (port 0: any free port).

        ``addr`` "" or None means the default, 127.0.0.1 (loopback only); pass
        "0.0.0.0" or "::" to listen on every interface.  ``limits``: the
        server's bounds (see :class:`Server`).  Returns the running
        :class:`Server`; ``server.stop()`` stops it.
        """
        return Server(self, addr or DEFAULT_ADDRESS, port, limits)


class _Routes:
    """Every GET or HEAD path is the metrics (as Go's ``Serve(w, r)``); nothing else is."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def early(self, method: str, target: str) -> Optional[_server.Response]:
        if method in ("GET", "HEAD"):
            return None
        return _server.error_response(405, "method %s not allowed: GET /metrics" % method)

    def handle(self, request: _server.Request) -> _server.Response:
        status, headers, body = self.exporter.respond(
            request.headers.get("accept", ""), request.headers.get("accept-encoding", ""))
        return _server.Response(status, body, headers)


class Server:
    """A running metrics endpoint; ``stop()`` (or leaving a ``with`` block) ends it.

    It runs on one event loop thread and ``limits.workers`` handler threads,
    whatever the number of clients; ``limits`` bounds connections (by default
    a quarter of the process's open-files limit, at most 256, so that the
    application keeps the rest), their phases' times and request sizes (see
    :class:`gotools_compat._server.Limits`).
    """

    def __init__(self, exporter: Exporter, addr: str, port: int,
                 limits: Optional[_server.Limits] = None) -> None:
        server = _server.Server(_Routes(exporter), limits or _SERVE_LIMITS,
                                name="gotools_compat-prometheus")
        self.address: str = addr
        self.port: int = server.listen(addr, port)
        server.start()
        self._server = server
        self._stopped = False

    @property
    def url(self) -> str:
        host = "[%s]" % self.address if ":" in self.address else self.address
        return "http://%s:%d/metrics" % (host, self.port)

    @property
    def counters(self) -> _server.Counters:
        """How often each bound was hit (``counters.get("max_connections")``...)."""
        return self._server.counters

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call again."""
        if self._stopped:
            return
        self._stopped = True
        self._server.stop()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return "prometheus.Server(%r%s)" % (self.url, ", stopped" if self._stopped else "")


def new(namespace: str = "", registry: Any = None) -> Exporter:
    """A new exporter (Go's ``prometheus.New()``); ``registry``: also register it there."""
    exporter = Exporter(namespace)
    if registry is not None:
        registry.register(exporter)
    return exporter


def take_over(stock_exporter: Any, namespace: Optional[str] = None) -> Exporter:
    """Make a stock ``opencensus-ext-prometheus`` exporter serve correct output.

    ``stock_exporter`` is what ``stats_exporter.new_stats_exporter(options)``
    returned.  Its collector is replaced, in every registry it is in (the
    global ``REGISTRY`` its HTTP server serves, and its options' registry), by
    a new :class:`Exporter` with the same namespace (metric names stay as
    they were: ``namespace_view``), and it is removed from opencensus's view
    manager.  Its server keeps running and shows every view, ours and the
    app's own, correctly.  Returns the new exporter.
    """
    if namespace is None:
        namespace = getattr(getattr(stock_exporter, "options", None), "namespace", "") or ""
    exporter = Exporter(namespace)
    _oc_prometheus.take_over(stock_exporter, exporter)
    return exporter


__all__ = ["Exporter", "Limits", "Server", "new", "take_over", "metric_name", "label_names",
           "wants_openmetrics",
           "TEXT_CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE"]
