"""Exporters, as in Go's ``telemetry/export`` package.

One process-wide exporter receives events (log events, span starts and ends
from :mod:`gotools_compat.event`) and may be told about metrics;
:func:`set_exporter` sets it, as Go's ``export.SetExporter``.  Spans reach
an ocagent exporter only once it is set here (as in Go).

Metric *values* are not pushed: every metric lives in opencensus views and
exporters pull them when they export (``gotools_compat.metric.collect()``, or
opencensus ``get_metrics()``), so recording never waits for an exporter.
``ocagent.connect()`` exports metrics on its own as soon as it is connected;
``set_exporter`` additionally routes events (and so spans) to it.

Writing an exporter (the Python form of Go's ``event.Exporter``)
-----------------------------------------------------------------
Any object with these two methods is an :class:`Exporter`::

    class MyExporter:
        def process_event(self, ctx, ev):
            # Called for every event, on the thread that made it: be quick,
            # never block on I/O (queue the work for your own thread).
            # Return the context and event to pass on (as Go's ProcessEvent).
            if ev.error is not None:
                my_queue.put(str(ev))
            return ctx, ev

        def metric(self, ctx, data):
            # ``data`` is a metric snapshot (gotools_compat.metric.*Data).
            # Called when someone hands a snapshot over (metric.collect() makes them);
            # a periodic exporter usually ignores it and pulls collect() itself.
            pass

    export.set_exporter(MyExporter())

An exception raised by an exporter is logged (once per exporter) and never
reaches the code that made the event.  Combine exporters with :func:`multi`.
Exporters that hold resources should also offer ``flush()`` and ``close()``
(as ``ocagent.Exporter`` does).
"""

from __future__ import annotations

import logging
import threading
from typing import IO, Any, Dict, Optional, Protocol, Tuple, runtime_checkable

from gotools_compat import _span
from gotools_compat.event import END_SPAN, LABEL, LOG, START_SPAN, Context, Event, get_span

log = logging.getLogger(__name__)

@runtime_checkable
class Exporter(Protocol):
    """What :func:`set_exporter` takes (Go's ``event.Exporter``); see the module doc."""

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]: ...

    def metric(self, ctx: Context, data: Any) -> None: ...


class _LogErrors:
    """The default exporter: error events go to the logging module (Go prints them)."""

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        if ev.is_log() and ev.error is not None:
            log.error("%s", ev)
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        pass


_DEFAULT = _LogErrors()
_exporter: Optional[Exporter] = _DEFAULT
# Exporters whose failure was logged.  Held, not just their ids: an id is
# reused once its object is gone, and a new exporter must get its log line.
_failed: Dict[int, object] = {}
_failed_lock = threading.Lock()


def set_exporter(e: Optional[Exporter]) -> None:
    """Set the process-wide exporter (Go's ``export.SetExporter``); None removes it."""
    global _exporter
    if e is not None and not isinstance(e, Exporter):
        raise TypeError("an exporter needs process_event(ctx, ev) and metric(ctx, data); "
                        "got %r" % (e,))
    _exporter = e


def get_exporter() -> Optional[Exporter]:
    """The process-wide exporter, or None."""
    return _exporter


def _report(e: Any) -> None:
    with _failed_lock:
        if id(e) in _failed:
            return
        _failed[id(e)] = e
    log.exception("exporter %r failed; its later failures are not logged", e)


def process_event(ctx: Context, ev: Event) -> Context:
    """Hand ``ev`` to the process-wide exporter; never raises because of it."""
    e = _exporter
    if e is None:
        return ctx
    try:
        return e.process_event(ctx, ev)[0]
    except Exception:
        _report(e)
        return ctx


# event.start_span, event.print and the rest emit through process_event.
_span._process_event = process_event


def metric(ctx: Context, data: Any) -> None:
    """Hand a metric snapshot to the process-wide exporter; never raises because of it."""
    e = _exporter
    if e is None:
        return
    try:
        e.metric(ctx, data)
    except Exception:
        _report(e)


class _Multi:
    def __init__(self, exporters: Tuple[Exporter, ...]) -> None:
        self.exporters = exporters

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        for e in self.exporters:
            try:
                ctx, ev = e.process_event(ctx, ev)
            except Exception:
                _report(e)
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        for e in self.exporters:
            try:
                e.metric(ctx, data)
            except Exception:
                _report(e)

    def flush(self) -> None:
        for e in self.exporters:
            flush = getattr(e, "flush", None)
            if flush is not None:
                flush()

    def close(self) -> None:
        for e in self.exporters:
            close = getattr(e, "close", None)
            if close is not None:
                close()


def multi(*exporters: Optional[Exporter]) -> Exporter:
    """An exporter that hands everything to each of ``exporters`` in order (None skipped).

    A failing exporter is logged and the next ones still get the event.
    ``flush()`` and ``close()`` reach every exporter that has them.
    """
    kept = tuple(e for e in exporters if e is not None)
    for e in kept:
        if not isinstance(e, Exporter):
            raise TypeError("multi() takes exporters, not %r" % (e,))
    return _Multi(kept)


class _LogWriter:
    def __init__(self, stream: IO[str], only_errors: bool) -> None:
        self.stream = stream
        self.only_errors = only_errors
        self._lock = threading.Lock()

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        if ev.is_log():
            if self.only_errors and ev.error is None:
                return ctx, ev
            line = "%s\n" % ev
        elif ev.is_start_span():
            # Go: "start: name trace:span[parent]"
            span = get_span(ctx)
            line = "start: %s" % ev.message
            if span is not None:
                line += " %032x:%016x" % (span.trace_id, span.id)
                if span.parent_id:
                    line += "[%016x]" % span.parent_id
            line += "\n"
        elif ev.is_end_span():
            span = get_span(ctx)
            line = "finish: %s" % ev.message
            if span is not None:
                line += " %032x:%016x" % (span.trace_id, span.id)
            line += "\n"
        else:
            return ctx, ev
        with self._lock:
            self.stream.write(line)
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        pass


def log_writer(stream: IO[str], only_errors: bool) -> Exporter:
    """An exporter that writes log events (and span starts and ends) to ``stream``.

    Go's ``export.LogWriter(w, onlyErrors)``: with ``only_errors`` only log
    events that carry an error are written (span starts and ends still are, as in Go).
    A log event is ``2020/03/04 05:06:07 message: error`` (local time) and a
    ``\n\tkey=value`` per tag; a span start is ``start: name trace:span[parent]``,
    its end ``finish: name trace:span`` (ids in hex; ``[parent]`` only for a child).
    Sampled-out spans are not written: the exporter never sees them.
    """
    return _LogWriter(stream, only_errors)


__all__ = [
    "Event", "Exporter", "LOG", "START_SPAN", "END_SPAN", "LABEL", "get_span", "set_exporter",
    "get_exporter", "process_event", "metric", "multi", "log_writer",
]
