"""gotools-agent --otlp: what the agent receives arrives at a real OTLP/HTTP receiver."""

from __future__ import annotations

import http.client
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import grpc
import pytest

from gotools_compat import event, metric, stats  # first: E13's clock patch
from gotools_compat._oc import proto
from gotools_compat.agent import Agent
from gotools_compat.agent.__main__ import main
from gotools_compat.export import ocagent
from tests.otlp_receiver import Receiver, attrs, find_metric, series

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()
MD = metrics_pb2.MetricDescriptor
Request = metrics_service_pb2.ExportMetricsServiceRequest


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def forwarding(receiver: Receiver, **kw: Any) -> Agent:
    return Agent("127.0.0.1:0", None, otlp="http://127.0.0.1:%d" % receiver.port, **kw).start()


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/metrics", body=body,
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode("utf-8")
    finally:
        conn.close()


def send_grpc(port: int, requests: List[Any]) -> None:
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        list(stub.Export(iter(requests), timeout=10))


def arrived(receiver: Receiver, name: str, deadline: float = 10.0) -> Tuple[Any, Any]:
    """(resource, metric) of the latest request that carries ``name``."""
    end = time.monotonic() + deadline
    count = 1
    while True:
        requests = receiver.wait_for(count, max(0.1, end - time.monotonic()))
        for request in reversed(requests):
            try:
                return find_metric(request, name)
            except AssertionError:
                pass
        count = len(requests) + 1


def own_metrics(port: int) -> Dict[str, float]:
    values = {}
    for line in scrape(port).splitlines():
        if line.startswith("gotools_agent_otlp_"):
            name, value = line.split(" ")
            values[name] = float(value)
    return values


def poll(fn: Any, deadline: float = 10.0) -> Any:
    end = time.monotonic() + deadline
    while True:
        result = fn()
        if result:
            return result
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.02)


def test_go_fixture_arrives_bucket_by_bucket_with_repaired_counts(receiver: Receiver) -> None:
    agent = forwarding(receiver)
    try:
        assert post(agent.port, GO_METRICS) == 200
        resource, sent = arrived(receiver, "sent_bytes")
    finally:
        agent.stop()
    assert attrs(resource.attributes) == {
        "service.name": "gopls", "host.name": "vm", "process.pid": 2411,
        "telemetry.sdk.language": "go", "telemetry.sdk.version": "x/tools",
        "opencensus.exporterversion": "0.0.1",
        "opencensus.starttime": "2026-11-26T06:55:39.099119649Z"}
    # Go sent one cumulative count per bound (16, 17, 17, ...) and no
    # overflow bucket; OTLP gets per-bucket counts, the same as Prometheus' buckets.
    (point,) = sent.histogram.data_points
    assert list(point.explicit_bounds) == [1024, 2048, 4096, 16384, 65536, 1048576]
    assert list(point.bucket_counts) == [16, 1, 0, 0, 0, 0, 0]
    assert (point.count, point.sum) == (17, 8602)
    request = receiver.requests[-1]
    received = find_metric(request, "received_bytes")[1].histogram.data_points[0]
    assert list(received.bucket_counts) == [13, 0, 0, 0, 0, 0, 0] and received.sum == 2461
    # Series without label values are summed, as on /metrics (19 there too).
    started = find_metric(request, "started")[1]
    assert started.sum.is_monotonic and [p.as_int for p in started.sum.data_points] == [19]


@pytest.mark.usefixtures("registry")
def test_values_from_our_ocagent_exporter_arrive_bucket_by_bucket(receiver: Receiver) -> None:
    key = event.new_string_key("method")
    m = stats.Float64("agent_otlp_latency", "latency", "ms")
    name = metric.HistogramFloat64("agent_otlp_hist", "latency", [0, 10, 100],
                                   keys=[key]).record(m)
    agent = forwarding(receiver)
    exporter = ocagent.connect(ocagent.Config(address="127.0.0.1:%d" % agent.port,
                                              service="py-app", rate=3600.0, timeout=5.0))
    assert exporter is not None
    try:
        get = event.label(event.background(), key.of("get"))
        for v in (-1.0, 0.0, 5.0, 10.0, 50.0, 1000.0):
            m.record(get, v)
        m.record(event.background(), 0.5)
        assert exporter.flush()
        resource, hist = arrived(receiver, name)
    finally:
        exporter.close(timeout=2)
        agent.stop()
    assert attrs(resource.attributes)["service.name"] == "py-app"
    points = series(hist)
    got = points[(("method", "get"),)]
    assert list(got.bucket_counts) == [2, 2, 1, 1] and list(got.explicit_bounds) == [0, 10, 100]
    assert (got.count, got.sum) == (6, 1064.0)
    assert list(points[()].bucket_counts) == [0, 1, 0, 0]  # "no value": no attribute


