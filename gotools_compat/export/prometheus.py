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
  ``value <= le`` and end at ``<name>_count``; ``le`` is written in the
  canonical form of both formats (``1.0``, ``1e+06``).  In the text format
  every histogram carries ``_bucket``, ``_sum`` and ``_count``; in OpenMetrics
  a histogram whose first bound is negative, or whose sum is negative, carries
  buckets only, as that format requires (``_sum`` is forbidden there and
  ``_count`` comes only with ``_sum``).
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
  the shortest text that reads back the same, integral ones without ``.0``.
  These rules are :mod:`gotools_compat._promtext`'s, which the agent uses too:
  the same data gives the same bytes from either.
- Two metrics whose names collide after the rules above (e.g. ``a.b`` and
  ``a_b``, or a gauge ``x_count`` beside a histogram ``x``): the one defined
  first is shown, the other is left out with one WARNING.

Through a prometheus_client registry the collector cannot know the format
its registry will write: it yields the text-format samples (all three series
of every histogram, negative sums as they are), which prometheus_client's
OpenMetrics writer passes on unchanged; ints become floats there.

Content negotiation (:func:`wants_openmetrics`, the agent's rule too):
:meth:`Exporter.serve` and :meth:`Exporter.wsgi_app` answer in the text
format 0.0.4 whenever the client accepts it, whatever its q-values
(Prometheus does: it lists text/plain after OpenMetrics), since OpenMetrics
cannot carry some of what the text format can (see above); a client that
accepts OpenMetrics but not text gets OpenMetrics.  Either is gzipped when
the client asks.

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
import threading
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Set, Tuple,
                    cast)

from prometheus_client import exposition as _exposition
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as _om_exposition

from gotools_compat import metric as _metric
from gotools_compat._oc import prometheus as _oc_prometheus
from gotools_compat._promtext import OPENMETRICS_CONTENT_TYPE as OPENMETRICS_CONTENT_TYPE
from gotools_compat._promtext import TEXT_CONTENT_TYPE as TEXT_CONTENT_TYPE
from gotools_compat._promtext import content_type
from gotools_compat._promtext import metric_name as metric_name
from gotools_compat._promtext import wants_openmetrics as wants_openmetrics
from gotools_compat.event.events import END_SPAN
from gotools_compat.event.exporter import get_exporter

from ._prometheus_metrics import Plan
from ._prometheus_metrics import label_names as label_names
from ._prometheus_server import Server as Server
from ._prometheus_server import Limits as Limits
from ._prometheus_spans import DEFAULT_MAX_SPAN_BYTES, DEFAULT_MAX_SPANS, SpanStore
from ._prometheus_views import Families, family_claims, view_family

if TYPE_CHECKING:
    from gotools_compat.event import Context, Event

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
DEFAULT_ADDRESS = "127.0.0.1"

# prometheus_client's renderers, for the app's plain opencensus views.
_text_latest = cast(Callable[[Any], bytes], _exposition.generate_latest)
_om_latest = cast(Callable[[Any], bytes], _om_exposition.generate_latest)


