"""Export to OpenTelemetry: the same metrics as OTel SDK data, to any ``MetricExporter``.

Needs the ``otel`` extra (``pip install gotools_compat[otel]``)::

    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from gotools_compat import export
    from gotools_compat.export import otel

    e = otel.connect(OTLPMetricExporter(endpoint="http://127.0.0.1:4318/v1/metrics"),
                     interval=5.0, service="my-service")
    export.set_exporter(e)        # or export.multi(e, ocagent.connect(...))
    ...
    e.force_flush()               # export now (OTel's contract: True once exported)
    e.shutdown()                  # export what is left, stop; also done at exit

:func:`collect` gives the ``MetricsData`` itself, for any use.  Every metric
the opencensus views hold is in it: ours (read straight from their rows) and
the app's plain opencensus views.  How each becomes OpenTelemetry data
(``Sum``, ``Gauge``, ``Histogram``; attributes; start times) is in
:mod:`gotools_compat._otel`.  In short: counts and sums are monotonic
cumulative ``Sum`` points, latest values ``Gauge`` points, histograms
cumulative ``Histogram`` points with the bounds as declared, per-bucket
counts (overflow last), count, sum, min and max; label values are string
attributes; each series starts at its metric's start time, the same on
every collection.

The exporter works like the SDK's ``PeriodicExportingMetricReader``: one
thread collects and calls ``metric_exporter.export`` every ``interval``
seconds (``OTEL_METRIC_EXPORT_INTERVAL`` milliseconds, else 60 s), each export
bounded by ``timeout`` (``OTEL_METRIC_EXPORT_TIMEOUT`` ms, else 30 s).  Data
is cumulative, so a failed export needs no queue: the next one carries every
value.  An outage is logged once at WARNING, its end at INFO.  Nothing here
blocks recording; ``connect()`` returns at once.

``force_flush(timeout_millis)`` and ``shutdown(timeout_millis)`` follow the
OpenTelemetry contract: both return within their timeout; ``shutdown`` exports
once more, then shuts the metric exporter down; a second ``shutdown`` does
nothing; after it ``force_flush`` returns False.  ``flush()``/``close()`` are
the same in seconds, for :func:`gotools_compat.export.multi`.  Exporters live
until shut down (the module holds them) and are shut down at interpreter exit.

At exit the last export runs on the exporter's own thread, which is running
already, so it also works on Python 3.12.0 and 3.12.1, where no thread can
start at exit: neither the OTLP/HTTP exporter nor the OTLP/gRPC one starts
any (the gRPC one makes blocking unary calls; only gRPC streams need a new
thread).  The exit waits for that export ``timeout`` at most: the SDK's OTLP
exporters ignore the timeout they are given and keep their own (their
``timeout=`` argument, 10 s by default, retries included), so past ours
``shutdown`` goes on and shuts the metric exporter down (for the gRPC one,
that cancels the call in flight and its retries).  It does not wait at all
once the exporter's endpoint (the SDK exporters' ``_endpoint``) refuses the
connection, which the SDK retries with backoff: the metric exporter is shut
down at once, which ends its retries (see :mod:`gotools_compat.export._exit`).
What the last export did not deliver is logged in one WARNING.

Forking (gunicorn ``--preload``, ``multiprocessing`` with fork): a child
forked after ``connect()`` gets its own thread and a resource with its own
``process.pid``, and starts every metric from zero at the fork (the same
series, value 0), so it never reports its parent's totals as its own (as
``export.ocagent`` does).  No export is in flight across a fork (a fork waits
for one, at most its timeout).  The child shares the metric exporter object
with its parent: the OTLP/HTTP exporter opens new connections as it needs
them, but gRPC channels do not survive a fork, so with the OTLP/gRPC
exporter ``connect()`` anew in the child (e.g. gunicorn's ``post_fork``) and
shut the inherited one down there.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, List, Mapping, Optional, Tuple

from gotools_compat._otel import data as _otel
from gotools_compat._otel.data import MetricsData, Resource
from gotools_compat.event import Context
from gotools_compat.export import Event, _exit, _otel_metrics
from gotools_compat.export._lifetime import LiveSet
from gotools_compat.export._worker import SKIPPED, Outcome, Worker

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 30.0

_default_resource: List[Any] = []  # [(pid, Resource)]


def default_resource() -> Resource:
    """The resource :func:`collect` uses when given none (see ``_otel.resource``)."""
    pid = os.getpid()
    if not _default_resource or _default_resource[0][0] != pid:
        _default_resource[:] = [(pid, _otel.resource(None, None, pid))]
    found: Resource = _default_resource[0][1]
    return found


def collect(resource: Optional[Resource] = None) -> MetricsData:
    """Every metric the opencensus views hold, as OpenTelemetry SDK ``MetricsData``.

    ``resource`` defaults to :func:`default_resource`.  Metrics without any
    series yet are left out.
    """
    now = time.time_ns()
    metrics = _otel_metrics.our_metrics(now) + _otel_metrics.foreign_metrics(now)
    return _otel.metrics_data(resource or default_resource(), metrics)


def _seconds_from_env(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text) / 1000.0
    except ValueError:
        value = 0.0
    if not value > 0:
        log.warning("ignoring %s=%r: not a positive number of milliseconds", name, text)
        return default
    return value


def connect(metric_exporter: Any, interval: Optional[float] = None, *,
            timeout: Optional[float] = None, service: Optional[str] = None,
            host: Optional[str] = None,
            resource_attributes: Optional[Mapping[str, Any]] = None) -> "Exporter":
    """Export every metric to ``metric_exporter`` every ``interval`` seconds.

    ``metric_exporter`` is any OpenTelemetry SDK ``MetricExporter`` (OTLP over
    HTTP or gRPC, the console exporter, ...).  ``service`` and ``host`` set
    ``service.name`` and ``host.name`` (defaults: ``OTEL_SERVICE_NAME``/
    ``OTEL_RESOURCE_ATTRIBUTES``, else the program's base name and the host
    name); ``resource_attributes`` adds to the resource.  Returns at once.
    """
    if not callable(getattr(metric_exporter, "export", None)):
        raise TypeError("connect() takes an OpenTelemetry MetricExporter, not %r"
                        % (metric_exporter,))
    if interval is None:
        interval = _seconds_from_env("OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_INTERVAL)
    if timeout is None:
        timeout = _seconds_from_env("OTEL_METRIC_EXPORT_TIMEOUT", DEFAULT_TIMEOUT)
    if not interval > 0 or not timeout > 0:
        raise ValueError("interval and timeout must be positive seconds")
    return Exporter(metric_exporter, float(interval), float(timeout), service, host,
                    dict(resource_attributes or {}))


class Exporter:
    """A connected exporter: see the module doc.  Make one with :func:`connect`."""

    def __init__(self, metric_exporter: Any, interval: float, timeout: float,
                 service: Optional[str], host: Optional[str],
                 resource_attributes: Mapping[str, Any]) -> None:
        self.metric_exporter = metric_exporter
        self.interval = interval
        self.timeout = timeout
        self._identity = (service, host, resource_attributes)
        self._shutdown = False
        self._shutdown_done = threading.Event()
        self._shutdown_ok = False
        self._send_lock = threading.Lock()  # held by an export; never across a fork
        self._start()
        self._worker = Worker(self._attempt, interval, "OpenTelemetry export to %r"
                              % (metric_exporter,), log, "gotools-otel-exporter")
        _live.add(self)
        self._worker.start()

    def _start(self) -> None:
        service, host, extra = self._identity
        self.resource = _otel.resource(service, host, os.getpid(), extra)
        self._shutdown_lock = threading.Lock()
        self._series = 0  # in the last collection

    def __repr__(self) -> str:
        return "otel.Exporter(%r, interval=%g)" % (self.metric_exporter, self.interval)

    # The Exporter protocol.

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        """Nothing to do: every export pulls all metrics from their rows."""

    # The OpenTelemetry contract.

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Collect and export now, then flush the metric exporter.

        True when both succeeded within ``timeout_millis``; False after a
        failure, a timeout, or a shutdown.  Never raises because of the exporter.
        """
        deadline = time.monotonic() + max(timeout_millis, 0) / 1000.0
        if self._shutdown or not self._worker.flush(deadline):
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            return bool(self.metric_exporter.force_flush(timeout_millis=left * 1000.0))
        except Exception:
            log.exception("force_flush of %r failed", self.metric_exporter)
            return False

    def shutdown(self, timeout_millis: float = 30_000) -> bool:
        """Export once more, stop the thread, shut the metric exporter down.

        Returns within ``timeout_millis``: True when all of that succeeded.
        Later calls do nothing (they wait for the first, within their own
        timeout, and return its outcome).
        """
        timeout = max(timeout_millis, 0) / 1000.0
        deadline = time.monotonic() + timeout
        with self._shutdown_lock:
            first = not self._shutdown
            self._shutdown = True
        if not first:
            self._shutdown_done.wait(max(deadline - time.monotonic(), 0))
            return self._shutdown_ok
        _live.discard(self)
        ok = self._last_export(deadline, timeout)
        left = max(deadline - time.monotonic(), 0.0)
        try:
            self.metric_exporter.shutdown(timeout_millis=left * 1000.0)
        except Exception:
            log.exception("shutdown of %r failed", self.metric_exporter)
            ok = False
        self._shutdown_ok = ok
        self._shutdown_done.set()
        return ok

    def flush(self, timeout: Optional[float] = None) -> bool:
        """:meth:`force_flush` in seconds (default: the export timeout)."""
        return self.force_flush((self.timeout if timeout is None else timeout) * 1000.0)

    def close(self, timeout: Optional[float] = None) -> None:
        """:meth:`shutdown` in seconds (default: the export timeout)."""
        self.shutdown((self.timeout if timeout is None else timeout) * 1000.0)

    @property
    def closed(self) -> bool:
        return self._shutdown

    # The exports, run by the worker's thread.

    def _last_export(self, deadline: float, timeout: float) -> bool:
        """Ask for the last export and wait for it as ``export._exit`` says.

        That is until the deadline, not at all once the endpoint refuses the
        connection; what it did not deliver is logged in one WARNING.
        """
        ticket = self._worker.close(deadline)
        if not ticket:
            return False
        where = _exit.address(getattr(self.metric_exporter, "_endpoint", None))
        why = self._worker.wait_last(ticket, where, deadline, timeout)
        if why is not None:
            log.warning("the last export to %r, at shutdown, failed (%s): %d series not "
                        "delivered", self.metric_exporter, why, self._series)
        return why is None

    def _attempt(self, deadline: Optional[float]) -> Outcome:
        """Collect and export once, within ``timeout`` and the deadline of who waits."""
        timeout = self.timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
        if timeout <= 0:
            return SKIPPED
        try:
            data = collect(self.resource)
            metrics = data.resource_metrics[0].scope_metrics[0].metrics
            self._series = sum(len(m.data.data_points) for m in metrics)
            if not metrics:
                return None
            # Only the export holds the lock a fork waits for: collecting
            # takes the core's locks, which a fork may hold already.
            with self._send_lock:
                result = self.metric_exporter.export(data, timeout_millis=timeout * 1000.0)
        except Exception as e:  # the exporter's or ours: log it, keep going
            log.debug("OpenTelemetry export to %r raised", self.metric_exporter,
                      exc_info=True)
            return "%s: %s" % (type(e).__name__, e)
        if getattr(result, "name", None) == "SUCCESS":
            return None
        return "the exporter returned %s" % (result,)

    def _after_fork_in_child(self) -> None:
        if self._shutdown:
            return
        _drop_inherited_connections(self.metric_exporter)
        self._send_lock = threading.Lock()
        self._start()
        self._worker.restart()


