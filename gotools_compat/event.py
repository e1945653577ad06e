"""Typed keys, tags and contexts, as in Go's ``telemetry/event`` package.

Keys are compared by identity, like Go's: two libraries that both make a key
named "method" never collide.  A :class:`Context` is an immutable set of tag
values; :func:`label` returns a new one, as Go's ``event.Label`` returns a new
``context.Context``.  Metrics read the values of their keys from the context
given to ``record``; ``record(None, v)`` reads the ambient opencensus tag map
instead (see :mod:`gotools_compat.stats`).

Threads and executors: a :class:`Context` is a plain immutable object, pass it
along.  The ambient opencensus tags live in a ``contextvars`` slot that plain
threads do not inherit (E14); wrap the function you hand to a thread or
executor with opencensus's own ``RuntimeContext.with_current_context(fn)``.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
import time
from typing import (Any, Callable, Dict, Generic, Iterable, List, Optional, Tuple, TypeVar,
                    Union)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Limits opencensus puts on tag keys and values (opencensus.tags.validation).
MAX_LABEL_LENGTH = 255


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError("key name must be a str, not %s" % type(name).__name__)
    if not 0 < len(name) <= MAX_LABEL_LENGTH or not all(32 <= ord(c) <= 126 for c in name):
        raise ValueError(
            "key name %r is not a valid opencensus tag key: it must be 1 to 255 printable "
            "ASCII characters" % (name,))
    return name


class Key(Generic[T]):
    """A key for values of any type (Go's ``event.NewKey``).

    ``key.of(v)`` makes a :class:`Tag`; ``key.get(tags)`` reads it back.
    As a metric dimension the value is shown as ``str(v)``.
    """

    __slots__ = ("name", "description", "_warned")
    kind = "value"

    def __init__(self, name: str, description: str = "") -> None:
        self.name = _check_name(name)
        if not isinstance(description, str):
            raise TypeError("key description must be a str")
        self.description = description
        self._warned = False

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.name)

    def _check(self, value: Any) -> T:
        return value  # type: ignore[no-any-return]

    def _format(self, value: Any) -> str:
        return str(value)

    def of(self, value: T) -> "Tag":
        """A tag with this key and ``value``; a value of the wrong type is a TypeError."""
        return Tag(self, self._check(value))

    def get(self, tags: Union["Context", Iterable["Tag"], None]) -> Optional[T]:
        """The value this key has in ``tags`` (a tag list or a Context), or None."""
        if tags is None:
            return None
        if isinstance(tags, Context):
            return tags._values.get(self)
        for tag in tags:
            if tag.key is self:
                return tag.value  # type: ignore[no-any-return]
        return None

    def label(self, value: Any) -> str:
        """The label value (a str) that ``value`` becomes in a metric row.

        Values longer than 255 characters (opencensus's limit for tag values)
        are cut to 255, with one warning per key.
        """
        text = self._format(value)
        if len(text) > MAX_LABEL_LENGTH:
            if not self._warned:
                self._warned = True
                logger.warning("values of key %r are longer than %d characters; they are cut "
                            "to %d in metric rows", self.name, MAX_LABEL_LENGTH,
                            MAX_LABEL_LENGTH)
            text = text[:MAX_LABEL_LENGTH]
        return text


class StringKey(Key[str]):
    __slots__ = ()
    kind = "string"

    def _check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("%r takes a str, not %s" % (self, type(value).__name__))
        return value

    def _format(self, value: Any) -> str:
        return value  # type: ignore[no-any-return]


class _IntegerKey(Key[int]):
    __slots__ = ()
    low = -(2 ** 63)
    high = 2 ** 63 - 1

    def _check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("%r takes an int, not %s" % (self, type(value).__name__))
        if not self.low <= value <= self.high:
            raise ValueError("%r takes values in [%d, %d], not %d"
                             % (self, self.low, self.high, value))
        return int(value)


def _integer_key(name: str, bits: int, signed: bool) -> type:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return type(name, (_IntegerKey,), {"__slots__": (), "low": low, "high": high,
                                       "kind": name[:-3].lower()})


IntKey = _integer_key("IntKey", 64, True)
Int8Key = _integer_key("Int8Key", 8, True)
Int16Key = _integer_key("Int16Key", 16, True)
Int32Key = _integer_key("Int32Key", 32, True)
Int64Key = _integer_key("Int64Key", 64, True)
UIntKey = _integer_key("UIntKey", 64, False)
UInt8Key = _integer_key("UInt8Key", 8, False)
UInt16Key = _integer_key("UInt16Key", 16, False)
UInt32Key = _integer_key("UInt32Key", 32, False)
UInt64Key = _integer_key("UInt64Key", 64, False)


class FloatKey(Key[float]):
    """Float32 and Float64 keys; ints are accepted and become floats."""

    __slots__ = ()
    kind = "float64"

    def _check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("%r takes a float, not %s" % (self, type(value).__name__))
        return float(value)

    def _format(self, value: Any) -> str:
        # Go prints 2.0 as "2": integral values print without the ".0".
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)


class BooleanKey(Key[bool]):
    __slots__ = ()
    kind = "boolean"

    def _check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError("%r takes a bool, not %s" % (self, type(value).__name__))
        return value

    def _format(self, value: Any) -> str:
        return "true" if value else "false"


class ErrorKey(Key[BaseException]):
    __slots__ = ()
    kind = "error"

    def _check(self, value: Any) -> BaseException:
        if not isinstance(value, BaseException):
            raise TypeError("%r takes an exception, not %s" % (self, type(value).__name__))
        return value


def new_key(name: str, description: str = "") -> Key[Any]:
    return Key(name, description)


def new_string_key(name: str, description: str = "") -> StringKey:
    return StringKey(name, description)


def new_int_key(name: str, description: str = "") -> Key[int]:
    return IntKey(name, description)  # type: ignore[no-any-return]


def new_int8_key(name: str, description: str = "") -> Key[int]:
    return Int8Key(name, description)  # type: ignore[no-any-return]


def new_int16_key(name: str, description: str = "") -> Key[int]:
    return Int16Key(name, description)  # type: ignore[no-any-return]


def new_int32_key(name: str, description: str = "") -> Key[int]:
    return Int32Key(name, description)  # type: ignore[no-any-return]


def new_int64_key(name: str, description: str = "") -> Key[int]:
    return Int64Key(name, description)  # type: ignore[no-any-return]


def new_uint_key(name: str, description: str = "") -> Key[int]:
    return UIntKey(name, description)  # type: ignore[no-any-return]


def new_uint8_key(name: str, description: str = "") -> Key[int]:
    return UInt8Key(name, description)  # type: ignore[no-any-return]


def new_uint16_key(name: str, description: str = "") -> Key[int]:
    return UInt16Key(name, description)  # type: ignore[no-any-return]


def new_uint32_key(name: str, description: str = "") -> Key[int]:
    return UInt32Key(name, description)  # type: ignore[no-any-return]


def new_uint64_key(name: str, description: str = "") -> Key[int]:
    return UInt64Key(name, description)  # type: ignore[no-any-return]


def new_float32_key(name: str, description: str = "") -> FloatKey:
    return FloatKey(name, description)


def new_float64_key(name: str, description: str = "") -> FloatKey:
    return FloatKey(name, description)


def new_boolean_key(name: str, description: str = "") -> BooleanKey:
    return BooleanKey(name, description)


def new_error_key(name: str, description: str = "") -> ErrorKey:
    return ErrorKey(name, description)


class Tag:
    """A key and its value (Go's ``event.Tag``)."""

    __slots__ = ("key", "value")

    def __init__(self, key: Key[Any], value: Any) -> None:
        self.key = key
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tag) and other.key is self.key and other.value == self.value

    def __hash__(self) -> int:
        return hash((id(self.key), self.value))

    def __repr__(self) -> str:
        return "Tag(%s=%r)" % (self.key.name, self.value)

    def __str__(self) -> str:
        return "%s=%s" % (self.key.name, self.value)


class Context:
    """An immutable set of tag values, the Python form of a Go ``context.Context``.

    Make one with :func:`label`; start from :func:`background` or :func:`todo`.
    """

    __slots__ = ("_values", "_rows", "_span")

    def __init__(self, values: Optional[Dict[Key[Any], Any]] = None,
                 span: "Optional[Span]" = None) -> None:
        self._values: Dict[Key[Any], Any] = values if values is not None else {}
        # metric recorder -> its row for this context (filled by the recorders;
        # valid forever because the context never changes).  Contexts with the
        # same values (a span's context and its parent's) share one dict.
        self._rows: Dict[Any, Any] = {}
        # The span this context is in (see start_span), or None.
        self._span = span

    def value(self, key: Key[T]) -> Optional[T]:
        """The value of ``key`` in this context, or None."""
        return self._values.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return "Context(%s)" % ", ".join("%s=%r" % (k.name, v) for k, v in self._values.items())

    def labels(self, keys: Tuple[Key[Any], ...]) -> Tuple[Optional[str], ...]:
        """The row labels of ``keys`` in this context: a str, or None where missing."""
        values = self._values
        return tuple(key.label(values[key]) if key in values else None for key in keys)


_BACKGROUND = Context()


def background() -> Context:
    """The empty root context (Go's ``context.Background()``)."""
    return _BACKGROUND


def todo() -> Context:
    """The empty root context (Go's ``context.TODO()``)."""
    return _BACKGROUND


def label(ctx: Optional[Context], *tags: Tag) -> Context:
    """A context holding ``ctx``'s values plus ``tags`` (later tags win)."""
    if ctx is not None and not isinstance(ctx, Context):
        raise TypeError("label() takes a Context, not %s" % type(ctx).__name__)
    base = ctx._values if ctx is not None else {}
    if not tags and ctx is not None:
        return ctx
    values = dict(base)
    for tag in tags:
        if not isinstance(tag, Tag):
            raise TypeError("label() takes tags made by key.of(value), not %s"
                            % type(tag).__name__)
        values[tag.key] = tag.value
    return Context(values, ctx._span if ctx is not None else None)


def query(ctx: Optional[Context], *keys: Key[Any]) -> List[Tag]:
    """The tags that ``ctx`` holds for ``keys``, in order; a missing key gives value None."""
    values = ctx._values if ctx is not None else {}
    return [Tag(key, values.get(key)) for key in keys]


# Spans and log events (Go's event.StartSpan, Log, Print, Error, Detach).

LOG = "log"
START_SPAN = "start_span"
END_SPAN = "end_span"
LABEL = "label"

_NS = 1_000_000_000


def _ns_to_datetime(ns: int) -> datetime.datetime:
    seconds, rest = divmod(ns, _NS)
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(
        microsecond=rest // 1000)


class Event:
    """One event (Go's ``event.Event``): a log line, a span start or end, a label.

    ``kind`` is one of :data:`LOG`, :data:`START_SPAN`, :data:`END_SPAN`,
    :data:`LABEL`; ``at`` is when it happened (the events made here carry an
    aware UTC datetime, made only when read).  For span events ``message`` is
    the span name and :func:`get_span` of the context gives the span.
    Treat an event as immutable.
    """

    __slots__ = ("kind", "_at", "message", "error", "tags")

    def __init__(self, kind: str, at: Union[datetime.datetime, int], message: str = "",
                 error: Optional[BaseException] = None, tags: Tuple[Tag, ...] = ()) -> None:
        self.kind = kind
        self._at = at  # a datetime, or ns since the epoch until read
        self.message = message
        self.error = error
        self.tags = tags

    @property
    def at(self) -> datetime.datetime:
        at = self._at
        if isinstance(at, int):
            at = self._at = _ns_to_datetime(at)
        return at

    @property
    def at_ns(self) -> int:
        """``at`` in nanoseconds since the epoch."""
        at = self._at
        if isinstance(at, int):
            return at
        if at.tzinfo is None:
            at = at.replace(tzinfo=datetime.timezone.utc)
        delta = at - _EPOCH
        return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000

    def is_log(self) -> bool:
        return self.kind == LOG

    def is_start_span(self) -> bool:
        return self.kind == START_SPAN

    def is_end_span(self) -> bool:
        return self.kind == END_SPAN

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Event) and other.kind == self.kind and other.at == self.at
                and other.message == self.message and other.error is self.error
                and other.tags == self.tags)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Event(%r, %r, %r, %r, %r)" % (self.kind, self.at, self.message, self.error,
                                              self.tags)

    def __str__(self) -> str:
        # Go's Event.Format: time (local), message, ": " error, then the tags.
        at = self.at
        if at.tzinfo is not None:
            at = at.astimezone()
        text = at.strftime("%Y/%m/%d %H:%M:%S ") + str(self.message)
        if self.error is not None:
            text += ": " if self.message else ""
            text += str(self.error) or type(self.error).__name__
        for tag in self.tags:
            text += "\n\t%s" % (tag,)
        return text


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# ``_process_event(ctx, ev) -> ctx`` hands an event to the process-wide
# exporter.  gotools_compat.export installs its process_event here when it is
# imported; until then the first event imports it.  (event must not import
# export at import time: export imports event.)


def _bootstrap_process_event(ctx: Context, ev: Event) -> Context:
    import gotools_compat.export  # noqa: F401  (installs _process_event)

    return _process_event(ctx, ev)


_process_event: Callable[[Context, Event], Context] = _bootstrap_process_event


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
    found = _tracing.ambient()  # None, or (sampled, trace_id, parent_id, span context)
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
