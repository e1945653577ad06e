"""gotools_compat._wire.metrics: rows as opencensus Metric bytes, and request packing, directly.

No sockets and no registry: plain rows in, bytes out.  The oracle is
opencensus-proto's generated classes (rebuilt by ``gotools_compat._oc.proto``):
the same metric built as messages and serialized with ``SerializeToString()``,
or our bytes parsed back with ``FromString()``.  tests/test_export_wire.py
compares against the stock opencensus conversion from recorded views; here
the encoder's inputs are chosen directly (int64 limits, odd doubles, empty
and non-ASCII labels, empty histograms, the packing limit).
"""

from __future__ import annotations

import math
import struct
from typing import Any, List, Optional, Sequence, Tuple

import pytest
from google.protobuf import timestamp_pb2

from gotools_compat._oc import proto
from gotools_compat._wire import metrics as wire

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402

Request = metrics_service_pb2.ExportMetricsServiceRequest
Descriptor = metrics_pb2.MetricDescriptor

NOW = timestamp_pb2.Timestamp(seconds=1715934612, nanos=345678000)
# Point.timestamp (field 1), as the exporter passes it: the same for every point.
POINT_TS = metrics_pb2.Point(timestamp=NOW).SerializeToString()
START_ISO = "2024-05-17T08:00:00.5Z"
START = timestamp_pb2.Timestamp(seconds=1715932800, nanos=500_000_000)

Labels = Tuple[Optional[str], ...]


def _descriptor(name: str, description: str, unit: str, type_: int,
                columns: Sequence[str]) -> Any:
    return Descriptor(name=name, description=description, unit=unit, type=type_,
                      label_keys=[metrics_pb2.LabelKey(key=c) for c in columns])


def _add_series(metric: Any, labels: Labels, start: Optional[Any]) -> Any:
    ts = metric.timeseries.add()
    if start is None:
        ts.start_timestamp.SetInParent()  # set, empty: what the stock gauge conversion does
    else:
        ts.start_timestamp.CopyFrom(start)
    for value in labels:
        if value is None:
            ts.label_values.add()
        else:
            ts.label_values.add(value=value, has_value=True)
    point = ts.points.add()
    point.timestamp.CopyFrom(NOW)
    return point


def _encoded(encoder: wire.MetricEncoder, rows: List[Tuple[Labels, Any]],
             histogram: bool = False) -> bytes:
    series = (encoder.histogram_series(POINT_TS, rows) if histogram
              else encoder.series(POINT_TS, rows))
    return encoder.descriptor_field + b"".join(series)


# label_values, descriptor, bucket_options.

def test_label_values_are_set_or_missing_as_protobuf_writes_them() -> None:
    labels = (None, "", "a", "/b\u00e9", "\U0001f600", None)
    oracle = metrics_pb2.TimeSeries()
    for value in labels:
        oracle.label_values.add(**({} if value is None else {"value": value, "has_value": True}))
    ours = wire.label_values(labels)
    assert ours == oracle.SerializeToString()
    # A missing value is an empty LabelValue; an empty one is has_value=true only.
    assert ours.startswith(b"\x12\x00\x12\x02\x10\x01")
    parsed = metrics_pb2.TimeSeries.FromString(ours)
    assert [(lv.has_value, lv.value) for lv in parsed.label_values] == [
        (False, ""), (True, ""), (True, "a"), (True, "/b\u00e9"), (True, "\U0001f600"),
        (False, "")]
    assert wire.label_values(()) == b""


@pytest.mark.parametrize("name, description, unit, type_, columns", [
    ("go.opencensus.io/http/latency", "request latency", "ms",
     Descriptor.CUMULATIVE_DISTRIBUTION, ["method", "route"]),
    ("m", "", "", Descriptor.UNSPECIFIED, []),  # every default left out: an empty body
    ("r\u00e9ponses", "d\u00e9lai \u20ac", "\u00b5s", Descriptor.GAUGE_DOUBLE, ["cl\u00e9"]),
    ("c", "d", "1", Descriptor.SUMMARY, [""]),  # an empty key is still a LabelKey
    ("", "", "", Descriptor.UNSPECIFIED, []),
])
def test_a_descriptor_body_is_what_protobuf_writes(name: str, description: str, unit: str,
                                                   type_: int, columns: List[str]) -> None:
    ours = wire.descriptor(name, description, unit, type_, columns)
    oracle = _descriptor(name, description, unit, type_, columns)
    assert ours == oracle.SerializeToString()
    assert (ours == b"") == (not (name or columns))
    parsed = Descriptor.FromString(ours)
    assert (parsed.name, parsed.description, parsed.unit, parsed.type) == (
        name, description, unit, type_)
    assert [lk.key for lk in parsed.label_keys] == columns
    assert all(lk.description == "" for lk in parsed.label_keys)


