"""The Agent: receivers, store, Prometheus endpoint and their lifecycle."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent import futures
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Tuple

import grpc

from gotools_compat._promtext import label_pair_bytes
from gotools_compat._server import Counters, Limits, Server

from . import _grpc, _http, _protorequest
from ._json import MAX_DEPTH
from ._merge import Merger
from ._model import Export
from ._page_data import PageData, tracez_json
from ._render import render_parts
from ._store import COUNTER, GAUGE, Family, Sender, Store
from ._traces import TraceStore
from ._zipkin import ZipkinForwarder

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:55678"
DEFAULT_PROMETHEUS = "127.0.0.1:8844"
# The tutorial's (Go's promdemo agent): every name prefixed, one label on every series.
DEFAULT_NAMESPACE = "promdemo"
DEFAULT_CONST_LABELS: Mapping[str, str] = MappingProxyType({"vendor": "otc"})
_REFUSERS = 8


def parse_address(text: str) -> Tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (an empty host is 127.0.0.1)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("address %r: expected host:port" % text)
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError("address %r: the port is not a number" % text) from None
    if not 0 <= port <= 65535:
        raise ValueError("address %r: port out of range" % text)
    return host or "127.0.0.1", port


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


class Agent:
    """An OpenCensus agent receiver serving what it receives to Prometheus.

    ``listen`` takes gRPC (``MetricsService``/``TraceService`` Export) and
    HTTP/JSON (``POST /v1/metrics``, ``/v1/trace``) on one address;
    ``prometheus`` serves ``/metrics`` and ``/debug/tracez`` (``None``: only
    on the listen address).  Port 0 picks a free port; read :attr:`port` and
    :attr:`prometheus_port` after :meth:`start`.

    Series carry ``job`` (the sender's service name) and ``instance``
    (``host:pid``) unless ``target_labels`` is false; a sender silent for
    ``expire_after`` seconds (0: never) loses its series.  ``merge_instances``:
    one series per job and label set instead (no ``instance``), counters and
    histograms summed over live and gone instances, gauges merged by
    ``gauge_merge`` (``last``, ``sum``, ``min``, ``max``; see :mod:`._merge`).

    Bounds: ``limits`` (connections, timeouts, head size: see
    :class:`gotools_compat._server.Limits`; its body size is
    ``max_message_bytes``, which bounds gRPC messages too); ``max_streams``
    gRPC streams in all, ``max_streams_per_connection`` on one connection,
    and a stream that receives nothing for ``stream_idle_timeout`` seconds is
    ended; ``max_json_depth`` levels of JSON nesting.  Each bound hit is
    counted on ``/metrics`` as ``gotools_agent_limit_hits_total{limit="..."}``.
    What is kept: ``max_series`` in all, ``max_series_per_sender``,
    ``max_series_per_metric`` and ``max_senders`` (new ones beyond are refused,
    ``gotools_agent_refused_series_total{cause}``; stored series keep
    updating), ``max_spans`` spans of at most ``max_span_bytes`` in all and
    ``max_bytes_per_span`` each, and ``max_tracez_spans`` in a tracez answer.

    ``otlp`` (a URL such as ``http://127.0.0.1:4318``) forwards every metric
    received as OTLP/HTTP to ``/v1/metrics`` and every span kept to
    ``/v1/traces`` (see :mod:`._otlp` and :mod:`._otlp_traces`; needs the
    ``otel`` extra, else ImportError here); their counters are on ``/metrics``.

    The live pages (``/``, ``/debug/tracez``) poll ``/metrics.json`` and
    ``/debug/tracez.json`` every ``page_interval`` seconds.
    """

    def __init__(self, listen: str = DEFAULT_LISTEN, prometheus: Optional[str] = DEFAULT_PROMETHEUS,
                 *, namespace: str = DEFAULT_NAMESPACE,
                 const_labels: Optional[Dict[str, str]] = None,
                 target_labels: bool = True, expire_after: float = 300.0,
                 max_message_bytes: int = 16 * 1024 * 1024, max_spans: int = 10_000,
                 zipkin: Optional[str] = None, limits: Optional[Limits] = None,
                 max_streams: int = 256, max_streams_per_connection: int = 8,
                 stream_idle_timeout: float = 120.0, max_json_depth: int = MAX_DEPTH,
                 max_series: int = 1_000_000, max_series_per_sender: int = 100_000,
                 max_series_per_metric: int = 100_000, max_senders: int = 10_000,
                 max_span_bytes: int = 64 * 1024 * 1024, max_bytes_per_span: int = 64 * 1024,
                 max_tracez_spans: int = 1_000, otlp: Optional[str] = None,
                 otlp_timeout: float = 10.0, page_interval: float = 2.0,
                 merge_instances: bool = False, gauge_merge: str = "last") -> None:
        self.listen = parse_address(listen)
        self.prometheus = parse_address(prometheus) if prometheus else None
        if max_streams < 1 or max_streams_per_connection < 1 or not stream_idle_timeout > 0 \
                or max_json_depth < 1:
            raise ValueError("max_streams, max_streams_per_connection, stream_idle_timeout "
                             "and max_json_depth must be positive")
        self.max_json_depth = max_json_depth
        if not page_interval > 0:
            raise ValueError("page_interval must be positive")
        self._pages = PageData(float(page_interval))
        self.max_message_bytes = max_message_bytes
        self.limits = dataclasses.replace(limits or Limits(), max_body_bytes=max_message_bytes)
        self._max_streams = max_streams
        self._max_streams_per_connection = max_streams_per_connection
        self._counters = Counters()  # of the gRPC side and of bad requests
        self._streams = _grpc.Streams(stream_idle_timeout, max_streams, self._streams_full)
        self._store = Store(namespace, dict(DEFAULT_CONST_LABELS) if const_labels is None
                            else const_labels, target_labels, expire_after,
                            max_series=max_series, max_series_per_sender=max_series_per_sender,
                            max_series_per_metric=max_series_per_metric,
                            max_senders=max_senders,
                            merge=Merger(gauge_merge, max_series, max_series_per_metric)
                            if merge_instances else None)
        self._zipkin = ZipkinForwarder(zipkin) if zipkin else None
        self._otlp_url = otlp
        self._otlp_timeout = otlp_timeout
        self._otlp: Any = None
        self._otlp_traces: Any = None
        if otlp:
            # Only now the OpenTelemetry packages: ImportError with the extra to install.
            from . import _otlp, _otlp_traces

            _otlp.metrics_url(otlp)
            _otlp.Forwarder.load_otel()
            _otlp_traces.TraceForwarder.load_otel()
        self.traces = TraceStore(max_spans, self._zipkin.submit if self._zipkin else None,
                                 max_span_bytes=max_span_bytes,
                                 max_bytes_per_span=max_bytes_per_span,
                                 max_tracez_spans=max_tracez_spans)
        self.port = 0
        self.prometheus_port: Optional[int] = None
        self._lock = threading.Lock()
        self._started = False
        self._stopped = threading.Event()
        self._server: Optional[Server] = None
        self._grpc: Optional[grpc.Server] = None
        self._tmpdir: Optional[str] = None
        self._threads: List[threading.Thread] = []

    # -- the sink the receivers call ---------------------------------------

    def ingest_metrics(self, node: Optional[bytes], export: Export,
                       sender: Optional[Sender] = None) -> Sender:
        """Store one read request; ``node`` is the sender's serialized Node
        (for streams: of an earlier request), ``sender`` the one it gave last."""
        if sender is None:
            sender = self._store.sender(None if node is None else _protorequest.node_of(node))
        self._store.ingest(sender, export.metrics)
        otlp = self._otlp
        if otlp is not None:
            otlp.submit(sender.key, node, export)
        return sender

    def ingest_spans(self, node: Any, request: Any) -> None:
        kept = self.traces.keep(node, request.spans)
        otlp = self._otlp_traces
        if otlp is not None and kept:
            otlp.submit(node, request.resource if request.HasField("resource") else None, kept)

    def _streams_full(self, limit: int) -> None:
        self._counters.hit("max_streams", "a gRPC stream refused (RESOURCE_EXHAUSTED): %d "
                           "streams open", limit)

    def bad_request(self, peer: str, route: str, error: str) -> None:
        self._counters.hit("bad_request", "%s: POST %s refused (400): %s", peer, route, error)

    # -- what it serves ----------------------------------------------------

    def metrics_text(self, openmetrics: bool = False) -> bytes:
        """The Prometheus text format (or OpenMetrics) of every stored series."""
        return b"".join(self.metrics_parts(openmetrics))

    def metrics_parts(self, openmetrics: bool = False) -> List[bytes]:
        """:meth:`metrics_text` in pieces of a few thousand series, as they are sent."""
        return render_parts(self._snapshot(), openmetrics)

    def _snapshot(self) -> List[Tuple[Family, Any]]:
        snapshot = self._store.snapshot()
        snapshot += self.own_families()
        for otlp in (self._otlp, self._otlp_traces):
            if otlp is not None:
                snapshot += otlp.families()
        return snapshot

    def page_json(self) -> bytes:
        """``/metrics.json``: the series of ``/metrics`` for the live page (:mod:`._page_data`)."""
        return self._pages.metrics_json(self._snapshot)

    def tracez_json(self, query: Any) -> bytes:
        """``/debug/tracez.json`` for ``query(name, default)`` (see :mod:`._page_data`)."""
        return tracez_json(self.traces, query, self._pages.interval)

    def own_families(self) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
        """The agent's own series: bounds hit, connections, streams, series and spans kept."""
        hits: Dict[str, int] = dict(self._counters.items())
        if self._server is not None:
            for cause, count in self._server.counters.items():
                hits[cause] = hits.get(cause, 0) + count
        limit_hits = Family("gotools_agent_limit_hits", COUNTER,
                            "Times a bound of the agent was hit, by bound (see --help).", "")
        connections = Family("gotools_agent_open_connections", GAUGE,
                             "Client connections open (HTTP/1.1 and gRPC).", "")
        streams = Family("gotools_agent_open_grpc_streams", GAUGE, "gRPC streams open.", "")
        server = self._server
        return [
            (connections, [(b"", server.connection_count() if server is not None else 0)]),
            (streams, [(b"", self._streams.open())]),
            (limit_hits, [(label_pair_bytes("limit", cause), count)
                          for cause, count in sorted(hits.items())]),
            *self._store.own_families(),
            *self.traces.own_families(),
        ]

    def limit_hits(self, cause: str) -> int:
        """How often the front-door bound ``cause`` (as in ``limit="..."``) was hit."""
        for lbl, count in self.own_families()[2][1]:
            if lbl == label_pair_bytes("limit", cause):
                return int(count)
        return 0

    def tracez(self, as_json: bool = False, limit: int = 100) -> bytes:
        return self.traces.json(limit) if as_json else self.traces.html(limit)

    def senders(self) -> List[Tuple[str, str]]:
        """``(job, instance)`` of every sender whose series are kept."""
        return self._store.senders()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> "Agent":
        """Bind and serve; OSError (address in use...) leaves nothing running."""
        with self._lock:
            if self._started:
                return self
            try:
                self._start()
            except BaseException:
                self._teardown()
                raise
            self._started = True
        logger.info("gotools-agent: OpenCensus gRPC and HTTP/JSON on %s:%d%s",
                    self.listen[0], self.port,
                    "" if self.prometheus is None else ", Prometheus metrics on "
                    "http://%s:%d/metrics" % (self.prometheus[0], self.prometheus_port or 0))
        return self

    def _start(self) -> None:
        self._stopped.clear()
        self._tmpdir = tempfile.mkdtemp(prefix="gotools-agent-")
        grpc_target = os.path.join(self._tmpdir, "grpc.sock")
        server = self._server = Server(_http.Routes(self), self.limits, name="gotools-agent",
                                       fds_per_connection=3)
        host, port = self.listen
        try:
            self.port = server.listen(host, port, grpc_target)
        except OSError as exc:
            raise OSError(exc.errno, "cannot listen on %s:%d: %s"
                          % (host, port, _reason(exc))) from None
        if self.prometheus is not None:
            phost, pport = self.prometheus
            try:
                self.prometheus_port = server.listen(phost, pport)
            except OSError as exc:
                raise OSError(exc.errno, "cannot serve Prometheus on %s:%d: %s"
                              % (phost, pport, _reason(exc))) from None
        idle_ms = int(self.limits.idle_timeout * 1000)
        self._grpc = grpc.server(
            # A few threads beyond max_streams, so that a stream over it is refused
            # (and counted) by Streams.watch rather than queued by grpcio.
            futures.ThreadPoolExecutor(self._max_streams + _REFUSERS,
                                       thread_name_prefix="gotools-agent-grpc"),
            options=[("grpc.max_receive_message_length", self.max_message_bytes),
                     ("grpc.max_concurrent_streams", self._max_streams_per_connection),
                     ("grpc.max_connection_idle_ms", idle_ms),
                     ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=self._max_streams + _REFUSERS)
        _grpc.add_services(self._grpc, self, self._streams)
        self._grpc.add_insecure_port("unix:" + grpc_target)
        self._grpc.start()
        server.start()
        self._spawn(self._housekeeping, "gotools-agent-expire")
        if self._zipkin is not None:
            self._zipkin.start()
        if self._otlp_url:
            from . import _otlp

            from ._otlp_traces import TraceForwarder

            self._otlp = _otlp.Forwarder(self._otlp_url, timeout=self._otlp_timeout)
            self._otlp.start()
            self._otlp_traces = TraceForwarder(self._otlp_url, timeout=self._otlp_timeout)
            self._otlp_traces.start()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _housekeeping(self) -> None:
        expire = self._store.expire_after
        idle = self._streams.idle_timeout
        interval = min(5.0, idle / 4, expire / 4 if expire > 0 else 5.0)
        while not self._stopped.wait(interval):
            self._store.expire()
            ended = self._streams.end_idle(time.monotonic())
            if ended:
                self._counters.hit("stream_idle_timeout", "%d gRPC streams ended after %.0f s "
                                   "without a message", ended, idle, count=ended)

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving: open streams end, queued spans go to Zipkin.  Idempotent."""
        with self._lock:
            if not self._started:
                return
            self._started = False
            self._teardown(grace)
        logger.info("gotools-agent stopped")

    def _teardown(self, grace: float = 2.0) -> None:
        self._stopped.set()
        if self._server is not None:
            self._server.stop(grace)
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1.0)
            self._grpc = None
        if self._zipkin is not None:
            self._zipkin.stop(grace)
        forwarders = [f for f in (self._otlp, self._otlp_traces) if f is not None]
        for forwarder in forwarders:  # their last sends at once
            forwarder.begin_stop()
        for forwarder in forwarders:
            forwarder.stop(grace)
        self._otlp = self._otlp_traces = None
        for thread in self._threads:
            thread.join(grace)
        self._threads = []
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "Agent":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