def _drop_inherited_connections(metric_exporter: Any) -> None:
    """Close, in a child, the pooled HTTP connections it shares with its parent.

    The OTLP/HTTP exporter keeps a ``requests.Session`` whose idle keep-alive
    sockets the child inherited; writing on them would mix the two processes'
    requests on one connection.  Closing the child's copies leaves the
    parent's open; the session then dials anew.  Best effort: the session's
    place differs between SDK versions, and other exporters are left as they are.
    """
    holders = [metric_exporter]
    client = getattr(metric_exporter, "_client", None)
    if client is not None:
        holders += [client, getattr(client, "_transport", None)]
    for holder in holders:
        session = getattr(holder, "_session", None)
        if session is not None and callable(getattr(session, "close", None)):
            try:
                session.close()
            except Exception:
                log.debug("closing an inherited HTTP session failed", exc_info=True)


# Live exporters, held strongly: an exporter lives until shut down, is shut
# down at exit and restarts in a forked child.
_live: LiveSet[Exporter] = LiveSet(
    lambda exporter: exporter.shutdown(exporter.timeout * 1000.0))


__all__ = ["Exporter", "MetricsData", "Resource", "DEFAULT_INTERVAL", "DEFAULT_TIMEOUT",
           "collect", "connect", "default_resource"]