def test_a_down_endpoint_is_counted_never_blocks_and_recovers(receiver: Receiver) -> None:
    receiver.fail_status = 503
    agent = forwarding(receiver, otlp_timeout=0.5)
    node = common_pb2.Node(identifier={"host_name": "h", "pid": 7},
                           service_info={"name": "svc"})

    def request(value: int) -> Any:
        return Request(node=node, metrics=[metrics_pb2.Metric(
            metric_descriptor=MD(name="jobs", type=MD.CUMULATIVE_INT64),
            timeseries=[{"points": [{"int64_value": value}]}])])

    try:
        send_grpc(agent.port, [request(1)])
        receiver.wait_for_failures(1)
        poll(lambda: own_metrics(agent.port).get("gotools_agent_otlp_failed_exports_total"))
        # Meanwhile ingest and scrapes go on; only the latest value waits.
        send_grpc(agent.port, [request(5)])
        assert 'promdemo_jobs_total{vendor="otc",job="svc",instance="h:7"} 5\n' \
            in scrape(agent.port)
        assert own_metrics(agent.port)["gotools_agent_otlp_pending_series"] == 1
        assert receiver.requests == []
        receiver.fail_status = 0
        _, jobs = arrived(receiver, "jobs")
        assert [p.as_int for p in jobs.sum.data_points] == [5]
        counts = poll(lambda: (lambda c: c if c.get(
            "gotools_agent_otlp_sent_series_total") else None)(own_metrics(agent.port)))
    finally:
        agent.stop()
    assert counts["gotools_agent_otlp_pending_series"] == 0
    assert counts["gotools_agent_otlp_dropped_series_total"] == 0
    assert counts["gotools_agent_otlp_sent_series_total"] == 1


def test_an_unreachable_endpoint_is_counted_and_ingest_goes_on() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    agent = Agent("127.0.0.1:0", None, otlp="http://127.0.0.1:%d" % port,
                  otlp_timeout=0.5).start()
    try:
        assert post(agent.port, GO_METRICS) == 200
        counts = poll(lambda: (lambda c: c if c.get(
            "gotools_agent_otlp_failed_exports_total") else None)(own_metrics(agent.port)))
        assert counts["gotools_agent_otlp_pending_series"] == 3
        assert post(agent.port, GO_METRICS) == 200
        assert "promdemo_started_total" in scrape(agent.port)
    finally:
        agent.stop(grace=0.5)


def test_no_opentelemetry_import_without_otlp() -> None:
    code = ("import sys; from gotools_compat.agent import Agent; "
            "a = Agent('127.0.0.1:0', None).start(); a.stop(); "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_missing_otel_packages_are_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules,
                        "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # main() installs handlers
    with pytest.raises(ImportError, match=r"pip install 'gotools_compat\[otel\]'"):
        Agent("127.0.0.1:0", None, otlp="http://127.0.0.1:4318")
    assert main(["--listen", "127.0.0.1:0", "--prometheus", "",
                 "--otlp", "http://127.0.0.1:4318"]) == 2
    assert "pip install 'gotools_compat[otel]'" in capsys.readouterr().err


def test_series_without_label_values_sum_and_gauges_keep_last_as_on_metrics(
        receiver: Receiver) -> None:
    def metric(name: str, kind: int, values: List[Any]) -> Any:
        key = "int64_value" if isinstance(values[0], int) else "double_value"
        return metrics_pb2.Metric(metric_descriptor=MD(name=name, type=kind),
                                  timeseries=[{"points": [{key: v}]} for v in values])

    agent = forwarding(receiver)
    try:
        send_grpc(agent.port, [Request(metrics=[
            metric("c", MD.CUMULATIVE_DOUBLE, [1.5, 2.0]),
            metric("g", MD.GAUGE_INT64, [1, -5]),
            metric("u", MD.UNSPECIFIED, [3, 4])])])  # inferred: a gauge, like the store
        _, counter = arrived(receiver, "c")
    finally:
        agent.stop()
    request = receiver.requests[-1]
    assert [p.as_double for p in counter.sum.data_points] == [3.5]
    assert [p.as_int for p in find_metric(request, "g")[1].gauge.data_points] == [-5]
    assert [p.as_int for p in find_metric(request, "u")[1].gauge.data_points] == [4]


def test_pending_series_are_bounded_and_the_rest_counted(receiver: Receiver) -> None:
    from gotools_compat.agent import _protorequest
    from gotools_compat.agent._otlp import Forwarder

    receiver.fail_status = 503
    forwarder = Forwarder("http://127.0.0.1:%d" % receiver.port, timeout=0.5, max_series=2)
    forwarder.start()
    try:
        request = Request(metrics=[metrics_pb2.Metric(
            metric_descriptor=MD(name="n", type=MD.GAUGE_INT64, label_keys=[{"key": "k"}]),
            timeseries=[{"label_values": [{"value": v, "has_value": True}],
                         "points": [{"int64_value": i}]} for i, v in enumerate("abc")])])
        forwarder.submit(("svc", "h", 1), None, _protorequest.from_proto(request))
        receiver.wait_for_failures(1)
        counts = {f.name: items[0][1] for f, items in forwarder.families()}
    finally:
        forwarder.stop(grace=5.0)  # returns once the last attempt is over
    assert counts["gotools_agent_otlp_pending_series"] == 2
    assert counts["gotools_agent_otlp_dropped_series"] == 1
    # The stop could not send the two pending ones either: counted too.
    assert {f.name: items[0][1] for f, items in forwarder.families()}[
        "gotools_agent_otlp_dropped_series"] == 3
