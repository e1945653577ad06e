"""Exporters, as in Go's ``telemetry/export`` package.

One process-wide exporter receives events (log events, span starts and ends
from :mod:`gotools_compat.event`) and may be told about metrics;
:func:`set_exporter` sets it, as Go's ``export.SetExporter``.  The slot is
:mod:`gotools_compat.event.exporter`'s (Go's ``event.SetExporter``), which
every event goes to; this package re-exports it and holds the exporters.
Spans reach an ocagent exporter only once it is set here (as in Go).

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

import threading
from typing import IO, Any, Optional, Tuple

from gotools_compat.event import END_SPAN, LABEL, LOG, START_SPAN, Context, Event, get_span
from gotools_compat.event.exporter import _DEFAULT as _DEFAULT
from gotools_compat.event.exporter import (Exporter, get_exporter, metric, process_event,
                                           set_exporter)
from gotools_compat.event.exporter import report as _report


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
