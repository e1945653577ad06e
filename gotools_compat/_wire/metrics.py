"""A metric's rows as OpenCensus protobuf bytes, and request packing.

The stock ocagent exporter turns each series into an opencensus ``Metric``
object, then into protobuf messages.  Here a metric's rows go straight to the
serialized ``opencensus.proto.metrics.v1.Metric`` bytes: what is fixed per
metric (descriptor, bucket bounds, start time) and per row (label values) is
encoded once and cached, so a collection costs a row snapshot, two or three
``struct.pack`` calls and one ``join`` per series.

The output is byte for byte what protobuf serializes for the messages the
stock conversion (``opencensus.ext.ocagent.stats_exporter._get_metric_proto``
over ``get_metrics()``) builds from the same rows; tests/test_export_wire.py
checks it.  Field order, omitted defaults and set oneofs follow protobuf's
canonical serialization:

- a proto3 scalar equal to its default (0, 0.0, "", False) is omitted,
  except a member of a oneof (``Point.int64_value``/``double_value``);
- a sub-message that was set is written even when empty (a gauge's
  ``start_timestamp``, a ``LabelValue`` without value).

Rows come in as plain snapshots: ``(labels, value)`` pairs, or
``(labels, (counts, sum, min, max, sum of squared deviation))`` for a
histogram (what ``gotools_compat.metric.Registered`` yields).
"""

from __future__ import annotations

import math
import struct
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from gotools_compat._wire.protobuf import (MAX_REQUEST, field, string_field, timestamp_from_iso,
                                           varint)

_double = struct.Struct("<d").pack


def _double_field(key: bytes, v: float) -> bytes:
    # Omitted when +0.0; -0.0 has non-zero bits, so protobuf writes it.
    if v or math.copysign(1.0, v) < 0:
        return key + _double(v)
    return b""


# A Bucket{count} with its key and length, as a field of DistributionValue.
_BUCKET_TABLE = 4096


def _bucket_slow(count: int) -> bytes:
    body = b"\x08" + varint(count) if count else b""
    return field(0x2A, body)


_BUCKETS = [_bucket_slow(c) for c in range(_BUCKET_TABLE)]
_bucket_at = _BUCKETS.__getitem__


def _buckets(counts: List[int]) -> bytes:
    try:
        return b"".join(map(_bucket_at, counts))
    except IndexError:
        return b"".join([_BUCKETS[c] if 0 <= c < _BUCKET_TABLE else _bucket_slow(c)
                         for c in counts])


def label_values(labels: Sequence[Optional[str]]) -> bytes:
    out = []
    for value in labels:
        if value is None:
            out.append(b"\x12\x00")
        else:
            out.append(field(0x12, string_field(0x0A, value) + b"\x10\x01"))
    return b"".join(out)


def descriptor(name: str, description: str, unit: str, type_: int,
               columns: Sequence[str]) -> bytes:
    """A ``MetricDescriptor`` body; label keys without description, as the stock view does."""
    body = (string_field(0x0A, name) + string_field(0x12, description)
            + string_field(0x1A, unit) + (b"\x20" + varint(type_) if type_ else b""))
    for column in columns:
        body += field(0x2A, string_field(0x0A, column))
    return body


def bucket_options(bounds: Iterable[float]) -> bytes:
    packed = b"".join(_double(float(b)) for b in bounds)
    explicit = field(0x0A, packed) if packed else b""
    return field(0x22, field(0x0A, explicit))


Labels = Tuple[Optional[str], ...]