@pytest.mark.parametrize("bounds", [
    [0.5, 1.0, 2.5], [-5, 0, 1, 10**6], [-0.0, 1e-300, 1.7976931348623157e308, math.inf], [],
])
def test_bucket_options_are_packed_doubles_as_protobuf_writes_them(bounds: List[float]) -> None:
    oracle = metrics_pb2.DistributionValue()
    oracle.bucket_options.explicit.SetInParent()  # set even without bounds
    oracle.bucket_options.explicit.bounds.extend(bounds)
    ours = wire.bucket_options(bounds)
    assert ours == oracle.SerializeToString()
    parsed = metrics_pb2.DistributionValue.FromString(ours).bucket_options.explicit.bounds
    assert [struct.pack("<d", b) for b in parsed] == [struct.pack("<d", b) for b in bounds]


# MetricEncoder.series: int64 and double points.

INT_ROWS: List[Tuple[Labels, Any]] = [
    (("a", "x"), 0), (("b\u00e9", "x"), 1), ((None, "x"), 127), (("", "x"), 128),
    (("a", None), 2 ** 63 - 1), (("c", "x"), -1), (("d", "x"), -2 ** 63),
]


def test_int_rows_match_the_messages_with_int64_points_even_when_zero() -> None:
    encoder = wire.MetricEncoder("requests", "count of requests", "1",
                                 Descriptor.CUMULATIVE_INT64, ["route", "code"], START_ISO)
    oracle = metrics_pb2.Metric(metric_descriptor=_descriptor(
        "requests", "count of requests", "1", Descriptor.CUMULATIVE_INT64, ["route", "code"]))
    for labels, value in INT_ROWS:
        _add_series(oracle, labels, START).int64_value = value
    ours = _encoded(encoder, INT_ROWS)
    assert ours == oracle.SerializeToString()
    parsed = metrics_pb2.Metric.FromString(ours)
    assert [ts.points[0].WhichOneof("value") for ts in parsed.timeseries] == ["int64_value"] * 7
    assert [ts.points[0].int64_value for ts in parsed.timeseries] == [v for _, v in INT_ROWS]
    assert all(ts.start_timestamp == START for ts in parsed.timeseries)
    assert all(ts.points[0].timestamp == NOW for ts in parsed.timeseries)


DOUBLES = [0.0, -0.0, 1.5, -3.25, 0.1, 5e-324, 1.7976931348623157e308, math.inf, -math.inf,
           math.nan, 2.0 ** 70]


def test_float_rows_match_the_messages_with_double_points_bit_for_bit() -> None:
    encoder = wire.MetricEncoder("latest", "", "ms", Descriptor.GAUGE_DOUBLE, ["k"], None)
    rows: List[Tuple[Labels, Any]] = [(("v%d" % i,), v) for i, v in enumerate(DOUBLES)]
    oracle = metrics_pb2.Metric(metric_descriptor=_descriptor(
        "latest", "", "ms", Descriptor.GAUGE_DOUBLE, ["k"]))
    for labels, value in rows:
        _add_series(oracle, labels, None).double_value = value
    ours = _encoded(encoder, rows)
    assert ours == oracle.SerializeToString()
    parsed = metrics_pb2.Metric.FromString(ours)
    points = [ts.points[0] for ts in parsed.timeseries]
    # A oneof member: 0.0 is written too; -0.0 and NaN keep their bits.
    assert [p.WhichOneof("value") for p in points] == ["double_value"] * len(DOUBLES)
    assert [struct.pack("<d", p.double_value) for p in points] == [
        struct.pack("<d", v) for v in DOUBLES]


@pytest.mark.parametrize("start_time, start", [
    (None, timestamp_pb2.Timestamp()),  # a gauge: set, empty (the stock conversion's)
    ("not a time", timestamp_pb2.Timestamp()),  # unparsable: as the stock exporter reads it
    ("1970-01-01T00:00:00Z", timestamp_pb2.Timestamp()),
    ("2024-05-17T10:00:00.5+02:00", START),
    (START_ISO, START),
])
def test_the_start_timestamp_is_parsed_once_and_always_set(start_time: Optional[str],
                                                           start: Any) -> None:
    encoder = wire.MetricEncoder("c", "", "", Descriptor.CUMULATIVE_DOUBLE, [], start_time)
    assert encoder.start == b"\x0a" + bytes((start.ByteSize(),)) + start.SerializeToString()
    parsed = metrics_pb2.Metric.FromString(_encoded(encoder, [((), 2.5), ((), 3.5)]))
    assert [ts.HasField("start_timestamp") for ts in parsed.timeseries] == [True, True]
    assert [ts.start_timestamp for ts in parsed.timeseries] == [start, start]
    assert [ts.points[0].double_value for ts in parsed.timeseries] == [2.5, 3.5]


