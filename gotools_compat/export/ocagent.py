"""Export to an OpenCensus agent over gRPC (Go's ``export/ocagent``).

::

    exporter = ocagent.connect(ocagent.Config(
        address="http://127.0.0.1:55678", service="my-service", rate=5.0))
    export.set_exporter(exporter)
    ...                      # record as usual
    exporter.flush()         # send now
    exporter.close()         # flush and stop; also done at interpreter exit

The transport is the stock ``opencensus-ext-ocagent`` exporter with its traps
closed (E1-E6 in docs/traps.md): it imports on current protobuf, never probes
cloud metadata, lives until closed, reconnects with capped exponential
backoff, flushes at exit, and speaks TLS for ``https://`` addresses.

Every ``rate`` seconds (and on :meth:`Exporter.flush`) one thread collects
every metric (ours, encoded straight from the rows; plain opencensus views
through the stock conversion), sends the cumulative totals in requests under
gRPC's 4 MiB limit on one stream that starts with the node, then sends the
spans queued by :attr:`Exporter.trace_exporter`.  A failed export is retried
after ``rate``, then twice as long each time up to ``max_backoff``; since
totals are cumulative the agent ends up with every value once it is reachable
again.  An outage is logged once at WARNING, its end at INFO.  A periodic
export is paced (it sleeps between batches of series) so that it takes at
most :data:`PACED_DUTY` of the interpreter while threads record; ``flush()``
and ``close()`` run at full speed.  ``close()`` (and so the exit) waits for
an agent that does not answer until ``timeout``, for one that refuses not at all.

Forking (gunicorn ``--preload``, ``multiprocessing`` with fork): a child
forked after ``connect()`` gets its own exporter thread and gRPC channel,
identifies itself with its own pid and a start time at the fork, and starts
every metric from zero (the same series, value 0, starting at the fork); it
never re-sends the parent's totals.  Spans queued in the parent are not sent
by the child.  A fork waits for an export in flight (at most ``timeout``).
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from gotools_compat._oc import ocagent as _stock
from gotools_compat.event import END_SPAN, Context, Event, Span
from gotools_compat.export import _exit
from gotools_compat.export import _ocagent_channel as _channel
from gotools_compat.export import _ocagent_requests as _requests
from gotools_compat.export._lifetime import LiveSet
from gotools_compat.export._worker import SKIPPED, Outcome, Worker

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://localhost:55678"

# Share of the interpreter (GIL) a periodic export may take while it encodes;
# see _ocagent_requests.Pacer.  flush() and close() are not paced.
PACED_DUTY = 0.1


@dataclass
class Config:
    """How to reach and identify to an agent (Go's ``ocagent.Config``).

    Unset fields get Go's defaults in :func:`connect`: ``start`` now, ``host``
    the host name, ``process`` the pid, ``service`` the program's base name,
    ``address`` :data:`DEFAULT_ADDRESS`.  ``rate`` is seconds between exports.

    ``address``: ``https://host:port`` uses TLS (the system roots, or
    ``ca_file``, a PEM file); ``http://host:port`` or ``host:port`` is
    plaintext; ``"off"`` disables exporting.  ``headers`` are sent as gRPC
    metadata on every call (keys in lower case).  ``timeout`` bounds each
    export attempt, and ``flush()``/``close()`` by default.
    """

    start: Optional[datetime.datetime] = None
    host: Optional[str] = None
    process: Optional[int] = None
    service: Optional[str] = None
    address: Optional[str] = None
    rate: float = 2.0
    ca_file: Optional[str] = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    max_backoff: float = 30.0


def discover() -> Config:
    """The config for an agent on this machine (Go's ``ocagent.Discover``)."""
    return Config(address=DEFAULT_ADDRESS)


def _resolve(config: Config) -> Config:
    if not config.rate > 0 or not config.timeout > 0 or not config.max_backoff > 0:
        raise ValueError("rate, timeout and max_backoff must be positive seconds")
    start = config.start or datetime.datetime.now(datetime.timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=datetime.timezone.utc)
    service = config.service
    if not service:
        argv0 = sys.argv[0] if sys.argv and sys.argv[0] else "python"
        service = os.path.basename(argv0) or "python"
    return replace(
        config, start=start, host=config.host or socket.gethostname(),
        process=config.process or os.getpid(), service=service,
        address=config.address or DEFAULT_ADDRESS,
        headers={str(k).lower(): str(v) for k, v in config.headers.items()})


def connect(config: Optional[Config]) -> Optional["Exporter"]:
    """Start exporting to the agent; returns at once (Go's ``ocagent.Connect``).

    Returns None for a None config or an address of ``"off"``.  Nothing is
    dialled here: the first export happens on the exporter's thread.
    """
    if config is None or config.address == "off":
        return None
    return Exporter(_resolve(config))


class Exporter:
    """A connected exporter: see the module doc.  Make one with :func:`connect`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        assert config.address is not None
        self._target, self._tls = _channel.parse_address(config.address)
        self._metadata = tuple(sorted(config.headers.items()))
        self._resource = _stock.resource()
        self.stats_exporter = _stock.stock_exporter(self)
        self._trace: Any = None
        self._closed = False
        self._retired: List[Any] = []  # channels of a parent, never touched in a child
        self._start_transport()
        self._worker = Worker(self._attempt, config.rate, "ocagent export to %s"
                              % config.address, log, "gotools-ocagent-exporter",
                              config.max_backoff)
        _live.add(self)
        self._worker.start()

    # Setup, also run again in a forked child.

    def _start_transport(self) -> None:
        config = self.config
        assert config.service is not None and config.host is not None
        assert config.process is not None and config.start is not None
        self._trace_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._channel_closed = False
        self._series = 0  # in the last collection
        self._encoders: Dict[Any, Any] = {}
        self._node = _stock.node(config.service, config.host, config.process, config.start)
        self._first = _requests.first_fields(self._node, self._resource)
        self._channel = _channel.make_channel(self._target, self._tls, config.ca_file,
                                               config.max_backoff)
        self._streams = _channel.Streams(self._channel, self._metadata)
        # Ended spans of gotools_compat.event, sent as they are on the next export.
        self._spans = _requests.span_queue()
        if self._trace is not None:
            self._trace.node = self._node
            self._trace.transport.spans.clear()

    # The Exporter protocol.

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        """Queues each ended span (``event.start_span``) for the next export.

        Only a reference is queued here; the span is converted on the
        exporter's thread.  Beyond ``MAX_QUEUED_SPANS`` waiting spans the
        oldest are dropped.  Spans of opencensus's own tracers go through
        :attr:`trace_exporter`.
        """
        if ev.kind == END_SPAN:
            span = getattr(ctx, "_span", None)
            if span.__class__ is Span and span.end > 0:
                self._spans.append(span)
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        """Nothing to do: every export pulls all metrics from their rows."""

    # Spans.

    @property
    def trace_exporter(self) -> Any:
        """The stock opencensus ``TraceExporter``, sending to the same agent.

        Give it to an opencensus ``Tracer(exporter=...)``; spans are queued and
        sent by this exporter's thread on its next export.
        """
        with self._trace_lock:
            if self._trace is None:
                config = self.config
                self._trace = _stock.trace_exporter(
                    config.service or "", config.host or "", self._node, self._send_trace)
            return self._trace

    # Flush and close.

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send everything now; True once the agent took it, False after ``timeout``.

        ``timeout`` defaults to the config's.  Never raises because of the transport.
        """
        return self._worker.flush(
            time.monotonic() + (self.config.timeout if timeout is None else timeout))

    def close(self, timeout: Optional[float] = None) -> None:
        """Flush, stop the thread and close the channel; later calls do nothing.

        Waits for the last export ``timeout`` at most (the config's by default),
        not at all once the agent refuses (``export._exit``); a loss is one WARNING.
        """
        timeout = self.config.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        ticket = self._worker.close(deadline)
        if not ticket:
            return
        _live.discard(self)
        why = self._worker.wait_last(ticket, _exit.address(self._target), deadline, timeout)
        self._channel_closed = True  # no export starts any more, and one in flight
        self._streams.stop(why or "the exporter is closed")  # is cancelled: it ends now
        self._worker.join(deadline)
        self._closed = True
        self._channel.close()
        if why is not None:
            self._undelivered(why)

    def _close_at_exit(self) -> None:
        """close(), or where no thread starts at exit (3.12.0, 3.12.1), its HTTP form.

        gRPC can make no call then and closing its channel hangs: ``_exit.post``
        sends the last export from this thread; the channel is left to the OS.
        """
        if _exit.threads_can_start():
            self.close()
            return
        if not self._worker.stop():
            return
        self._channel_closed = True  # and a call in flight is cancelled
        self._streams.stop("the exporter is closed")
        _live.discard(self)
        with self._send_lock:  # the thread's export in flight, if any, ended
            self._closed = True
            metrics, spans = self._collect(), _requests.take_all(self._spans)
        why = _exit.post(self._target, self._tls, self.config.ca_file, self._metadata,
                         metrics, _requests.span_requests(spans, self._first) if spans else [],
                         time.monotonic() + self.config.timeout)
        if why is not None:
            self._undelivered(why, len(spans))

    def _undelivered(self, why: str, spans: int = 0) -> None:
        spans += len(self._spans) + (len(self._trace.transport.spans) if self._trace else 0)
        log.warning("the last export to the ocagent at %s, at close, failed (%s): %d series "
                    "and %d spans not delivered", self.config.address, why, self._series, spans)

    @property
    def closed(self) -> bool:
        return self._closed

    # An export, on the worker's thread.

    def _attempt(self, deadline: Optional[float]) -> Outcome:
        """Send every metric, then the queued spans; a periodic one (no deadline) is paced."""
        with self._send_lock:
            if self._channel_closed:
                return SKIPPED
            try:
                bodies = self._collect(paced=deadline is None)
                if bodies:
                    self._streams.send_metrics(bodies, self.config.timeout)
                if self._trace is not None:
                    _requests.send_queued(self._trace.transport.spans, self._trace.emit)
                _requests.send_queued(self._spans, self._send_our_spans)
            except _channel.SendError as e:
                return str(e)
        return None

    def _collect(self, paced: bool = False) -> List[bytes]:
        """Request bodies with every metric; empty when there is nothing to send."""
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        encoders = _requests.compat_encoders(self._encoders, _requests.encoder_for)
        foreign = list(_stock.foreign_metrics(now))
        self._series = (sum(len(encoder.recorder.rows) for encoder in encoders)
                        + sum(len(metric.time_series) for metric in foreign))
        if not foreign and not self._series:
            return []
        pacer = _requests.Pacer(PACED_DUTY) if paced else None
        return _requests.metric_requests(encoders, foreign, self._first, now, pacer=pacer)

    def _send_our_spans(self, batch: List[Any]) -> None:
        self._send_trace(_requests.span_requests(batch, self._first))

    def _send_trace(self, bodies: List[bytes]) -> None:
        self._streams.send_trace(bodies, self.config.timeout)

    def send_request(self, request: Any) -> None:
        """The stock ``StatsExporter``'s transport: one request, sent now, on its own stream.

        Raises :class:`SendError` when the agent did not take it.
        """
        # Serialized messages concatenate as a merge: node, metrics, resource.
        body = self._first[0] + request.SerializeToString() + self._first[1]
        with self._send_lock:
            if self._channel_closed:
                raise SendError("the exporter is closed")
            self._streams.send_metrics([body], self.config.timeout)

    # Fork.

    def _after_fork_in_child(self) -> None:
        self._retired.append(self._channel)
        if self._worker.closing or self._closed:
            return
        self.config = replace(self.config, process=os.getpid(),
                              start=datetime.datetime.now(datetime.timezone.utc))
        self._start_transport()
        self._worker.restart()


SendError = _channel.SendError

# Live exporters, held strongly: an exporter lives until closed (E3), is
# closed at exit (E4) and restarts in a forked child.
_live: LiveSet[Exporter] = LiveSet(lambda exporter: exporter._close_at_exit())


__all__ = ["Config", "Exporter", "SendError", "DEFAULT_ADDRESS", "discover", "connect"]
