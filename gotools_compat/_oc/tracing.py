"""Our spans and opencensus's ambient tracer: one tree, one sampling decision.

``event.start_span(None, ...)`` asks :func:`ambient` where it stands: inside an
opencensus span (ours or opencensus's) it becomes a child of that span, in its
trace; under an opencensus ``Tracer`` with no current span it becomes a child
of the tracer's span context (a remote parent from a header, or a root of that
trace); a tracer that sampled its trace out samples our span out too.  While
our span is open it is opencensus's current span (:class:`Scope`), so spans
that opencensus's tracer starts inside it are its children.

Nothing here imports opencensus's tracing (50 ms): if
``opencensus.trace.execution_context`` was never imported, no one set an
ambient tracer.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Callable, Optional, Tuple, Type

# (sampled, trace_id, parent_id, the span context to keep in step, or None)
Ambient = Tuple[bool, int, int, Any]

_slots: Any = None


def _load(ec: Any) -> Any:
    global _slots
    from opencensus.trace import span as oc_span

    from gotools_compat import _oc

    _oc.patch_clock("opencensus.trace.span")
    from opencensus.trace.tracers import context_tracer, noop_tracer

    # The slots' own getters: execution_context.get_current_span() goes
    # through RuntimeContext.__getattr__ (0.7 us); a slot's get is 0.1 us.
    _slots = (ec._current_span_slot.get, ec._current_span_slot.set, ec._tracer_slot.get,
              oc_span.Span, context_tracer.ContextTracer, noop_tracer.NoopTracer)
    return _slots


def _hex(text: Any) -> int:
    try:
        return int(text, 16) if text else 0
    except (TypeError, ValueError):
        return 0


def ambient(own: Type[Any]) -> Optional[Ambient]:
    """Where a span started with ``ctx=None`` belongs; None: no opencensus trace.

    ``own`` is the class of our spans (``event.Span``: ``trace_id`` and
    ``id`` ints, ``end`` 0 while open), which :class:`Scope` makes current.
    """
    ec = sys.modules.get("opencensus.trace.execution_context")
    if ec is None:
        return None
    slots = _slots or _load(ec)
    get_current, _, get_tracer, oc_span_type, context_tracer_type, noop_type = slots

    current = get_current()
    tracer = get_tracer()
    inner = getattr(tracer, "tracer", tracer)  # an opencensus Tracer wraps its ContextTracer
    span_context = getattr(inner, "span_context", None)
    if isinstance(current, own) and not current.end:
        return True, current.trace_id, current.id, span_context
    if isinstance(current, oc_span_type):
        owner = current.context_tracer
        context = getattr(owner, "span_context", None) or span_context
        if context is None:
            return None
        return True, _hex(context.trace_id), _hex(current.span_id), context
    if isinstance(inner, context_tracer_type) and span_context is not None:
        return True, _hex(span_context.trace_id), _hex(span_context.span_id), span_context
    if isinstance(inner, noop_type) and inner is not tracer:
        return False, 0, 0, None  # an opencensus Tracer that sampled this trace out
    return None


class Scope:
    """Makes our open span opencensus's current span; :meth:`leave` undoes it."""

    __slots__ = ("previous", "context", "previous_id", "thread")

    def __init__(self, span: Any, context: Any) -> None:
        get_current, set_current = _slots[0], _slots[1]
        self.previous = get_current()
        self.context = context
        self.previous_id = context.span_id
        self.thread = threading.get_ident()
        set_current(span)
        # opencensus's tracer parents a span on span_context.span_id when no
        # current span is set (after one of its spans ended inside ours).
        context.span_id = span.span_id

    def leave(self, span: Any) -> None:
        if threading.get_ident() != self.thread:
            return  # ended on another thread: that thread's ambient state is not ours
        get_current, set_current = _slots[0], _slots[1]
        if get_current() in (span, None):
            set_current(self.previous)
        if self.context.span_id == span.span_id:
            self.context.span_id = self.previous_id


def never(trace_id: int) -> bool:
    return False


def decision(sampler: Any) -> Callable[[int], bool]:
    """``trace_id -> sampled?`` for an opencensus sampler (see ``event.set_sampler``)."""
    from opencensus.trace import samplers

    if not callable(getattr(sampler, "should_sample", None)):
        raise TypeError("set_sampler() takes an opencensus sampler (with "
                        "should_sample(span_context)), not %r" % (sampler,))
    kind = type(sampler)
    if kind is samplers.AlwaysOnSampler:
        return lambda trace_id: True
    if kind is samplers.AlwaysOffSampler:
        return never
    if kind is samplers.ProbabilitySampler:
        # opencensus: the lower 8 bytes of the trace id <= rate * 2**64-1.
        bound = sampler.rate * 0xFFFFFFFFFFFFFFFF
        return lambda trace_id: (trace_id & 0xFFFFFFFFFFFFFFFF) <= bound

    def ask(trace_id: int) -> bool:
        return bool(sampler.should_sample(_SamplingContext("%032x" % trace_id)))

    return ask


class _Options:
    __slots__ = ()

    def get_enabled(self) -> bool:
        return False


class _SamplingContext:
    """What a sampler reads of an opencensus ``SpanContext`` for a new trace."""

    __slots__ = ("trace_id",)
    span_id = None
    from_header = False
    trace_options = _Options()
    tracestate = None

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
