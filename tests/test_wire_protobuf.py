"""gotools_compat._wire.protobuf: varints, fields and timestamps, directly (no sockets).

The oracle is protobuf itself: the same values set on real messages (the
well-known wrappers and Timestamp, opencensus-proto's ``Point``) and
serialized with ``SerializeToString()``, or our bytes parsed back with
``FromString()``.
"""

from __future__ import annotations

import calendar
import datetime
from typing import Optional

import pytest
from google.protobuf import timestamp_pb2, wrappers_pb2

from gotools_compat._oc import proto
from gotools_compat._wire import protobuf

proto.install()

from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

# Around each byte boundary of a varint (7 bits a byte) and the encoder's
# 14-bit table steps, up to the int64 maximum.
VARINT_EDGES = sorted({0, 1, 2, 127, 128, 129, 255, 300, 2 ** 14 - 1, 2 ** 14, 2 ** 14 + 1}
                      | {2 ** k + d for k in range(21, 63, 7) for d in (-1, 0, 1)}
                      | {2 ** 28 - 1, 2 ** 28, 2 ** 42, 2 ** 56, 2 ** 62, 2 ** 63 - 2,
                         2 ** 63 - 1})


def _point_int64(n: int) -> bytes:
    # Point.int64_value (field 2) is a oneof member: protobuf writes it even when 0.
    data: bytes = metrics_pb2.Point(int64_value=n).SerializeToString()
    return data


@pytest.mark.parametrize("n", VARINT_EDGES)
def test_a_varint_is_what_protobuf_writes_for_an_int64(n: int) -> None:
    assert b"\x10" + protobuf.varint(n) == _point_int64(n)
    assert wrappers_pb2.Int64Value.FromString(b"\x08" + protobuf.varint(n)).value == n


