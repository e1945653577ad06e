"""Spans and log events (Go's ``event.StartSpan``, ``Log``, ``Print``, ``Error``, ``Detach``).

The public names are re-exported by :mod:`gotools_compat.event`, the module
users import, which loads this one on first use: code that only records
metrics never pays for it.  Every event goes to the process-wide exporter
(:mod:`gotools_compat.event.exporter`).
"""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from gotools_compat.event.events import END_SPAN, LOG, START_SPAN, Event
from gotools_compat.event.exporter import process_event as _process_event
from gotools_compat.event.keys import _BACKGROUND, Context, Tag

logger = logging.getLogger(__name__)


class Span:
    """A span (Go's ``export.Span``): made by :func:`start_span`, ended by its ``end``.

    A small object: ids are ints (``trace_id`` 128 bits, ``id`` and
    ``parent_id`` 64 bits, ``parent_id`` 0 for a root), times are ns since the
    epoch (``end`` 0 while open), ``tags`` are the tags given at the start,
    ``events`` the log events made in it (the latest :data:`MAX_EVENTS`;
    ``dropped`` counts older ones), ``status`` is None or ``(code, message)``
    with an opencensus/gRPC code.  It is converted for the wire on the
    exporter's thread, after it ended.
    """

    __slots__ = ("name", "trace_id", "id", "parent_id", "start", "end", "tags", "events",
                 "dropped", "status", "_ambient")

    def __init__(self, name: str, trace_id: int, id: int, parent_id: int, start: int,
                 tags: Tuple[Any, ...]) -> None:
        self.name = name
        self.trace_id = trace_id
        self.id = id
        self.parent_id = parent_id
        self.start = start
        self.end = 0
        self.tags = tags
        self.events: Optional[List[Event]] = None
        self.dropped = 0
        self.status: Optional[Tuple[int, str]] = None
        self._ambient: Any = None

    @property
    def span_id(self) -> str:
        """The id in hex, as opencensus spans have it (read by opencensus tracers)."""
        return "%016x" % self.id

    @property
    def recording(self) -> bool:
        """True while the span is open and recorded (log events attach to it)."""
        return not self.end

    def add_attribute(self, key: str, value: Any) -> None:
        """For opencensus's ``tracer.add_attribute_to_current_span`` (see start_span)."""
        self.tags += (_AttributeTag(key, value),)

    def __repr__(self) -> str:
        return "Span(%r, %032x:%016x)" % (self.name, self.trace_id, self.id)


class _AttributeTag:
    """An attribute added through opencensus's API: a plain name and value."""

    __slots__ = ("key", "value")

    def __init__(self, name: str, value: Any) -> None:
        self.key = _AttributeKey(name)
        self.value = value

    def __str__(self) -> str:
        return "%s=%s" % (self.key.name, self.value)


class _AttributeKey:
    __slots__ = ("name",)
    kind = "value"

    def __init__(self, name: str) -> None:
        self.name = str(name)


# The latest log events kept per span (opencensus keeps 32 annotations).
MAX_EVENTS = 128

# A context whose span was sampled out holds this span: never recorded.
_UNSAMPLED = Span("", 0, 0, 0, 0, ())
_UNSAMPLED.end = -1

_randbits = random.SystemRandom().getrandbits(64)  # seeds our own generator
_rng = random.Random(_randbits)
_bits = _rng.getrandbits
_time_ns = time.time_ns
# None: record every span (Go's behaviour); False: none; else trace_id -> sampled?
_sample: Union[None, bool, Callable[[int], bool]] = None
_warned: Dict[str, bool] = {}


def _warn_once(what: str, message: str, *args: Any) -> None:
    if what not in _warned:
        _warned[what] = True
        logger.warning(message + " (logged once)", *args)


