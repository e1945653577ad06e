"""Typed keys, tags, contexts, events and spans, as in Go's ``telemetry/event`` package.

Keys are compared by identity, like Go's: two libraries that both make a key
named "method" never collide.  A :class:`Context` is an immutable set of tag
values; :func:`label` returns a new one, as Go's ``event.Label`` returns a new
``context.Context``.  Metrics read the values of their keys from the context
given to ``record``; ``record(None, v)`` reads the ambient opencensus tag map
instead (see :mod:`gotools_compat.stats`).

Spans and log events (``start_span``, ``span``, ``detach``, ``log``,
``print``, ``error``, ``set_sampler``) are part of this package's API; they
load on first use, so code that only records metrics never pays for them.

The parts: :mod:`.keys` (keys, tags, contexts), :mod:`.events` (``Event``),
:mod:`.spans` (spans and log events), :mod:`.exporter` (the process-wide
exporter every event goes to; ``gotools_compat.export`` re-exports it).

Threads and executors: a :class:`Context` is a plain immutable object, pass it
along.  The ambient opencensus tags live in a ``contextvars`` slot that plain
threads do not inherit (E14); wrap the function you hand to a thread or
executor with opencensus's own ``RuntimeContext.with_current_context(fn)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gotools_compat.event.keys import (
    MAX_LABEL_LENGTH,
    BooleanKey,
    Context,
    ErrorKey,
    FloatKey,
    Int8Key,
    Int16Key,
    Int32Key,
    Int64Key,
    IntKey,
    Key,
    StringKey,
    Tag,
    UInt8Key,
    UInt16Key,
    UInt32Key,
    UInt64Key,
    UIntKey,
    background,
    label,
    new_boolean_key,
    new_error_key,
    new_float32_key,
    new_float64_key,
    new_int8_key,
    new_int16_key,
    new_int32_key,
    new_int64_key,
    new_int_key,
    new_key,
    new_string_key,
    new_uint8_key,
    new_uint16_key,
    new_uint32_key,
    new_uint64_key,
    new_uint_key,
    query,
    todo,
)

# Loaded on first use (the span code imports random, os and more).
_EVENT_NAMES = frozenset({"END_SPAN", "LABEL", "LOG", "START_SPAN", "Event"})
_SPAN_NAMES = frozenset({
    "MAX_EVENTS", "Span", "detach", "error", "get_span", "log", "print", "set_sampler", "span",
    "start_span",
})

if TYPE_CHECKING:
    from gotools_compat.event.events import END_SPAN, LABEL, LOG, START_SPAN, Event
    from gotools_compat.event.spans import (
        MAX_EVENTS,
        Span,
        detach,
        error,
        get_span,
        log,
        print,
        set_sampler,
        span,
        start_span,
    )


def __getattr__(name: str) -> Any:
    if name in _EVENT_NAMES:
        from gotools_compat.event import events as module
    elif name in _SPAN_NAMES:
        from gotools_compat.event import spans as module  # type: ignore[no-redef]
    else:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "Event", "Span", "LOG", "START_SPAN", "END_SPAN", "LABEL", "MAX_EVENTS", "start_span",
    "span", "detach", "get_span", "log", "print", "error", "set_sampler",
    "Key", "StringKey", "IntKey", "Int8Key", "Int16Key", "Int32Key", "Int64Key", "UIntKey",
    "UInt8Key", "UInt16Key", "UInt32Key", "UInt64Key", "FloatKey", "BooleanKey", "ErrorKey",
    "Tag", "Context", "background", "todo", "label", "query", "new_key", "new_string_key",
    "new_int_key", "new_int8_key", "new_int16_key", "new_int32_key", "new_int64_key",
    "new_uint_key", "new_uint8_key", "new_uint16_key", "new_uint32_key", "new_uint64_key",
    "new_float32_key", "new_float64_key", "new_boolean_key", "new_error_key", "MAX_LABEL_LENGTH",
]
