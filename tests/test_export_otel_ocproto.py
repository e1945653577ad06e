"""OpenCensus protocol messages -> OTel SDK data -> OTLP/HTTP (the agent's forwarding path)."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.metrics.v1 import metrics_pb2 as otlp_metrics
from opentelemetry.sdk.metrics.export import MetricExportResult

from gotools_compat._oc import proto
from gotools_compat._otel import data as otel_data
from gotools_compat._otel import ocproto
from tests.otlp_receiver import Receiver, attrs, find_metric, series

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402

T0 = 1_700_000_000
T1 = 1_700_000_060


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def node() -> Any:
    n = common_pb2.Node()
    n.identifier.host_name = "buildhost"
    n.identifier.pid = 4242
    n.identifier.start_timestamp.seconds = T0
    n.library_info.language = common_pb2.LibraryInfo.GO_LANG
    n.library_info.exporter_version = "0.0.1"
    n.service_info.name = "gopls"
    n.attributes["zone"] = "z1"
    return n


def metric(name: str, kind: int, keys: List[str]) -> Any:
    m = metrics_pb2.Metric()
    m.metric_descriptor.name = name
    m.metric_descriptor.description = name + " help"
    m.metric_descriptor.unit = "ms"
    m.metric_descriptor.type = kind
    for key in keys:
        m.metric_descriptor.label_keys.add(key=key)
    return m


def add_series(m: Any, values: List[Any]) -> Any:
    ts = m.timeseries.add()
    for v in values:
        lv = ts.label_values.add()
        if v is not None:
            lv.value, lv.has_value = v, True
    ts.start_timestamp.seconds = T0
    point = ts.points.add()
    point.timestamp.seconds = T1
    return point


def request() -> List[Any]:
    D = metrics_pb2.MetricDescriptor
    count = metric("oc_requests", D.CUMULATIVE_INT64, ["method", "code"])
    add_series(count, ["GET", None]).int64_value = 3
    add_series(count, ["GET", "200"]).int64_value = 2 ** 60
    gauge = metric("oc_queue", D.GAUGE_DOUBLE, [])
    add_series(gauge, []).double_value = -1.5
    hist = metric("oc_latency", D.CUMULATIVE_DISTRIBUTION, ["method"])
    dist = add_series(hist, ["GET"]).distribution_value
    dist.bucket_options.explicit.bounds.extend([0.0, 10.0])
    for c in (1, 2, 3):
        dist.buckets.add(count=c)
    dist.count, dist.sum = 6, 40.0
    summary = metric("oc_summary", D.SUMMARY, [])
    add_series(summary, []).summary_value.count.value = 1
    return [count, gauge, hist, summary]


def export(receiver: Receiver, bucket_counts: Any = None) -> Any:
    resource = ocproto.resource_from_node(
        node(), resource_pb2.Resource(type="host", labels={"team": "tools"}))
    converted = [ocproto.metric_from_proto(m, T1 * 10 ** 9, bucket_counts=bucket_counts)
                 for m in request()]
    assert converted[3] is None  # SUMMARY: the SDK data model has none
    exporter = OTLPMetricExporter(endpoint=receiver.endpoint, timeout=5)
    data = otel_data.metrics_data(resource, [m for m in converted if m is not None])
    assert exporter.export(data) is MetricExportResult.SUCCESS
    exporter.shutdown()
    return receiver.requests[-1]


def test_node_and_resource_become_the_otel_resource(receiver: Receiver) -> None:
    resource, _ = find_metric(export(receiver), "oc_requests")
    assert attrs(resource.attributes) == {
        "service.name": "gopls", "host.name": "buildhost", "process.pid": 4242,
        "telemetry.sdk.language": "go", "opencensus.exporterversion": "0.0.1",
        "opencensus.starttime": "2023-11-14T22:13:20Z", "opencensus.resourcetype": "host",
        "team": "tools", "zone": "z1"}


def test_types_values_and_times_arrive(receiver: Receiver) -> None:
    got = export(receiver)
    count = find_metric(got, "oc_requests")[1]
    assert count.sum.is_monotonic
    assert count.sum.aggregation_temporality == otlp_metrics.AGGREGATION_TEMPORALITY_CUMULATIVE
    points = series(count)
    assert points[(("method", "GET"),)].as_int == 3  # no value: no attribute
    assert points[(("code", "200"), ("method", "GET"))].as_int == 2 ** 60
    for p in points.values():
        assert (p.start_time_unix_nano, p.time_unix_nano) == (T0 * 10 ** 9, T1 * 10 ** 9)
    queue = find_metric(got, "oc_queue")[1]
    assert queue.gauge.data_points[0].as_double == -1.5
    hist = find_metric(got, "oc_latency")[1]
    assert hist.unit == "ms" and hist.description == "oc_latency help"
    (p,) = hist.histogram.data_points
    assert (list(p.explicit_bounds), list(p.bucket_counts), p.count, p.sum) == (
        [0.0, 10.0], [1, 2, 3], 6, 40.0)
    assert not p.HasField("min") and not p.HasField("max")


def test_repaired_buckets_are_what_is_sent(receiver: Receiver) -> None:
    # As if the sender's counts (1, 2, 3) were cumulative, as Go x/tools sends them.
    def repair(dist: Any) -> List[int]:
        cumulative = [b.count for b in dist.buckets]
        return [b - a for a, b in zip([0] + cumulative, cumulative)]

    hist = find_metric(export(receiver, bucket_counts=repair), "oc_latency")[1]
    assert list(hist.histogram.data_points[0].bucket_counts) == [1, 1, 1]
