"""The Agent: receivers, store, Prometheus endpoint and their lifecycle."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
from concurrent import futures
from typing import Any, Dict, List, Optional, Tuple

import grpc

from . import _grpc, _http, _lean, _mux
from ._model import Export
from ._render import render
from ._store import Sender, Store
from ._traces import TraceStore
from ._zipkin import ZipkinForwarder

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:55678"
DEFAULT_PROMETHEUS = "127.0.0.1:8844"


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
    ``expire_after`` seconds (0: never) loses its series.

    ``otlp`` (a URL such as ``http://127.0.0.1:4318``) forwards every metric
    received as OTLP/HTTP (see :mod:`._otlp`; needs the ``otel`` extra,
    else ImportError here); its counters are on ``/metrics``.
    """

    def __init__(self, listen: str = DEFAULT_LISTEN, prometheus: Optional[str] = DEFAULT_PROMETHEUS,
                 *, namespace: str = "promdemo", const_labels: Optional[Dict[str, str]] = None,
                 target_labels: bool = True, expire_after: float = 300.0,
                 max_message_bytes: int = 16 * 1024 * 1024, max_spans: int = 10_000,
                 zipkin: Optional[str] = None, max_streams: int = 256,
                 first_byte_timeout: float = 30.0, otlp: Optional[str] = None,
                 otlp_timeout: float = 10.0) -> None:
        self.listen = parse_address(listen)
        self.prometheus = parse_address(prometheus) if prometheus else None
        self.max_message_bytes = max_message_bytes
        self._max_streams = max_streams
        self._first_byte_timeout = first_byte_timeout
        self._store = Store(namespace, {"vendor": "otc"} if const_labels is None
                            else const_labels, target_labels, expire_after)
        self._zipkin = ZipkinForwarder(zipkin) if zipkin else None
        self._otlp_url = otlp
        self._otlp_timeout = otlp_timeout
        self._otlp: Any = None
        if otlp:
            # Only now the OpenTelemetry packages: ImportError with the extra to install.
            from . import _otlp

            _otlp.metrics_url(otlp)
            _otlp.load_otel()
        self.traces = TraceStore(max_spans, self._zipkin.submit if self._zipkin else None)
        self.port = 0
        self.prometheus_port: Optional[int] = None
        self._lock = threading.Lock()
        self._started = False
        self._stopped = threading.Event()
        self._mux: Optional[_mux.Mux] = None
        self._grpc: Optional[grpc.Server] = None
        self._grpc_target = ""
        self._tmpdir: Optional[str] = None
        self._http: Optional[_http.Server] = None
        self._threads: List[threading.Thread] = []

    # -- the sink the receivers call ---------------------------------------

    def ingest_metrics(self, node: Optional[bytes], export: Export,
                       sender: Optional[Sender] = None) -> Sender:
        """Store one read request; ``node`` is the sender's serialized Node
        (for streams: of an earlier request), ``sender`` the one it gave last."""
        if sender is None:
            sender = self._store.sender(None if node is None else _lean.node_of(node))
        self._store.ingest(sender, export.metrics)
        otlp = self._otlp
        if otlp is not None:
            otlp.submit(sender.key, node, export)
        return sender

    def ingest_spans(self, node: Any, request: Any) -> None:
        self.traces.add(node, request.spans)

    # -- what it serves ----------------------------------------------------

    def metrics_text(self, openmetrics: bool = False) -> bytes:
        """The Prometheus text format (or OpenMetrics) of every stored series."""
        snapshot = self._store.snapshot()
        otlp = self._otlp
        if otlp is not None:
            snapshot += otlp.families()
        return render(snapshot, openmetrics)

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
        host, port = self.listen
        try:
            listener, self.port = _mux.bind(host, port)
        except OSError as exc:
            raise OSError(exc.errno, "cannot listen on %s:%d: %s"
                          % (host, port, _reason(exc))) from None
        if self.prometheus is not None:
            phost, pport = self.prometheus
            try:
                self._http = _http.Server((phost, pport), self)
            except OSError as exc:
                listener.close()
                raise OSError(exc.errno, "cannot serve Prometheus on %s:%d: %s"
                              % (phost, pport, _reason(exc))) from None
            self.prometheus_port = self._http.server_address[1]
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(self._max_streams, thread_name_prefix="gotools-agent-grpc"),
            options=[("grpc.max_receive_message_length", self.max_message_bytes),
                     ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=self._max_streams)
        _grpc.add_services(self._grpc, self)
        if hasattr(socket, "AF_UNIX"):
            self._tmpdir = tempfile.mkdtemp(prefix="gotools-agent-")
            self._grpc_target = os.path.join(self._tmpdir, "grpc.sock")
            self._grpc.add_insecure_port("unix:" + self._grpc_target)
        else:  # pragma: no cover - platforms without unix sockets
            self._grpc_target = "127.0.0.1:%d" % self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        serve_http = self._serve_http
        self._mux = _mux.Mux(listener, self._connect_grpc, serve_http, self._first_byte_timeout)
        self._mux.start()
        if self._http is not None:
            server = self._http
            self._spawn(lambda: server.serve_forever(0.05), "gotools-agent-prometheus")
        self._spawn(self._housekeeping, "gotools-agent-expire")
        if self._zipkin is not None:
            self._zipkin.start()
        if self._otlp_url:
            from . import _otlp

            self._otlp = _otlp.Forwarder(self._otlp_url, timeout=self._otlp_timeout)
            self._otlp.start()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _connect_grpc(self) -> socket.socket:
        if self._tmpdir is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self._grpc_target)
            except OSError:
                sock.close()
                raise
            return sock
        host, _, port = self._grpc_target.rpartition(":")  # pragma: no cover
        return socket.create_connection((host, int(port)))  # pragma: no cover

    def _serve_http(self, conn: socket.socket, address: Any) -> None:
        _http.Handler(conn, address, _http.Holder(self))  # type: ignore[arg-type]

    def _housekeeping(self) -> None:
        expire = self._store.expire_after
        interval = min(5.0, expire / 4) if expire > 0 else 5.0
        while not self._stopped.wait(interval):
            self._store.expire()

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
        if self._mux is not None:
            self._mux.stop()
            self._mux = None
        if self._grpc is not None:
            self._grpc.stop(grace).wait(grace + 1.0)
            self._grpc = None
        if self._http is not None:
            if self._threads:
                self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._zipkin is not None:
            self._zipkin.stop(grace)
        if self._otlp is not None:
            self._otlp.stop(grace)
            self._otlp = None
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