def test_cached_labels_do_not_carry_values_between_exports() -> None:
    encoder = wire.MetricEncoder("c", "", "1", Descriptor.CUMULATIVE_INT64, ["k"], START_ISO)
    first = _encoded(encoder, [(("a",), 1), (("b",), 2), (("a",), 3)])
    second = _encoded(encoder, [(("b",), 20), (("a",), 10), ((None,), 30)])
    oracle = metrics_pb2.Metric(metric_descriptor=_descriptor(
        "c", "", "1", Descriptor.CUMULATIVE_INT64, ["k"]))
    for labels, value in [(("b",), 20), (("a",), 10), ((None,), 30)]:
        _add_series(oracle, labels, START).int64_value = value
    assert second == oracle.SerializeToString()
    parsed = metrics_pb2.Metric.FromString(first)
    assert [(ts.label_values[0].value, ts.points[0].int64_value)
            for ts in parsed.timeseries] == [("a", 1), ("b", 2), ("a", 3)]


def test_a_series_longer_than_two_length_bytes_is_framed_correctly() -> None:
    long_value = "\u00e9" * 20_000  # 40,000 bytes of UTF-8: a three-byte length
    encoder = wire.MetricEncoder("c", "", "", Descriptor.CUMULATIVE_INT64, ["k"], START_ISO)
    oracle = metrics_pb2.Metric(metric_descriptor=_descriptor(
        "c", "", "", Descriptor.CUMULATIVE_INT64, ["k"]))
    _add_series(oracle, (long_value,), START).int64_value = 7
    _add_series(oracle, ("short",), START).int64_value = 8
    assert _encoded(encoder, [((long_value,), 7), (("short",), 8)]) == oracle.SerializeToString()


# MetricEncoder.histogram_series.

BOUNDS = [-5, 0, 0.5, 1e6]


def _histogram_oracle(rows: List[Tuple[Labels, Tuple[Any, ...]]],
                      bounds: Optional[List[float]]) -> Any:
    oracle = metrics_pb2.Metric(metric_descriptor=_descriptor(
        "h", "latency", "ms", Descriptor.CUMULATIVE_DISTRIBUTION, ["route"]))
    for labels, (counts, total, _lo, _hi, m2) in rows:
        dist = _add_series(oracle, labels, START).distribution_value
        dist.count = sum(counts)
        dist.sum = total
        dist.sum_of_squared_deviation = m2
        if bounds is not None:
            dist.bucket_options.explicit.SetInParent()
            dist.bucket_options.explicit.bounds.extend(bounds)
        for count in counts:
            dist.buckets.add(count=count)
    return oracle


def test_histogram_rows_match_the_distribution_messages() -> None:
    rows: List[Tuple[Labels, Tuple[Any, ...]]] = [
        (("/a",), ([2, 1, 0, 4095, 4096], 12.5, -7.0, 2e6, 3.25)),  # both sides of the table
        (("/b\u00e9",), ([0, 2 ** 40, 1, 0, 127], -1e9, -1e9, 1.0, 1e300)),
        ((None,), ([0, 0, 1, 0, 0], 0.25, 0.25, 0.25, 0.0)),  # one value: no deviation
    ]
    encoder = wire.MetricEncoder("h", "latency", "ms", Descriptor.CUMULATIVE_DISTRIBUTION,
                                 ["route"], START_ISO, BOUNDS)
    ours = _encoded(encoder, rows, histogram=True)
    assert ours == _histogram_oracle(rows, BOUNDS).SerializeToString()
    parsed = metrics_pb2.Metric.FromString(ours)
    dist = parsed.timeseries[1].points[0].distribution_value
    assert dist.count == 2 ** 40 + 128
    assert [b.count for b in dist.buckets] == [0, 2 ** 40, 1, 0, 127]
    assert list(dist.bucket_options.explicit.bounds) == [-5.0, 0.0, 0.5, 1e6]
    assert (dist.sum, dist.sum_of_squared_deviation) == (-1e9, 1e300)


