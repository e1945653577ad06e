"""Our spans (``event.Span``) as OpenCensus ``trace.v1.Span`` protobuf bytes.

Runs on the exporter's thread, after a span ended: the caller only queued a
small object.  The bytes are written directly (as :mod:`.metrics` does for
metrics), with no protobuf message objects and no opencensus ``SpanData``.
A span here is anything with the attributes of ``event.Span`` (ids as ints,
times in ns, ``tags``, ``events``, ``dropped``, ``status``); a tag anything
with ``key.name`` and ``value``.  Tests parse the output with the generated
``trace_pb2`` classes.

What becomes what:

- tags -> attributes, typed: ``bool`` -> bool, an ``int`` in int64 range ->
  int, ``float`` -> double, ``str`` -> string, anything else (an error, a
  uint64 above 2**63-1, any other value) -> its ``str()`` as a string.  A
  later tag with the same key name wins.  At most :data:`MAX_ATTRIBUTES`
  keys per span or annotation (the first ones); the rest are counted in
  ``dropped_attributes_count``.
- strings (names, string attributes, annotation texts) longer than
  :data:`MAX_STRING_BYTES` UTF-8 bytes are cut at a character boundary;
  ``truncated_byte_count`` says how many bytes were cut.
- log events -> annotations: the description is the message (or, with no
  message, the error's text); an error next to a message is the attribute
  ``Error``, as Go's exporter sends it.  ``dropped_annotations_count``
  counts the events beyond ``event.MAX_EVENTS``.
- status -> ``Status{code, message}`` (set when an exception left
  ``with event.span(...)``).
"""

from __future__ import annotations

import logging
import struct
from typing import Any, Dict, Iterable, List, Optional, Tuple

from gotools_compat._wire.protobuf import INT64_MAX, INT64_MIN, MAX_REQUEST, field, varint

log = logging.getLogger(__name__)

MAX_STRING_BYTES = 4096
MAX_ATTRIBUTES = 32
_double = struct.Struct("<d").pack
_NS = 1_000_000_000


def as_text(value: Any) -> str:
    """``value`` as span text: str() of it, its type name if that raises, an
    exception's class name if its message is empty."""
    if isinstance(value, str):
        return value
    try:
        text = str(value)
    except Exception:  # a __str__ that raises: say what it was
        return "<%s>" % type(value).__name__
    if not text and isinstance(value, BaseException):
        return type(value).__name__
    return text