class Exporter:
    """The metrics of this process in the Prometheus formats (Go's ``prometheus.Exporter``).

    A prometheus_client collector (``collect``/``describe``), a renderer
    (:meth:`render`), a WSGI app (:meth:`wsgi_app`) and an HTTP server
    (:meth:`serve`).  Exporters share no state: each has its own namespace,
    caches and servers, and none registers itself anywhere on its own.

    It is an event exporter too (``process_event``, ``metric``): set as the
    process exporter (``export.set_exporter(exporter)``, or inside
    ``export.multi(...)``), it keeps the spans that end meanwhile for
    ``/debug/tracez`` of :meth:`serve`: at most ``max_spans`` (0: none) and
    about ``max_span_bytes`` of them, the oldest dropped first
    (:mod:`._prometheus_spans`).
    """

    def __init__(self, namespace: str = "", *, max_spans: int = DEFAULT_MAX_SPANS,
                 max_span_bytes: int = DEFAULT_MAX_SPAN_BYTES) -> None:
        if not isinstance(namespace, str):
            raise TypeError("namespace must be a str, not %s" % type(namespace).__name__)
        self.namespace = namespace
        #: The spans of ``/debug/tracez`` (see :meth:`process_event`).
        self.spans = SpanStore(max_spans, max_span_bytes, service=namespace)
        self._plans: Dict[str, Plan] = {}
        self._warned: Set[str] = set()
        self._errors_seen: Set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "prometheus.Exporter(namespace=%r)" % self.namespace

    # Events: the spans of /debug/tracez.

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        """Keeps each span that ends, for ``/debug/tracez`` (Go's ``ProcessEvent``).

        Runs on the thread that ended the span: a reference is appended to a
        bounded deque, nothing more; it is converted when a page asks.
        Other events pass through untouched.
        """
        if ev.kind == END_SPAN:
            self.spans.ended(ctx)
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        """Nothing to do: every scrape pulls all metrics from their rows."""

    def keeps_spans(self) -> bool:
        """Whether ``/debug/tracez`` is served: spans ended here, or this exporter
        is (in) the process exporter now."""
        if not self.spans.max_spans:
            return False
        return self.spans.seen or _is_in(get_exporter(), self, 8)

    # What is shown.

    def _our_plans(self) -> List[Plan]:
        plans = self._plans
        out = []
        for entry in _metric.registered():
            name = entry.name
            plan = plans.get(name)
            if plan is None or plan.entry is not entry:
                plan = plans[name] = Plan(entry, self.namespace)
            out.append(plan)
        return out

    def _shown(self) -> Tuple[List[Plan], List[Metric]]:
        """Our plans and the foreign families, minus those whose names collide."""
        claimed: Set[str] = set()
        plans = []
        for plan in self._our_plans():
            if self._claim(claimed, plan.claims, plan.entry.name):
                plans.append(plan)
        families = []
        for oc_metric in _oc_prometheus.foreign_metrics():
            family = view_family(oc_metric, self.namespace)
            if family is not None and self._claim(claimed, family_claims(family),
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
                rest = _om_latest(Families(families)).decode("utf-8")
                out.append(rest[:-len("# EOF\n")])
            else:
                out.append(_text_latest(Families(families)).decode("utf-8"))
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
        headers = [("Content-Type", content_type(openmetrics))]
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
              limits: Optional[Limits] = None, *, page_interval: float = 2.0) -> "Server":
        """Serve the metrics over HTTP on ``addr:port`` (port 0: any free port).

        ``addr`` "" or None means the default, 127.0.0.1 (loopback only); pass
        "0.0.0.0" or "::" to listen on every interface.  ``limits``: the
        server's bounds (see :class:`Server`).  Returns the running
        :class:`Server`; ``server.stop()`` stops it.

        ``/`` is a live page of every metric (``server.page_url``), which
        polls ``/metrics.json`` every ``page_interval`` seconds;
        ``/debug/tracez`` (``server.tracez_url``), reading
        ``/debug/tracez.json``, is the spans that ended in this process while
        this exporter was the process exporter (see :meth:`process_event`),
        once there are any or it is; every other path (``/metrics``) is the
        exposition.
        """
        return Server(self, addr or DEFAULT_ADDRESS, port, limits, page_interval)


def _is_in(current: Any, exporter: Exporter, depth: int) -> bool:
    """Whether ``exporter`` is ``current`` or one of the exporters of its ``multi()``."""
    if current is exporter:
        return True
    inner = getattr(current, "exporters", None)
    if depth <= 0 or not isinstance(inner, tuple):
        return False
    return any(_is_in(e, exporter, depth - 1) for e in inner)


def new(namespace: str = "", registry: Any = None, *, max_spans: int = DEFAULT_MAX_SPANS,
        max_span_bytes: int = DEFAULT_MAX_SPAN_BYTES) -> Exporter:
    """A new exporter (Go's ``prometheus.New()``); ``registry``: also register it there.

    ``max_spans``, ``max_span_bytes``: the bounds of the spans it keeps for
    ``/debug/tracez`` once it is the process exporter (see :class:`Exporter`).
    """
    exporter = Exporter(namespace, max_spans=max_spans, max_span_bytes=max_span_bytes)
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
