"""Our row encoder against the stock ocagent conversion, byte for byte (E1, issue 4).

The stock path is opencensus's own: the view data that ``get_metrics()``
reads, ``metric_utils.view_data_to_metric`` and
``opencensus.ext.ocagent.stats_exporter._get_metric_proto``, serialized by
protobuf.  Ours encodes the same rows without building messages.
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, List

import pytest

from gotools_compat import event, metric, stats
from gotools_compat._oc import ocagent as stock_ocagent
from gotools_compat._wire import protobuf
from gotools_compat.export import _ocagent_requests as requests
from opencensus.ext.ocagent import stats_exporter
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2
from opencensus.proto.metrics.v1 import metrics_pb2
from opencensus.stats import metric_utils
from opencensus.stats import stats as oc_stats

from tests.helpers import entry

# Each test defines its metrics in a fresh registry (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("registry")

NOW = datetime.datetime(2024, 5, 17, 8, 30, 12, 345678)  # naive UTC, as get_metrics uses


def _view_data(name: str) -> Any:
    mtvm = oc_stats.stats.view_manager.measure_to_view_map
    for view_datas in mtvm._measure_to_view_data_list_map.values():
        for view_data in view_datas:
            if view_data.view.name == name:
                return view_data
    raise AssertionError("no view %s" % name)


def _stock_bytes(name: str) -> bytes:
    oc_metric = metric_utils.view_data_to_metric(_view_data(name), NOW)
    data: bytes = stats_exporter._get_metric_proto(oc_metric).SerializeToString()
    return data


def _our_bytes(name: str) -> bytes:
    encoder = requests.encoder_for(entry(name))
    point_ts = protobuf.field(0x0A, protobuf.timestamp_from_datetime(NOW))
    return encoder.descriptor_field + b"".join(encoder.series(point_ts))


def _check(name: str) -> metrics_pb2.Metric:
    ours, stock = _our_bytes(name), _stock_bytes(name)
    assert ours == stock
    parsed = metrics_pb2.Metric.FromString(ours)
    return parsed


def test_histogram_float_bytes_match_stock_with_zero_and_negative_bounds() -> None:
    key = event.new_string_key("route")
    m = stats.Float64("m", "latency", "ms")
    name = metric.HistogramFloat64("h", "request latency",
                                   [-5, 0, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
                                   keys=[key]).record(m)
    a = event.label(event.background(), key.of("/a"))
    b = event.label(event.background(), key.of("/b\u00e9"))
    for v in [-7.0, -5.0, 0.0, 0.25, 1.0, 3.0, 7.5, 999.0, 1000.0, 1e6]:
        m.record(a, v)
    for v in range(200):  # drained batches of 64 and a rest
        m.record(b, float(v))
    m.record(event.background(), 2.0)  # the key missing: "no value"
    parsed = _check(name)
    # What the stock conversion does with bounds <= 0 (opencensus's Explicit
    # would refuse them; the rows bypass its check): they go on the wire as is.
    dist = {tuple(lv.value if lv.has_value else None for lv in ts.label_values):
            ts.points[0].distribution_value for ts in parsed.timeseries}
    assert list(dist[("/a",)].bucket_options.explicit.bounds)[:3] == [-5.0, 0.0, 0.5]
    # Per bucket, plus overflow: -7,-5 | 0 | .25 | 1 | - | 3 | 7.5 | - ... | 999,1000 | 1e6
    assert [bk.count for bk in dist[("/a",)].buckets] == [2, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0,
                                                           2, 1]
    assert dist[("/a",)].count == 10
    assert dist[("/a",)].sum == pytest.approx(-7 - 5 + 0.25 + 1 + 3 + 7.5 + 999 + 1000 + 1e6)
    assert sum(bk.count for bk in dist[("/b\u00e9",)].buckets) == 200
    assert dist[(None,)].count == 1
    assert [lv.has_value for lv in parsed.timeseries[-1].label_values] == [False]


def test_histogram_int_bytes_match_stock_with_counts_beyond_the_table() -> None:
    m = stats.Int64("m", "sizes", "By")
    name = metric.HistogramInt64("h", "", [0, 10, 100]).record(m)
    for _ in range(5000):  # a bucket count beyond the encoder's table of 4096
        m.record(None, 7)
    m.record(None, -3)
    m.record(None, 2 ** 40)
    parsed = _check(name)
    dist = parsed.timeseries[0].points[0].distribution_value
    assert [bk.count for bk in dist.buckets] == [1, 5000, 0, 1]
    assert dist.sum == 35000 - 3 + 2 ** 40
    assert parsed.metric_descriptor.unit == "By"


@pytest.mark.parametrize("kind, values, expected_type", [
    ("count_int64", [1, 2, 3], metrics_pb2.MetricDescriptor.CUMULATIVE_INT64),
    ("sum_int64", [2 ** 62, 2 ** 62 - 1, -5], metrics_pb2.MetricDescriptor.CUMULATIVE_INT64),
    ("latest_int64", [5, -2 ** 63], metrics_pb2.MetricDescriptor.GAUGE_INT64),
    ("count_float64", [1.5, 0.0], metrics_pb2.MetricDescriptor.CUMULATIVE_INT64),
    ("sum_float64", [0.1, 0.2, -3.5], metrics_pb2.MetricDescriptor.CUMULATIVE_DOUBLE),
    ("latest_float64", [2.5, 0.0], metrics_pb2.MetricDescriptor.GAUGE_DOUBLE),
])
def test_scalar_bytes_match_stock(kind: str, values: List[Any], expected_type: int) -> None:
    key = event.new_int_key("shard")
    is_int = kind.endswith("int64")
    m = (stats.Int64 if is_int else stats.Float64)("m", "d", "1")
    name = getattr(metric.Scalar(kind, "a %s" % kind, keys=[key]), kind)(m)
    for shard in (1, 2):
        ctx = event.label(event.background(), key.of(shard))
        for v in values:
            m.record(ctx, v)
    parsed = _check(name)
    assert parsed.metric_descriptor.type == expected_type
    assert [lk.key for lk in parsed.metric_descriptor.label_keys] == ["shard"]
    points = [ts.points[0] for ts in parsed.timeseries]
    if kind.startswith("count"):
        assert [p.int64_value for p in points] == [len(values)] * 2
    elif kind == "sum_int64":
        assert [p.int64_value for p in points] == [sum(values)] * 2  # exact past 2**53
    elif kind.startswith("latest"):
        # The last value, also zero (a oneof member is sent even when 0).
        assert [p.WhichOneof("value") for p in points] == [
            "int64_value" if is_int else "double_value"] * 2
        assert [getattr(p, p.WhichOneof("value")) for p in points] == [values[-1]] * 2
        assert all(ts.start_timestamp.ByteSize() == 0 for ts in parsed.timeseries)
    else:
        assert [p.double_value for p in points] == [sum(values)] * 2


def test_request_bytes_match_the_stock_request() -> None:
    m = stats.Int64("m", "", "1")
    name = metric.Scalar("c").count_int64(m)
    m.record(None, 1)
    node = stock_ocagent.node("svc", "host", 4242, datetime.datetime(
        2024, 1, 2, 3, 4, 5, 6000, datetime.timezone.utc))
    resource = stock_ocagent.resource()
    # What the stock StatsExporter and ExportRpcHandler send as a first request.
    oc_metric = metric_utils.view_data_to_metric(_view_data(name), NOW)
    stock = metrics_service_pb2.ExportMetricsServiceRequest(
        metrics=[stats_exporter._get_metric_proto(oc_metric)])
    stock.node.MergeFrom(node)
    stock.resource.MergeFrom(resource)
    encoder = requests.encoder_for(entry(name))
    ours = requests.metric_requests([encoder], [], requests.first_fields(node, resource), NOW)
    assert ours == [stock.SerializeToString()]


def test_large_exports_are_split_under_the_limit_without_losing_series() -> None:
    key = event.new_string_key("k")
    m = stats.Int64("m", "", "1")
    name = metric.Scalar("c", keys=[key]).count_int64(m)
    for i in range(300):
        m.record(event.label(event.background(), key.of("v%04d" % i)), 1)
    encoder = requests.encoder_for(entry(name))
    node_field, resource_field = b"\x0a\x02\x08\x01", b"\x1a\x00"
    bodies = requests.metric_requests([encoder], [], (node_field, resource_field), NOW,
                                       limit=2000)
    assert len(bodies) > 5
    assert all(len(body) <= 2000 for body in bodies)
    seen: Dict[str, int] = {}
    for i, body in enumerate(bodies):
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        assert request.HasField("node") == (i == 0)
        assert request.HasField("resource") == (i == 0)
        for part in request.metrics:
            assert part.metric_descriptor.name == name
            for ts in part.timeseries:
                seen[ts.label_values[0].value] = ts.points[0].int64_value
    assert seen == {"v%04d" % i: 1 for i in range(300)}


def test_an_int64_sum_past_the_int64_range_saturates_on_the_wire_like_stock(
        caplog: pytest.LogCaptureFixture) -> None:
    m = stats.Int64("m", "d", "1")
    name = metric.Scalar("huge").sum_int64(m)
    for _ in range(3):
        m.record(None, 2 ** 62)  # each value is an int64; their sum is not
    parsed = _check(name)  # the stock conversion gets the same saturated value
    assert [ts.points[0].int64_value for ts in parsed.timeseries] == [2 ** 63 - 1]
    [data] = [d for d in metric.collect() if d.handle() == name]
    assert data.rows == [3 * 2 ** 62]  # exact in Python (and in Prometheus text)
    assert len([r for r in caplog.records if "past the int64 range" in r.getMessage()]) == 1