def test_varint_bytes_at_the_seven_bit_boundaries_and_for_minus_one() -> None:
    assert protobuf.varint(0) == b"\x00"
    assert protobuf.varint(1) == b"\x01"
    assert protobuf.varint(127) == b"\x7f"
    assert protobuf.varint(128) == b"\x80\x01"
    assert protobuf.varint(300) == b"\xac\x02"  # the protobuf documentation's example
    assert protobuf.varint(2 ** 14) == b"\x80\x80\x01"
    assert protobuf.varint(2 ** 63 - 1) == b"\xff" * 8 + b"\x7f"
    assert protobuf.varint(-1) == b"\xff" * 9 + b"\x01"
    for k in range(1, 64):
        assert len(protobuf.varint(2 ** k - 1)) == -(-k // 7)


def test_every_varint_below_two_to_the_sixteen_matches_protobuf() -> None:
    # Both of the encoder's tables (n < 2**14, and 14-bit groups above) in full.
    for n in range(2 ** 16):
        assert b"\x10" + protobuf.varint(n) == _point_int64(n), n


@pytest.mark.parametrize("n", [-1, -2, -127, -128, -2 ** 31, -2 ** 62, -2 ** 63 + 1, -2 ** 63])
def test_a_negative_varint_is_an_int64_in_ten_bytes(n: int) -> None:
    encoded = protobuf.varint(n)
    assert len(encoded) == 10
    assert b"\x10" + encoded == _point_int64(n)
    assert wrappers_pb2.Int64Value.FromString(b"\x08" + encoded).value == n
    # The same bytes read as a uint64 are the two's complement.
    assert wrappers_pb2.UInt64Value.FromString(b"\x08" + encoded).value == n + 2 ** 64


@pytest.mark.parametrize("n", [2 ** 63, 2 ** 64 - 2, 2 ** 64 - 1])
def test_a_varint_past_int64_is_written_as_a_uint64(n: int) -> None:
    data = wrappers_pb2.UInt64Value(value=n).SerializeToString()
    assert b"\x08" + protobuf.varint(n) == data


@pytest.mark.parametrize("size", [0, 1, 127, 128, 2 ** 14 - 1, 2 ** 14, 2 ** 14 + 1, 300_000])
def test_a_length_delimited_field_has_the_key_byte_and_a_varint_length(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert len(payload) == size
    ours = protobuf.field(0x0A, payload)
    assert ours == b"\x0a" + protobuf.varint(size) + payload
    if size:  # (protobuf leaves an empty proto3 bytes value out)
        assert ours == wrappers_pb2.BytesValue(value=payload).SerializeToString()
    assert wrappers_pb2.BytesValue.FromString(ours).value == payload


def test_an_empty_field_is_still_written_as_a_set_sub_message() -> None:
    # Point.timestamp (field 1) set but empty: the key and a zero length.
    point = metrics_pb2.Point()
    point.timestamp.SetInParent()
    assert protobuf.field(0x0A, b"") == b"\x0a\x00" == point.SerializeToString()
    # Another field number: TimeSeries.label_values (2), an empty LabelValue.
    series = metrics_pb2.TimeSeries(label_values=[metrics_pb2.LabelValue()])
    assert protobuf.field(0x12, b"") == series.SerializeToString()


@pytest.mark.parametrize("text", [
    "a", "route", "/b\u00e9", "\u20ac\u00e9\u00fc", "\U0001f600 emoji", "tab\tnew\nline",
    "nul\x00inside", "x" * 200,
])
def test_a_string_field_is_utf8_as_protobuf_writes_it(text: str) -> None:
    ours = protobuf.string_field(0x0A, text)
    assert ours == wrappers_pb2.StringValue(value=text).SerializeToString()
    assert wrappers_pb2.StringValue.FromString(ours).value == text
    encoded = text.encode("utf-8")  # the length counts bytes, not characters
    assert ours == b"\x0a" + protobuf.varint(len(encoded)) + encoded


def test_an_empty_string_field_is_left_out() -> None:
    assert protobuf.string_field(0x0A, "") == b""
    assert wrappers_pb2.StringValue(value="").SerializeToString() == b""


@pytest.mark.parametrize("seconds, nanos", [
    (0, 0), (1, 0), (0, 1), (0, 999_999_999), (1715934612, 345678000),
    (-1, 500_000_000), (-62135596800, 0), (253402300799, 999_999_999),
])
def test_a_timestamp_body_is_what_protobuf_writes(seconds: int, nanos: int) -> None:
    ours = protobuf.timestamp(seconds, nanos)
    assert ours == timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos).SerializeToString()
    parsed = timestamp_pb2.Timestamp.FromString(ours)
    assert (parsed.seconds, parsed.nanos) == (seconds, nanos)


def test_a_zero_timestamp_is_empty_and_zero_parts_are_left_out() -> None:
    assert protobuf.timestamp(0, 0) == b""
    assert protobuf.timestamp(5, 0) == b"\x08\x05"
    assert protobuf.timestamp(0, 5) == b"\x10\x05"


def test_a_naive_datetime_is_read_as_utc_and_an_aware_one_is_converted() -> None:
    dt = datetime.datetime(2024, 5, 17, 8, 30, 12, 345678)
    parsed = timestamp_pb2.Timestamp.FromString(protobuf.timestamp_from_datetime(dt))
    assert parsed.seconds == calendar.timegm((2024, 5, 17, 8, 30, 12)) == 1715934612
    assert parsed.nanos == 345678000
    tz = datetime.timezone(datetime.timedelta(hours=2))
    aware = datetime.datetime(2024, 5, 17, 10, 30, 12, 5, tz)
    parsed = timestamp_pb2.Timestamp.FromString(protobuf.timestamp_from_datetime(aware))
    assert (parsed.seconds, parsed.nanos) == (1715934612, 5000)


def test_a_datetime_before_the_epoch_has_negative_seconds_and_positive_nanos() -> None:
    dt = datetime.datetime(1969, 12, 31, 23, 59, 59, 250000)
    ours = protobuf.timestamp_from_datetime(dt)
    assert ours == timestamp_pb2.Timestamp(seconds=-1, nanos=250_000_000).SerializeToString()
    assert protobuf.timestamp_from_datetime(datetime.datetime(1970, 1, 1)) == b""


@pytest.mark.parametrize("text, seconds, nanos", [
    ("2024-05-17T08:30:12Z", 1715934612, 0),
    ("2024-05-17T08:30:12.345678Z", 1715934612, 345678000),
    ("2024-05-17T08:30:12.000000001Z", 1715934612, 1),
    ("2024-05-17T10:30:12+02:00", 1715934612, 0),
    ("2024-05-17T07:00:12.5-01:30", 1715934612, 500_000_000),
    ("1969-12-31T23:59:59.75Z", -1, 750_000_000),
])
def test_an_iso_start_time_is_parsed_to_seconds_and_nanos(text: str, seconds: int,
                                                           nanos: int) -> None:
    ours = protobuf.timestamp_from_iso(text)
    assert ours == timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos).SerializeToString()


@pytest.mark.parametrize("text", [
    None, "", "yesterday", "2024-05-17T08:30:12", "2024-13-01T00:00:00Z",
    "2024-05-17 08:30:12Z", "2024-05-17T08:30:12.1234567891Z", "1970-01-01T00:00:00Z",
])
def test_a_missing_unparsable_or_epoch_start_time_is_empty(text: Optional[str]) -> None:
    assert protobuf.timestamp_from_iso(text) == b""