def _reseed() -> None:
    # A forked child must not repeat its parent's ids.
    global _rng, _bits
    _rng = random.Random(random.SystemRandom().getrandbits(64))
    _bits = _rng.getrandbits


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def set_sampler(sampler: Any) -> None:
    """Sample spans with an opencensus sampler; None (the default) records every span.

    Go records every span.  Opt in to sampling with an opencensus sampler,
    e.g. ``event.set_sampler(samplers.ProbabilitySampler(0.01))``: it decides
    for each new trace (a root span); the spans under it follow that decision.
    The stock ``AlwaysOnSampler``, ``AlwaysOffSampler`` and
    ``ProbabilitySampler`` decide as opencensus does (the lower 64 bits of the
    trace id against the rate); any other object with ``should_sample(span_context)``
    is asked with a span context that has the new ``trace_id`` in hex.
    Spans started with ``ctx=None`` inside an opencensus trace follow that
    trace's decision instead.
    """
    global _sample
    if sampler is None:
        _sample = None
        return
    from gotools_compat._oc import tracing

    decide = tracing.decision(sampler)
    _sample = False if decide is tracing.never else decide


def get_span(ctx: Optional[Context]) -> Optional[Span]:
    """The recorded span ``ctx`` is in, or None (Go's ``export.GetSpan``)."""
    span = getattr(ctx, "_span", None)
    if span is None or span is _UNSAMPLED:
        return None
    return span  # type: ignore[no-any-return]


def _with_span(ctx: Context, span: Span) -> Context:
    out = _new_context(Context)
    out._values = ctx._values
    out._rows = ctx._rows
    out._span = span
    return out


_new_context = object.__new__



def start_span(ctx: Optional[Context], name: str, *tags: Tag) -> Tuple[Context, Callable[[], None]]:
    """Start a span; returns its context and the function that ends it (Go's ``StartSpan``).

    The span is a child of the span in ``ctx``, or a root of a new trace.
    With ``ctx=None`` it joins the ambient opencensus trace (the current
    opencensus span or tracer), takes that trace's sampling decision, and is
    the ambient current span until it ends, so opencensus spans started inside
    it are its children; the returned context then holds no tag values.
    ``tags`` become the span's attributes.  Never raises: a ``name`` that is
    not a str is used as ``str(name)``, with one warning.
    """
    if ctx is None:
        return _start_ambient(name, tags)
    try:
        parent = ctx._span
    except AttributeError:
        _warn_once("ctx", "start_span() takes a Context or None, not %s; using None",
                   type(ctx).__name__)
        return _start_ambient(name, tags)
    if parent is None:
        sample = _sample
        if sample is None:
            trace_id = _bits(128)
        elif sample is False or not sample(trace_id := _bits(128)):  # type: ignore[operator]
            out = _new_context(Context)  # _with_span, inlined: the sampled-out path
            out._values = ctx._values
            out._rows = ctx._rows
            out._span = _UNSAMPLED
            return out, _noop
        parent_id = 0
    elif parent is _UNSAMPLED:
        return ctx, _noop
    else:  # also a child of a span that already ended, as in Go
        trace_id, parent_id = parent.trace_id, parent.id
    if name.__class__ is not str:
        name = _fix_name(name)
    span = Span(name, trace_id, _bits(64) or 1, parent_id, _time_ns(), tags)
    return _started(_with_span(ctx, span), span)


def _started(ctx: Context, span: Span) -> Tuple[Context, Callable[[], None]]:
    ctx = _process_event(ctx, Event(START_SPAN, span.start, span.name, None, span.tags))

    def end() -> None:
        if span.end:
            _warn_once("twice", "span %r ended twice; later ends are ignored", span.name)
            return
        span.end = _time_ns()
        if span._ambient is not None:
            span._ambient.leave(span)
        _process_event(ctx, Event(END_SPAN, span.end, span.name))

    return ctx, end


def _noop() -> None:
    pass