def truncatable(text: str) -> bytes:
    """The body of a ``TruncatableString``."""
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_STRING_BYTES:
        return field(0x0A, data) if data else b""
    kept = data[:MAX_STRING_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return field(0x0A, kept) + b"\x10" + varint(len(data) - len(kept))


def attribute_value(value: Any) -> bytes:
    """The body of an ``AttributeValue`` (a oneof: zero values are written)."""
    kind = value.__class__
    if kind is str:
        return field(0x0A, truncatable(value))
    if kind is bool:
        return b"\x18\x01" if value else b"\x18\x00"
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        if INT64_MIN <= value <= INT64_MAX:
            return b"\x10" + varint(int(value))
    elif kind is float:
        return b"\x21" + _double(value)
    return field(0x0A, truncatable(as_text(value)))


def _key_name(key: Any) -> str:
    name = getattr(key, "name", None)
    return name if isinstance(name, str) else as_text(key)


def attributes(tags: Iterable[Any], extra: Optional[Tuple[str, Any]] = None) -> bytes:
    """The body of an ``Attributes`` message for these tags (non-tags are skipped)."""
    found: Dict[str, Any] = {}
    dropped = 0
    for tag in tags:
        key = getattr(tag, "key", None)
        if key is None:
            _skip(tag)
            continue
        name = getattr(key, "name", None)
        if name.__class__ is not str:
            name = _key_name(key)
        if name not in found and len(found) >= MAX_ATTRIBUTES:
            dropped += 1
            continue
        found[name] = tag.value
    if extra is not None:
        found[extra[0]] = extra[1]
    if not found and not dropped:
        return b""
    parts = [_entry(name, value) for name, value in found.items()]
    if dropped:
        parts.append(b"\x10" + varint(dropped))
    return b"".join(parts)


# Map entries of common (name, value) pairs, encoded once.
_entries: Dict[Tuple[str, type, Any], bytes] = {}
_MAX_ENTRIES = 10_000


def _entry(name: str, value: Any) -> bytes:
    kind = value.__class__
    if (kind is str and len(value) <= 64) or kind is int or kind is bool:
        cache_key = (name, kind, value)
        found = _entries.get(cache_key)
        if found is None:
            if len(_entries) >= _MAX_ENTRIES:
                _entries.clear()
            found = _entries[cache_key] = field(0x0A, field(0x0A, name.encode(
                "utf-8", "replace")) + field(0x12, attribute_value(value)))
        return found
    return field(0x0A, field(0x0A, name.encode("utf-8", "replace"))
                 + field(0x12, attribute_value(value)))


_skipped = [False]


def _skip(thing: Any) -> None:
    if not _skipped[0]:
        _skipped[0] = True
        log.warning("a span or log event was given %s instead of a tag (key.of(value)); "
                    "it is left out of the attributes (logged once)", type(thing).__name__)


# The last second seen, encoded: spans come in bursts.  (One tuple, swapped whole.)
_seconds: Tuple[int, bytes] = (-1, b"")


def timestamp(ns: int) -> bytes:
    global _seconds
    seconds, nanos = divmod(ns, _NS)
    last = _seconds
    if seconds == last[0]:
        out = last[1]
    else:
        out = b"\x08" + varint(seconds) if seconds else b""
        _seconds = (seconds, out)
    if nanos:
        out += b"\x10" + varint(nanos)
    return out


def annotation(ev: Any) -> bytes:
    """One ``TimeEvent`` with an ``Annotation`` for a log event."""
    message = as_text(ev.message) if ev.message else ""
    error = ev.error
    extra = None
    if error is not None:
        if message:
            extra = ("Error", as_text(error))
        else:
            message = as_text(error)
    body = b""
    if message:
        body += field(0x0A, truncatable(message))
    attrs = attributes(ev.tags, extra)
    if attrs:
        body += field(0x12, attrs)
    return field(0x0A, field(0x0A, timestamp(ev.at_ns)) + field(0x12, body))


def encode(span: Any) -> bytes:
    """One ended span as serialized ``opencensus.proto.trace.v1.Span``."""
    out = [b"\x0a\x10", span.trace_id.to_bytes(16, "big"),
           b"\x12\x08", span.id.to_bytes(8, "big")]
    if span.parent_id:
        out.append(b"\x1a\x08")
        out.append(span.parent_id.to_bytes(8, "big"))
    out.append(field(0x22, truncatable(as_text(span.name))))
    out.append(field(0x2A, timestamp(span.start)))
    out.append(field(0x32, timestamp(span.end)))
    if span.tags:
        attrs = attributes(span.tags)
        if attrs:
            out.append(field(0x3A, attrs))
    events = span.events
    if events or span.dropped:
        body = b"".join([annotation(ev) for ev in list(events or ())])
        if span.dropped:
            body += b"\x10" + varint(span.dropped)
        out.append(field(0x4A, body))
    status = span.status
    if status is not None:
        code, message = status
        body = (b"\x08" + varint(code) if code else b"") + (
            field(0x12, message.encode("utf-8", "replace")[:MAX_STRING_BYTES])
            if message else b"")
        out.append(field(0x5A, body))
    return b"".join(out)


def requests(spans: Iterable[Any], first: Tuple[bytes, bytes],
             limit: int = MAX_REQUEST) -> List[bytes]:
    """``ExportTraceServiceRequest`` bodies under ``limit``: node, spans, resource.

    A span that cannot be encoded (a bug) is logged and left out.
    """
    node, resource = first
    out: List[bytes] = []
    parts: List[bytes] = [node]
    size = len(node) + len(resource)
    for span in spans:
        try:
            one = field(0x12, encode(span))
        except Exception:
            log.exception("span %r could not be encoded; it is not sent", span)
            continue
        if len(parts) > 1 and size + len(one) > limit:
            parts.append(resource)
            out.append(b"".join(parts))
            parts, size = [node], len(node) + len(resource)
        parts.append(one)
        size += len(one)
    if len(parts) > 1:
        parts.append(resource)
        out.append(b"".join(parts))
    return out
