"""gotools_compat.agent end to end: real gRPC and HTTP clients, real scrapes."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import grpc
import pytest
from google.protobuf import json_format
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat.agent import Agent
from tests.helpers import http_post, samples

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
GO_METRICS = (FIXTURES / "go-ocagent-v1-metrics.json").read_bytes()
MD = metrics_pb2.MetricDescriptor
Request = metrics_service_pb2.ExportMetricsServiceRequest


@pytest.fixture
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", "127.0.0.1:0").start()
    yield a
    a.stop()


def scrape(port: int, accept: Optional[str] = None) -> Tuple[str, str]:
    """Content type and text of /metrics, less the agent's own series (gotools_agent_*)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        assert response.status == 200
        return response.getheader("Content-Type") or "", without_own(
            response.read().decode("utf-8"))
    finally:
        conn.close()


def without_own(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)
                   if not line.split(" ", 3)[-2 if line.startswith("#") else 0]
                   .startswith("gotools_agent_"))


def node(service: str, host: str = "host", pid: int = 1) -> Any:
    return common_pb2.Node(identifier=common_pb2.ProcessIdentifier(host_name=host, pid=pid),
                           service_info=common_pb2.ServiceInfo(name=service))


def point(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return metrics_pb2.Point(int64_value=value)
    if isinstance(value, float):
        return metrics_pb2.Point(double_value=value)
    return metrics_pb2.Point(**value)


def metric(name: str, type_: int, keys: Sequence[str],
           series: Sequence[Tuple[Sequence[Optional[str]], Any]], description: str = "",
           unit: str = "") -> Any:
    return metrics_pb2.Metric(
        metric_descriptor=MD(name=name, description=description, unit=unit, type=type_,
                             label_keys=[metrics_pb2.LabelKey(key=k) for k in keys]),
        timeseries=[metrics_pb2.TimeSeries(
            label_values=[metrics_pb2.LabelValue(value=v or "", has_value=v is not None)
                          for v in values],
            points=[point(value)]) for values, value in series])


def dist(bounds: Sequence[float], counts: Sequence[int], total: float) -> Dict[str, Any]:
    return {"distribution_value": metrics_pb2.DistributionValue(
        count=sum(counts), sum=total, buckets=[{"count": c} for c in counts],
        bucket_options={"explicit": {"bounds": list(bounds)}})}


def send_grpc(port: int, requests: Sequence[Any]) -> List[Any]:
    """One stream; returns when the agent has read all of it."""
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        return list(stub.Export(iter(requests), timeout=10))


GO_FIXTURE_TEXT = """\
# HELP promdemo_received_bytes Distribution of received bytes, by method.
# TYPE promdemo_received_bytes histogram
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="1024.0"} 13
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="2048.0"} 13
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="4096.0"} 13
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="16384.0"} 13
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="65536.0"} 13
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="1.048576e+06"} 13
promdemo_received_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="+Inf"} 13
promdemo_received_bytes_sum{vendor="otc",job="gopls",instance="vm:2411"} 2461
promdemo_received_bytes_count{vendor="otc",job="gopls",instance="vm:2411"} 13
# HELP promdemo_sent_bytes Distribution of sent bytes, by method.
# TYPE promdemo_sent_bytes histogram
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="1024.0"} 16
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="2048.0"} 17
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="4096.0"} 17
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="16384.0"} 17
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="65536.0"} 17
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="1.048576e+06"} 17
promdemo_sent_bytes_bucket{vendor="otc",job="gopls",instance="vm:2411",le="+Inf"} 17
promdemo_sent_bytes_sum{vendor="otc",job="gopls",instance="vm:2411"} 8602
promdemo_sent_bytes_count{vendor="otc",job="gopls",instance="vm:2411"} 17
# HELP promdemo_started_total Count of RPCs started by method.
# TYPE promdemo_started_total counter
promdemo_started_total{vendor="otc",job="gopls",instance="vm:2411"} 19
"""


def test_go_fixture_over_http_renders_repaired_cumulative_histograms(agent: Agent) -> None:
    # Go sends one cumulative count per bound and no overflow bucket, and no
    # label values: series are summed, buckets end at _count.
    assert http_post(agent.port, "/v1/metrics", GO_METRICS) == (200, b"{}")
    content_type, text = scrape(agent.prometheus_port or 0)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert text == GO_FIXTURE_TEXT


def test_go_fixture_parses_back_with_monotonic_buckets(agent: Agent) -> None:
    http_post(agent.port, "/v1/metrics", GO_METRICS)
    families = {f.name: f for f in text_string_to_metric_families(scrape(agent.port)[1])}
    assert sorted(families) == ["promdemo_received_bytes", "promdemo_sent_bytes",
                                "promdemo_started"]
    assert families["promdemo_started"].type == "counter"
    for name in ("promdemo_received_bytes", "promdemo_sent_bytes"):
        buckets = [s.value for s in families[name].samples if s.name.endswith("_bucket")]
        count = [s.value for s in families[name].samples if s.name.endswith("_count")]
        assert buckets == sorted(buckets) and buckets[-1] == count[0]


def test_go_fixture_same_over_grpc_and_http(agent: Agent) -> None:
    request = json_format.Parse(GO_METRICS, Request())
    request.node.identifier.pid = 7  # a second process of the same program
    send_grpc(agent.port, [request])
    http_post(agent.port, "/v1/metrics", GO_METRICS)
    found = samples(scrape(agent.port)[1])
    for instance in ("vm:7", "vm:2411"):
        key = ("promdemo_started_total",
               (("instance", instance), ("job", "gopls"), ("vendor", "otc")))
        assert found[key] == 19


def test_openmetrics_when_asked(agent: Agent) -> None:
    http_post(agent.port, "/v1/metrics", GO_METRICS)
    content_type, text = scrape(agent.prometheus_port or 0,
                                "application/openmetrics-text; version=1.0.0")
    assert content_type == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["promdemo_started"].samples[0].value == 19
    sent = [(s.labels["le"], s.value) for s in families["promdemo_sent_bytes"].samples
            if s.name.endswith("_bucket")]
    assert sent[0] == ("1024.0", 16) and sent[-1] == ("+Inf", 17)


def _every_kind() -> Any:
    bounds = [0.0, 10.0, 50.0]
    return Request(node=node("kinds"), metrics=[
        metric("gi", MD.GAUGE_INT64, ["k"], [(["a"], -3), (["b"], 2 ** 60 + 1)], "int gauge"),
        metric("gd", MD.GAUGE_DOUBLE, [], [([], 0.25)], "double gauge"),
        metric("ci", MD.CUMULATIVE_INT64, ["k"], [(["a"], 5)], "int counter"),
        metric("cd_total", MD.CUMULATIVE_DOUBLE, [], [([], 1.5)], "double counter"),
        metric("lat", MD.CUMULATIVE_DISTRIBUTION, ["k"],
               [(["a"], dist(bounds, [1, 2, 0, 4], 321.5))], "latency", "ms"),
        metric("qd", MD.GAUGE_DISTRIBUTION, [], [([], dist(bounds, [0, 1, 1, 0], 30.0))], "gd"),
        metric("sm", MD.SUMMARY, [], [([], {"summary_value": metrics_pb2.SummaryValue(
            count={"value": 10}, sum={"value": 55.0}, snapshot={"percentile_values": [
                {"percentile": 50.0, "value": 5.0}, {"percentile": 99.0, "value": 9.5}]})})],
            "summary"),
    ])


EVERY_KIND_TEXT = """\
# HELP cd_total double counter
# TYPE cd_total counter
cd_total{vendor="otc",job="kinds",instance="host:1"} 1.5
# HELP ci_total int counter
# TYPE ci_total counter
ci_total{vendor="otc",job="kinds",instance="host:1",k="a"} 5
# HELP gd double gauge
# TYPE gd gauge
gd{vendor="otc",job="kinds",instance="host:1"} 0.25
# HELP gi int gauge
# TYPE gi gauge
gi{vendor="otc",job="kinds",instance="host:1",k="a"} -3
gi{vendor="otc",job="kinds",instance="host:1",k="b"} 1152921504606846977
# HELP lat latency
# TYPE lat histogram
lat_bucket{vendor="otc",job="kinds",instance="host:1",k="a",le="0.0"} 1
lat_bucket{vendor="otc",job="kinds",instance="host:1",k="a",le="10.0"} 3
lat_bucket{vendor="otc",job="kinds",instance="host:1",k="a",le="50.0"} 3
lat_bucket{vendor="otc",job="kinds",instance="host:1",k="a",le="+Inf"} 7
lat_sum{vendor="otc",job="kinds",instance="host:1",k="a"} 321.5
lat_count{vendor="otc",job="kinds",instance="host:1",k="a"} 7
# HELP qd gd
# TYPE qd histogram
qd_bucket{vendor="otc",job="kinds",instance="host:1",le="0.0"} 0
qd_bucket{vendor="otc",job="kinds",instance="host:1",le="10.0"} 1
qd_bucket{vendor="otc",job="kinds",instance="host:1",le="50.0"} 2
qd_bucket{vendor="otc",job="kinds",instance="host:1",le="+Inf"} 2
qd_sum{vendor="otc",job="kinds",instance="host:1"} 30
qd_count{vendor="otc",job="kinds",instance="host:1"} 2
# HELP sm summary
# TYPE sm summary
sm{vendor="otc",job="kinds",instance="host:1",quantile="0.5"} 5
sm{vendor="otc",job="kinds",instance="host:1",quantile="0.99"} 9.5
sm_sum{vendor="otc",job="kinds",instance="host:1"} 55
sm_count{vendor="otc",job="kinds",instance="host:1"} 10
"""


def test_every_descriptor_type_in_text_format() -> None:
    with Agent("127.0.0.1:0", None, namespace="") as agent:
        assert send_grpc(agent.port, [_every_kind()]) == []
        assert scrape(agent.port)[1] == EVERY_KIND_TEXT


def test_every_descriptor_type_in_openmetrics() -> None:
    with Agent("127.0.0.1:0", None, namespace="") as agent:
        send_grpc(agent.port, [_every_kind()])
        text = scrape(agent.port, "application/openmetrics-text")[1]
    families = {f.name: f for f in openmetrics_families(text)}
    assert {n: f.type for n, f in families.items()} == {
        "cd": "counter", "ci": "counter", "gd": "gauge", "gi": "gauge", "lat": "histogram",
        "qd": "gaugehistogram", "sm": "summary"}
    assert [s.name for s in families["qd"].samples][-2:] == ["qd_gsum", "qd_gcount"]
    assert families["gi"].samples[1].value == 2 ** 60 + 1


def test_promtool_reports_nothing_but_name_lints(agent: Agent, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (apt-get install prometheus)")
        pytest.skip("promtool not installed")
    http_post(agent.port, "/v1/metrics", GO_METRICS)
    send_grpc(agent.port, [_every_kind()])
    text = scrape(agent.port)[1]
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    # Names stay as senders chose them; only promtool's lints on those names remain.
    assert all("counter metrics should have \"_total\" suffix" in p
               or "camelCase" in p or "abbreviated" in p or "should have a unit" in p
               for p in problems), problems
    assert "error" not in result.stderr.lower()


def test_stream_node_holds_for_later_requests_and_flush_replaces(agent: Agent) -> None:
    first = Request(node=node("svc", "h1", 10),
                    metrics=[metric("c", MD.CUMULATIVE_INT64, [], [([], 1)])])
    # A later request on the stream has no node; it repeats the metric twice
    # (Go queued two snapshots): the later copy replaces the earlier one.
    second = Request(metrics=[metric("c", MD.CUMULATIVE_INT64, [], [([], 4)]),
                              metric("c", MD.CUMULATIVE_INT64, [], [([], 6)])])
    send_grpc(agent.port, [first, second])
    found = samples(scrape(agent.port)[1])
    assert found == {("promdemo_c_total",
                      (("instance", "h1:10"), ("job", "svc"), ("vendor", "otc"))): 6}


def test_two_senders_are_told_apart(agent: Agent) -> None:
    for pid, value in ((1, 10), (2, 20)):
        send_grpc(agent.port, [Request(node=node("svc", "h", pid), metrics=[
            metric("g", MD.GAUGE_INT64, ["k"], [(["x"], value)])])])
    found = samples(scrape(agent.port)[1])
    assert found == {
        ("promdemo_g", (("instance", "h:1"), ("job", "svc"), ("k", "x"), ("vendor", "otc"))): 10,
        ("promdemo_g", (("instance", "h:2"), ("job", "svc"), ("k", "x"), ("vendor", "otc"))): 20}
    assert agent.senders() == [("svc", "h:1"), ("svc", "h:2")]


def test_without_target_labels_counters_sum_and_gauges_keep_newest() -> None:
    with Agent("127.0.0.1:0", None, target_labels=False, const_labels={}) as agent:
        for pid, value in ((1, 10), (2, 20)):
            send_grpc(agent.port, [Request(node=node("svc", "h", pid), metrics=[
                metric("g", MD.GAUGE_INT64, [], [([], value)]),
                metric("c", MD.CUMULATIVE_INT64, [], [([], value)]),
                metric("d", MD.CUMULATIVE_DISTRIBUTION, [], [([], dist([1.0], [value, 1], 2.5))]),
            ])])
        found = samples(scrape(agent.port)[1])
    assert found[("promdemo_g", ())] == 20
    assert found[("promdemo_c_total", ())] == 30
    assert found[("promdemo_d_bucket", (("le", "1.0"),))] == 30
    assert found[("promdemo_d_count", ())] == 32 and found[("promdemo_d_sum", ())] == 5.0


def test_series_without_label_values_sum_and_gauges_keep_last(agent: Agent) -> None:
    send_grpc(agent.port, [Request(node=node("svc"), metrics=[
        metric("c", MD.CUMULATIVE_DOUBLE, ["k"], [([], 1.5), ([], 2.0)]),
        metric("g", MD.GAUGE_DOUBLE, ["k"], [([], 1.5), ([], -2.0)]),
    ])])
    found = samples(scrape(agent.port)[1])
    labels = (("instance", "host:1"), ("job", "svc"), ("vendor", "otc"))
    assert found == {("promdemo_c_total", labels): 3.5, ("promdemo_g", labels): -2.0}


def test_label_values_escaped_and_colliding_keys_renamed(agent: Agent) -> None:
    send_grpc(agent.port, [Request(node=node("svc"), metrics=[
        metric("h", MD.CUMULATIVE_DISTRIBUTION, ["le", "job", "a.b"],
               [(['x"y\\z\nw', "mine", None], dist([1.0], [1, 0], 0.5))]),
    ])])
    text = scrape(agent.port)[1]
    assert ('promdemo_h_bucket{vendor="otc",job="svc",instance="host:1",'
            'exported_le="x\\"y\\\\z\\nw",exported_job="mine",le="1.0"} 1\n') in text
    found = samples(text)
    key = ("promdemo_h_count", (("exported_job", "mine"), ("exported_le", 'x"y\\z\nw'),
                                ("instance", "host:1"), ("job", "svc"), ("vendor", "otc")))
    assert found[key] == 1


def test_a_name_clash_between_kinds_drops_the_later_metric(agent: Agent) -> None:
    send_grpc(agent.port, [Request(node=node("svc"), metrics=[
        metric("x", MD.CUMULATIVE_INT64, [], [([], 1)]),
        metric("x_total", MD.GAUGE_INT64, [], [([], 2)]),  # would repeat x_total
        metric("x", MD.GAUGE_INT64, [], [([], 3)]),  # x is a counter already
    ])])
    found = samples(scrape(agent.port)[1])
    assert list(found.values()) == [1]


def test_invalid_names_are_sanitized_keeping_case(agent: Agent) -> None:
    send_grpc(agent.port, [Request(node=node("svc"), metrics=[
        metric("opencensus.io/http/latencyMs", MD.GAUGE_DOUBLE, ["http.method"],
               [(["GET"], 1.0)])])])
    text = scrape(agent.port)[1]
    assert "promdemo_opencensus_io_http_latencyMs{vendor=\"otc\",job=\"svc\"," \
           "instance=\"host:1\",http_method=\"GET\"} 1\n" in text


def test_binary_protobuf_over_http(agent: Agent) -> None:
    request = Request(node=node("bin"), metrics=[metric("g", MD.GAUGE_INT64, [], [([], 7)])])
    status, _ = http_post(agent.port, "/v1/metrics", request.SerializeToString(),
                     "application/x-protobuf")
    assert status == 200
    assert 'promdemo_g{vendor="otc",job="bin",instance="host:1"} 7\n' in scrape(agent.port)[1]


def test_namespace_and_const_labels_are_configurable() -> None:
    with Agent("127.0.0.1:0", None, namespace="ns",
               const_labels={"a": "1", "b": "x y"}) as agent:
        send_grpc(agent.port, [Request(node=node("svc"), metrics=[
            metric("g", MD.GAUGE_INT64, [], [([], 1)])])])
        text = scrape(agent.port)[1]
    assert 'ns_g{a="1",b="x y",job="svc",instance="host:1"} 1\n' in text


def _stock_exporter(port: int) -> Any:
    # The stock client probes cloud metadata (E2) and calls utcnow (E13): both
    # are its own faults, kept out of this test.
    # Its import warns that grpcio-status is missing (google-api-core).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ImportWarning)
        from opencensus.common.monitored_resource import monitored_resource
        from opencensus.ext.ocagent import stats_exporter

    original = monitored_resource.get_instance
    monitored_resource.get_instance = lambda: None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return stats_exporter.StatsExporter(stats_exporter.ExportRpcHandler(
                stats_exporter._create_stub("127.0.0.1:%d" % port), "stock-py", "pyhost"))
    finally:
        monitored_resource.get_instance = original


def test_stock_opencensus_ocagent_exporter_is_received(agent: Agent) -> None:
    import datetime

    from opencensus.metrics import label_key, label_value
    from opencensus.metrics.export import metric as oc_metric
    from opencensus.metrics.export import metric_descriptor, time_series, value
    from opencensus.metrics.export import point as oc_point

    stamp = datetime.datetime(2026, 1, 1, 12, 0, 0)
    descriptor = metric_descriptor.MetricDescriptor(
        "requests", "requests served", "1",
        metric_descriptor.MetricDescriptorType.CUMULATIVE_INT64,
        [label_key.LabelKey("route", "")])
    series = time_series.TimeSeries(
        [label_value.LabelValue("/a")], [oc_point.Point(value.ValueLong(42), stamp)],
        "2026-01-01T11:00:00.000000Z")
    exporter = _stock_exporter(agent.port)
    exporter.export_metrics([oc_metric.Metric(descriptor, [series])])
    try:
        deadline = time.monotonic() + 10
        expected = ('promdemo_requests_total{vendor="otc",job="stock-py",instance="pyhost:%d",'
                    'route="/a"} 42\n' % os.getpid())
        while expected not in scrape(agent.port)[1]:
            assert time.monotonic() < deadline, scrape(agent.port)[1]
            time.sleep(0.02)
    finally:
        exporter._rpc_handler._rpc.close()


def test_invalid_utf8_in_a_label_value_refuses_the_whole_grpc_request(agent: Agent) -> None:
    # The gRPC reader parses label values lazily (see _protorequest); a bad one must
    # still refuse the request, as parsing it whole would, and store nothing.
    good = metric("g", MD.GAUGE_INT64, ["k"], [(["ok"], 1)])
    body = Request(node=node("utf"), metrics=[good]).SerializeToString()
    body = body.replace(b"ok", b"\xff\xfe")
    with pytest.raises(grpc.RpcError) as failure:
        with grpc.insecure_channel("127.0.0.1:%d" % agent.port) as channel:
            export = channel.stream_stream(
                "/opencensus.proto.agent.metrics.v1.MetricsService/Export",
                request_serializer=lambda b: b, response_deserializer=lambda b: b)
            list(export(iter([body]), timeout=10))
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "LabelValue" in (failure.value.details() or "")
    assert "utf" not in scrape(agent.port)[1]


def test_unusual_json_goes_through_json_format(agent: Agent) -> None:
    body = json.dumps({"node": {"serviceInfo": {"name": "odd"}}, "metrics": [
        {"metricDescriptor": {"name": "g", "type": "GAUGE_DOUBLE"},
         "timeseries": [{"points": [{"doubleValue": "Infinity"}]}]},
        {"metricDescriptor": {"name": "s", "type": "SUMMARY"},
         "timeseries": [{"points": [{"summaryValue": {"count": "2", "sum": 3.0}}]}]}]})
    assert http_post(agent.port, "/v1/metrics", body.encode())[0] == 200
    text = scrape(agent.port)[1]
    assert 'promdemo_g{vendor="otc",job="odd"} +Inf\n' in text
    assert 'promdemo_s_count{vendor="otc",job="odd"} 2\n' in text