class MetricEncoder:
    """Encodes one metric's rows; caches what does not change between exports.

    ``start_time`` (ISO text) is the series' start, fixed for the life of the
    encoder; None for a gauge, which has none (the stock conversion sets an
    empty one).  ``bounds``: a histogram's bucket bounds, None otherwise.
    """

    __slots__ = ("descriptor_field", "start", "bounds", "_labels")

    def __init__(self, name: str, description: str, unit: str, type_: int,
                 columns: Sequence[str], start_time: Optional[str],
                 bounds: Optional[Sequence[float]] = None) -> None:
        self.descriptor_field = field(0x0A, descriptor(name, description, unit, type_, columns))
        self.start = field(0x0A, b"" if start_time is None else timestamp_from_iso(start_time))
        self.bounds = bucket_options(bounds) if bounds is not None else b""
        self._labels: Dict[Labels, bytes] = {}

    def series(self, point_ts: bytes, rows: Iterable[Tuple[Labels, Any]]) -> Iterator[bytes]:
        """Each ``(labels, value)`` row as a ``Metric.timeseries`` field (key, length, body).

        ``point_ts`` is the ``Point.timestamp`` field, shared by every point;
        an int value must fit an int64.
        """
        cache = self._labels
        start = self.start
        for row_labels, value in rows:
            if type(value) is int:
                point = point_ts + b"\x10" + varint(value)
            else:
                point = point_ts + b"\x19" + _double(value)
            labels = cache.get(row_labels)
            if labels is None:
                labels = cache[row_labels] = label_values(row_labels)
            yield field(0x12, start + labels + field(0x1A, point))

    def histogram_series(self, point_ts: bytes,
                         rows: Iterable[Tuple[Labels, Tuple[Any, ...]]]) -> Iterator[bytes]:
        """Each ``(labels, (counts, sum, min, max, ssd))`` row as a ``Metric.timeseries`` field."""
        cache = self._labels
        start = self.start
        bounds = self.bounds
        for row_labels, (counts, total, _lo, _hi, m2) in rows:
            count = sum(counts)
            dist = b"".join((
                b"\x08" + varint(count) if count else b"",
                _double_field(b"\x11", float(total)),
                _double_field(b"\x19", m2),
                bounds,
                _buckets(counts),
            ))
            point = point_ts + field(0x22, dist)
            labels = cache.get(row_labels)
            if labels is None:
                labels = cache[row_labels] = label_values(row_labels)
            yield field(0x12, start + labels + field(0x1A, point))


def requests(metrics: Iterable[Tuple[bytes, Iterable[bytes]]], first: bytes = b"",
             trailer: bytes = b"", limit: int = MAX_REQUEST) -> List[bytes]:
    """Pack metrics into ``ExportMetricsServiceRequest`` bodies of at most ``limit`` bytes.

    ``metrics`` are ``(descriptor field, series fields)`` pairs; a metric
    whose series do not fit is split into several ``Metric`` messages with
    the same descriptor.  A pair with an empty descriptor field carries whole
    ``Metric`` bodies instead (not split).  The first request is ``first``
    (the ``node`` field), its metrics, then ``trailer`` (the ``resource``
    field): protobuf's own field order.  A metric without series is left out,
    as the stock conversion does.  Only a single series larger than
    ``limit`` makes a larger request.
    """
    out: List[bytes] = []
    parts: List[bytes] = [first] if first else []
    size = len(first) + len(trailer)

    def close() -> None:
        nonlocal parts, size
        out.append(b"".join(parts))
        parts, size = [], 0

    for descriptor_field, series in metrics:
        if not descriptor_field:
            for body in series:
                whole = field(0x12, body)
                if parts and size + len(whole) > limit:
                    close()
                parts.append(whole)
                size += len(whole)
            continue
        chunk: List[bytes] = []
        chunk_size = len(descriptor_field) + 16
        for one in series:
            if size + chunk_size + len(one) > limit and (chunk or parts):
                if chunk:
                    parts.append(_metric_field(descriptor_field, chunk))
                close()
                chunk, chunk_size = [], len(descriptor_field) + 16
            chunk.append(one)
            chunk_size += len(one)
        if chunk:
            metric = _metric_field(descriptor_field, chunk)
            parts.append(metric)
            size += len(metric)
    if parts or not out:
        close()
    if trailer:
        out[0] += trailer
    return out


def _metric_field(descriptor_field: bytes, chunk: List[bytes]) -> bytes:
    chunk.insert(0, descriptor_field)
    return field(0x12, b"".join(chunk))