def _fix_name(name: Any) -> str:
    try:
        text = str(name)
    except Exception:
        text = type(name).__name__
    _warn_once("name", "span names must be str, not %s; using str(name)", type(name).__name__)
    return text


_tracing: Any = None


def _start_ambient(name: Any, tags: Tuple[Tag, ...]) -> Tuple[Context, Callable[[], None]]:
    global _tracing
    if name.__class__ is not str:
        name = _fix_name(name)
    if _tracing is None:
        from gotools_compat._oc import tracing

        _tracing = tracing
    found = _tracing.ambient(Span)  # None, or (sampled, trace_id, parent_id, span context)
    if found is None:
        trace_id = _bits(128)
        sample = _sample
        if sample is not None and (sample is False or not sample(trace_id)):  # type: ignore[operator]
            return _with_span(_BACKGROUND, _UNSAMPLED), _noop
        span = Span(name, trace_id, _bits(64) or 1, 0, _time_ns(), tags)
        return _started(_with_span(_BACKGROUND, span), span)
    sampled, trace_id, parent_id, context = found
    if not sampled:
        return _with_span(_BACKGROUND, _UNSAMPLED), _noop
    span = Span(name, trace_id, _bits(64) or 1, parent_id, _time_ns(), tags)
    if context is not None:
        span._ambient = _tracing.Scope(span, context)
    return _started(_with_span(_BACKGROUND, span), span)


class span:  # noqa: N801 (a function in use: ``with event.span(ctx, name) as ctx``)
    """``with event.span(ctx, name, *tags) as ctx:`` starts a span and ends it on exit.

    An exception leaving the block marks the span with status UNKNOWN (2) and
    the exception's text, and propagates.
    """

    __slots__ = ("_args", "_end", "_ctx")

    def __init__(self, ctx: Optional[Context], name: str, *tags: Tag) -> None:
        self._args = (ctx, name, tags)

    def __enter__(self) -> Context:
        ctx, name, tags = self._args
        self._ctx, self._end = start_span(ctx, name, *tags)
        return self._ctx

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        if value is not None:
            current = get_span(self._ctx)
            if current is not None and not current.end:
                current.status = (2, "%s: %s" % (type(value).__name__, value))
        self._end()


def detach(ctx: Optional[Context]) -> Context:
    """``ctx``'s values without its span (Go's ``Detach``): spans started from it are roots."""
    if ctx is None:
        return _BACKGROUND
    if getattr(ctx, "_span", None) is None:
        return ctx
    out = _new_context(Context)
    out._values = ctx._values
    out._rows = ctx._rows
    out._span = None
    return out


def _log(ctx: Optional[Context], message: str, error: Optional[BaseException],
         tags: Tuple[Tag, ...]) -> None:
    ev = Event(LOG, _time_ns(), message, error, tags)
    if ctx is None:
        ctx = _BACKGROUND
    else:
        span = getattr(ctx, "_span", None)
        if span is not None and not span.end:
            events = span.events
            if events is None:
                span.events = [ev]
            else:
                events.append(ev)
                if len(events) > MAX_EVENTS:
                    del events[0]
                    span.dropped += 1
    _process_event(ctx, ev)


def log(ctx: Optional[Context], *tags: Tag) -> None:
    """A log event with only tags (Go's ``event.Log``); see :func:`print`."""
    _log(ctx, "", None, tags)


def print(ctx: Optional[Context], message: str, *tags: Tag) -> None:  # noqa: A001
    """A log event (Go's ``event.Print``).

    Inside a recorded span it becomes an annotation on the span (its tags the
    annotation's attributes); anywhere it goes to the exporter
    (:func:`gotools_compat.export.set_exporter`).  Never raises.
    """
    _log(ctx, message, None, tags)


def error(ctx: Optional[Context], message: str, err: Optional[BaseException],
          *tags: Tag) -> None:
    """A log event that carries an error (Go's ``event.Error``); see :func:`print`."""
    _log(ctx, message, err, tags)