def test_an_empty_histogram_leaves_out_zeros_but_writes_every_bucket() -> None:
    rows: List[Tuple[Labels, Tuple[Any, ...]]] = [
        (("/a",), ([0, 0, 0, 0, 0], 0, None, None, 0.0)),  # an int sum, as HistogramInt64 has
    ]
    encoder = wire.MetricEncoder("h", "latency", "ms", Descriptor.CUMULATIVE_DISTRIBUTION,
                                 ["route"], START_ISO, BOUNDS)
    ours = _encoded(encoder, rows, histogram=True)
    assert ours == _histogram_oracle(rows, BOUNDS).SerializeToString()
    dist = metrics_pb2.Metric.FromString(ours).timeseries[0].points[0].distribution_value
    # No count, sum or deviation: only the bounds and the (empty) buckets.
    assert [f.name for f, _ in dist.ListFields()] == ["bucket_options", "buckets"]
    assert [b.ByteSize() for b in dist.buckets] == [0] * 5
    assert ours.endswith(b"\x2a\x00" * 5)


def test_a_histogram_sum_of_minus_zero_is_written_and_an_int_sum_is_a_double() -> None:
    rows: List[Tuple[Labels, Tuple[Any, ...]]] = [
        (("neg",), ([1, 0, 0, 0, 0], -0.0, -0.0, -0.0, -0.0)),
        (("int",), ([0, 3, 0, 0, 0], 35, 0, 20, 2.0)),
    ]
    encoder = wire.MetricEncoder("h", "latency", "ms", Descriptor.CUMULATIVE_DISTRIBUTION,
                                 ["route"], START_ISO, BOUNDS)
    ours = _encoded(encoder, rows, histogram=True)
    assert ours == _histogram_oracle(rows, BOUNDS).SerializeToString()
    parsed = metrics_pb2.Metric.FromString(ours)
    neg, as_int = (ts.points[0].distribution_value for ts in parsed.timeseries)
    assert math.copysign(1.0, neg.sum) == -1.0
    assert math.copysign(1.0, neg.sum_of_squared_deviation) == -1.0
    assert b"\x11" + struct.pack("<d", -0.0) in ours
    assert as_int.sum == 35.0 and b"\x11" + struct.pack("<d", 35.0) in ours


def test_histogram_min_and_max_are_not_on_the_wire_and_bounds_are_optional() -> None:
    encoder = wire.MetricEncoder("h", "latency", "ms", Descriptor.CUMULATIVE_DISTRIBUTION,
                                 ["route"], START_ISO)
    a = _encoded(encoder, [(("/a",), ([1, 2], 3.0, 0.5, 2.0, 1.5))], histogram=True)
    b = _encoded(encoder, [(("/a",), ([1, 2], 3.0, -9.0, 99.0, 1.5))], histogram=True)
    assert a == b
    rows: List[Tuple[Labels, Tuple[Any, ...]]] = [(("/a",), ([1, 2], 3.0, 0.5, 2.0, 1.5))]
    assert a == _histogram_oracle(rows, None).SerializeToString()
    dist = metrics_pb2.Metric.FromString(a).timeseries[0].points[0].distribution_value
    assert not dist.HasField("bucket_options")


# requests: packing ExportMetricsServiceRequest bodies.

NODE = common_pb2.Node(identifier=common_pb2.ProcessIdentifier(host_name="h\u00f6st", pid=4242),
                       service_info=common_pb2.ServiceInfo(name="svc"))
RESOURCE = resource_pb2.Resource(type="host", labels={"zone": "eu-1"})
FIRST = Request(node=NODE).SerializeToString()
TRAILER = Request(resource=RESOURCE).SerializeToString()


def _metric_input(name: str, values: List[str]) -> Tuple[bytes, List[bytes]]:
    """A (descriptor field, series fields) pair, built with protobuf."""
    descriptor_field = metrics_pb2.Metric(
        metric_descriptor=Descriptor(name=name, label_keys=[metrics_pb2.LabelKey(key="k")])
    ).SerializeToString()
    series = [metrics_pb2.Metric(timeseries=[metrics_pb2.TimeSeries(
        label_values=[metrics_pb2.LabelValue(value=v, has_value=True)],
        points=[metrics_pb2.Point(timestamp=NOW, int64_value=i)])]).SerializeToString()
        for i, v in enumerate(values)]
    return descriptor_field, series


