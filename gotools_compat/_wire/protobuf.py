"""The protobuf wire format's primitives: varints, fields, timestamps."""

from __future__ import annotations

from typing import Any, Optional

from google.protobuf import timestamp_pb2

# gRPC refuses messages over 4 MiB by default; stay well below.
MAX_REQUEST = 3 * 1024 * 1024
# The range of protobuf's int64, the type of every int the wires carry.
INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1

# Varints below 2**14 are one table lookup; larger ones take 14 bits at a
# time from a second table (times in ns need five bytes a piece).
_SMALL = 1 << 14
_VARINTS = ([bytes((n,)) for n in range(0x80)]
            + [bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(0x80, _SMALL)])
_LOW = [bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80)) for n in range(_SMALL)]


def varint(n: int) -> bytes:
    """A varint; a negative ``n`` is an int64 (two's complement, ten bytes)."""
    if n < 0:
        n += 1 << 64
    if n < _SMALL:
        return _VARINTS[n]
    out = b""
    while n >= _SMALL:
        out += _LOW[n & 0x3FFF]
        n >>= 14
    return out + _VARINTS[n]


def field(tag: int, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` is the whole key byte (number << 3 | 2)."""
    n = len(payload)
    return b"%c%s%s" % (tag, _VARINTS[n] if n < _SMALL else varint(n), payload)


def string_field(tag: int, text: str) -> bytes:
    return field(tag, text.encode("utf-8")) if text else b""


def timestamp(seconds: int, nanos: int) -> bytes:
    """The body of a ``google.protobuf.Timestamp``."""
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds)
    if nanos:
        out += b"\x10" + varint(nanos)
    return out


def timestamp_from_datetime(dt: Any) -> bytes:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt)
    return timestamp(ts.seconds, ts.nanos)


def timestamp_from_iso(text: Optional[str]) -> bytes:
    """As the stock exporter reads a start time (an unparsable one is empty)."""
    ts = timestamp_pb2.Timestamp()
    if text is not None:
        try:
            ts.FromJsonString(text)
        except ValueError:
            pass
    return timestamp(ts.seconds, ts.nanos)