def test_one_request_is_node_then_metrics_then_resource_as_protobuf_orders_them() -> None:
    a = _metric_input("a", ["x", "y\u00e9"])
    b = _metric_input("b", ["z"])
    ours = wire.requests([a, b], FIRST, TRAILER)
    oracle = Request(node=NODE, resource=RESOURCE)
    oracle.metrics.add().MergeFromString(a[0] + b"".join(a[1]))
    oracle.metrics.add().MergeFromString(b[0] + b"".join(b[1]))
    assert ours == [oracle.SerializeToString()]
    parsed = Request.FromString(ours[0])
    assert [m.metric_descriptor.name for m in parsed.metrics] == ["a", "b"]
    assert [lv.value for ts in parsed.metrics[0].timeseries for lv in ts.label_values] == [
        "x", "y\u00e9"]


def test_no_metrics_or_metrics_without_series_make_one_request_of_node_and_resource() -> None:
    assert wire.requests([], FIRST, TRAILER) == [FIRST + TRAILER]
    assert wire.requests([_metric_input("empty", [])], FIRST, TRAILER) == [FIRST + TRAILER]
    assert wire.requests([]) == [b""]
    assert wire.requests([], trailer=TRAILER) == [TRAILER]
    parsed = Request.FromString(wire.requests([_metric_input("empty", [])], FIRST, TRAILER)[0])
    assert parsed == Request(node=NODE, resource=RESOURCE)


def test_whole_metric_bodies_with_an_empty_descriptor_field_are_sent_as_they_are() -> None:
    one = metrics_pb2.Metric(metric_descriptor=Descriptor(name="one"), timeseries=[
        metrics_pb2.TimeSeries(points=[metrics_pb2.Point(double_value=0.5)])])
    two = metrics_pb2.Metric(metric_descriptor=Descriptor(name="tw\u00f6"))
    bodies = [one.SerializeToString(), two.SerializeToString()]
    ours = wire.requests([(b"", bodies), _metric_input("c", ["v"])], FIRST, TRAILER)
    assert len(ours) == 1
    parsed = Request.FromString(ours[0])
    assert list(parsed.metrics)[:2] == [one, two]
    assert parsed.metrics[2].metric_descriptor.name == "c"


@pytest.mark.parametrize("limit", [600, 1000, 2500])
def test_large_exports_are_split_under_the_limit_in_order_with_the_descriptor_repeated(
        limit: int) -> None:
    a = _metric_input("a", ["a%03d" % i + "-" * (i % 40) for i in range(120)])
    whole = [metrics_pb2.Metric(metric_descriptor=Descriptor(name="w%d" % i)).SerializeToString()
             for i in range(30)]
    b = _metric_input("b\u00e9", ["b%03d" % i for i in range(80)])
    bodies = wire.requests([a, (b"", whole), b], FIRST, TRAILER, limit=limit)
    assert len(bodies) > 3
    assert all(0 < len(body) <= limit for body in bodies)
    seen: List[Tuple[str, str, int]] = []
    for i, body in enumerate(bodies):
        request = Request.FromString(body)
        assert request.HasField("node") == request.HasField("resource") == (i == 0)
        for m in request.metrics:
            assert list(m.metric_descriptor.label_keys) == (
                [] if m.metric_descriptor.name.startswith("w") else [metrics_pb2.LabelKey(key="k")])
            seen += [(m.metric_descriptor.name, ts.label_values[0].value, ts.points[0].int64_value)
                     for ts in m.timeseries]
            if not m.timeseries:
                seen.append((m.metric_descriptor.name, "", -1))
    assert seen == ([("a", "a%03d" % i + "-" * (i % 40), i) for i in range(120)]
                    + [("w%d" % i, "", -1) for i in range(30)]
                    + [("b\u00e9", "b%03d" % i, i) for i in range(80)])


def test_only_a_single_series_larger_than_the_limit_makes_a_larger_request() -> None:
    big = "x" * 1500
    a = _metric_input("a", ["s1", big, "s3", "s4"])
    bodies = wire.requests([a], FIRST, TRAILER, limit=400)
    parsed = [Request.FromString(body) for body in bodies]
    over = [r for body, r in zip(bodies, parsed) if len(body) > 400]
    assert len(over) == 1
    [oversized] = over
    assert [[lv.value for ts in m.timeseries for lv in ts.label_values]
            for m in oversized.metrics] == [[big]]
    assert [lv.value for r in parsed for m in r.metrics for ts in m.timeseries
            for lv in ts.label_values] == ["s1", big, "s3", "s4"]
    assert parsed[0].HasField("node") and parsed[0].HasField("resource")
