"""export.otel against real OTLP/HTTP and OTLP/gRPC receivers: recorded = received."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Tuple, Union

import pytest

from gotools_compat import event, export, metric, stats  # first: E13's clock patch

import grpc
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import TagMap
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics.export import (ConsoleMetricExporter, HistogramDataPoint,
                                              MetricExporter, MetricExportResult)

from gotools_compat._otel import data as otel_data
from gotools_compat.export import otel
from tests import otlp_grpc_receiver
from tests.helpers import thread_started
from tests.otlp_receiver import Kept, Receiver, attrs, find_metric, series

# Each test defines its metrics in a fresh registry (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("registry")

CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def connected(receiver: Receiver) -> Iterator[otel.Exporter]:
    e = otel.connect(OTLPMetricExporter(endpoint=receiver.endpoint, timeout=5),
                     interval=3600, service="svc-test", host="host-test")
    yield e
    e.shutdown(5000)


def flushed(e: otel.Exporter, receiver: Kept) -> Any:
    assert e.force_flush(5000) is True
    return receiver.requests[-1]


# Both transports: the OTLP/HTTP exporter against the OTLP/HTTP receiver
# (tests.otlp_receiver), the OTLP/gRPC exporter against the OTLP/gRPC one
# (tests.otlp_grpc_receiver).

GrpcReceiver = otlp_grpc_receiver.Receiver
AnyReceiver = Union[Receiver, GrpcReceiver]
TRANSPORTS = ["http", "grpc"]


def start_receiver(transport: str) -> AnyReceiver:
    if transport == "grpc":
        return GrpcReceiver().start()
    return Receiver().start()


@pytest.fixture
def transport_receiver(transport: str) -> Iterator[AnyReceiver]:
    """A started receiver for the test's ``transport`` parameter."""
    r = start_receiver(transport)
    yield r
    r.stop()


def sdk_exporter(transport: str, endpoint: str, timeout: float = 5,
                 **kwargs: Any) -> MetricExporter:
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=endpoint, insecure=True, timeout=timeout, **kwargs)
    return OTLPMetricExporter(endpoint=endpoint, timeout=timeout, **kwargs)


@contextmanager
def hanging_endpoint(transport: str) -> Iterator[Tuple[socket.socket, str]]:
    """A listening socket that never accepts, and its endpoint as ``transport`` spells it.

    Connections to it are made (and requests sent); no answer ever comes.
    """
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        address = "127.0.0.1:%d" % hole.getsockname()[1]
        yield hole, address if transport == "grpc" else "http://%s/v1/metrics" % address
    finally:
        hole.close()


def refuse(receiver: AnyReceiver, on: bool) -> None:
    """Have ``receiver`` answer every export with an error (or no longer)."""
    if isinstance(receiver, GrpcReceiver):
        receiver.fail_code = grpc.StatusCode.UNAVAILABLE if on else None
    else:
        receiver.fail_status = 400 if on else 0  # not retried by the OTLP exporter itself


def _poll(predicate: Callable[[], bool], deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def test_core_does_not_import_opentelemetry() -> None:
    code = ("import sys; import gotools_compat.metric, gotools_compat.stats, "
            "gotools_compat.event, gotools_compat.export, gotools_compat.export.ocagent, "
            "gotools_compat.export.prometheus; "
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))")
    out = subprocess.run([sys.executable, "-c", code], check=True,
                         capture_output=True, text=True, cwd=os.path.dirname(
                             os.path.dirname(os.path.abspath(__file__)))).stdout
    assert out.strip() == "[]"


def test_histogram_round_trip_bucket_by_bucket(connected: otel.Exporter,
                                              receiver: Receiver) -> None:
    name = "otel_hist"
    method = event.new_string_key("method")
    m = stats.Float64("otel_hist_m", "latency", "ms")
    bounds = [-10.0, -1.0, 0.0, 0.5, 10.0]
    metric.HistogramFloat64(name, "latency dist", bounds, keys=[method]).record(m)
    ctx = event.label(None, method.of("hover"))
    values = [-20.0, -10.0, -3.0, -1.0, 0.0, 0.25, 0.5, 7.0, 10.0, 10.5, 99.0]
    for v in values:
        m.record(ctx, v)
    resource, got = find_metric(flushed(connected, receiver), name)
    assert got.description == "latency dist" and got.unit == "ms"
    assert got.WhichOneof("data") == "histogram"
    assert got.histogram.aggregation_temporality == CUMULATIVE
    (point,) = got.histogram.data_points
    assert attrs(point.attributes) == {"method": "hover"}
    assert list(point.explicit_bounds) == bounds
    # value <= bound: -20,-10 | -3,-1 | 0 | 0.25,0.5 | 7,10 | 10.5,99
    assert list(point.bucket_counts) == [2, 2, 1, 2, 2, 2]
    assert point.count == 11
    assert point.sum == sum(values)
    assert (point.min, point.max) == (-20.0, 99.0)
    assert 0 < point.start_time_unix_nano <= point.time_unix_nano
    attributes = attrs(resource.attributes)
    assert attributes["service.name"] == "svc-test"
    assert attributes["host.name"] == "host-test"
    assert attributes["process.pid"] == os.getpid()


def test_second_export_is_cumulative_with_the_same_start(connected: otel.Exporter,
                                                        receiver: Receiver) -> None:
    name = "otel_cum"
    m = stats.Int64("otel_cum_m", "", "By")
    metric.HistogramInt64(name, "", [0, 100]).record(m)
    m.record(None, 100)
    first = series(find_metric(flushed(connected, receiver), name)[1])[()]
    m.record(None, 101)
    m.record(None, -5)
    second = series(find_metric(flushed(connected, receiver), name)[1])[()]
    assert list(first.bucket_counts) == [0, 1, 0]
    assert list(second.bucket_counts) == [1, 1, 1]
    assert (second.count, second.sum, second.min, second.max) == (3, 196, -5, 101)
    assert second.start_time_unix_nano == first.start_time_unix_nano
    assert second.time_unix_nano >= first.time_unix_nano


def test_counts_and_sums_are_monotonic_cumulative_sums(connected: otel.Exporter,
                                                       receiver: Receiver) -> None:
    mi = stats.Int64("otel_sum_i", "", "1")
    mf = stats.Float64("otel_sum_f", "", "s")
    count = metric.Scalar("otel_count", "how many").count_int64(mi)
    isum = metric.Scalar("otel_isum").sum_int64(mi)
    fsum = metric.Scalar("otel_fsum").sum_float64(mf)
    big = 2 ** 53 + 1
    mi.record(None, big)
    mi.record(None, 2)
    mf.record(None, 0.25)
    mf.record(None, 1.5)
    request = flushed(connected, receiver)
    for name, field, value in ((count, "as_int", 2), (isum, "as_int", big + 2),
                               (fsum, "as_double", 1.75)):
        got = find_metric(request, name)[1]
        assert got.WhichOneof("data") == "sum"
        assert got.sum.is_monotonic is True
        assert got.sum.aggregation_temporality == CUMULATIVE
        (point,) = got.sum.data_points
        assert point.WhichOneof("value") == field
        assert getattr(point, field) == value


def test_latest_values_are_gauges(connected: otel.Exporter, receiver: Receiver) -> None:
    mi = stats.Int64("otel_g_i", "", "1")
    mf = stats.Float64("otel_g_f", "", "1")
    gi = metric.Scalar("otel_last_i").latest_int64(mi)
    gf = metric.Scalar("otel_last_f").latest_float64(mf)
    for v in (5, -7):
        mi.record(None, v)
    for v in (2.5, -0.125):
        mf.record(None, v)
    request = flushed(connected, receiver)
    gauge_i = find_metric(request, gi)[1]
    gauge_f = find_metric(request, gf)[1]
    assert gauge_i.WhichOneof("data") == gauge_f.WhichOneof("data") == "gauge"
    assert gauge_i.gauge.data_points[0].as_int == -7
    assert gauge_f.gauge.data_points[0].as_double == -0.125


def test_an_int64_sum_past_the_int64_range_saturates_and_exports_the_rest(
        connected: otel.Exporter, receiver: Receiver) -> None:
    m = stats.Int64("otel_huge_m", "", "1")
    huge = metric.Scalar("otel_huge").sum_int64(m)
    other = metric.Scalar("otel_other").count_int64(m)
    for _ in range(3):
        m.record(None, 2 ** 62)
    request = flushed(connected, receiver)
    (point,) = find_metric(request, huge)[1].sum.data_points
    assert point.as_int == 2 ** 63 - 1
    (point,) = find_metric(request, other)[1].sum.data_points
    assert point.as_int == 3


def test_tags_become_attributes_and_missing_keys_are_left_out(
        connected: otel.Exporter, receiver: Receiver) -> None:
    method = event.new_string_key("method")
    code = event.new_int_key("code")
    m = stats.Int64("otel_tags_m", "", "1")
    name = metric.Scalar("otel_tags", keys=[method, code]).count_int64(m)
    m.record(event.label(None, method.of("GET"), code.of(200)), 1)
    m.record(event.label(None, method.of("GET"), code.of(200)), 1)
    m.record(event.label(None, method.of("PUT")), 1)
    m.record(event.label(None, code.of(404)), 1)
    got = series(find_metric(flushed(connected, receiver), name)[1])
    assert {k: p.as_int for k, p in got.items()} == {
        (("code", "200"), ("method", "GET")): 2,
        (("method", "PUT"),): 1,
        (("code", "404"),): 1,
    }


def test_overflow_row_carries_the_otel_overflow_attribute(
        connected: otel.Exporter, receiver: Receiver) -> None:
    key = event.new_string_key("user")
    m = stats.Int64("otel_ovf_m", "", "1")
    name = metric.Scalar("otel_ovf", keys=[key], max_rows=2).count_int64(m)
    for user in ("a", "b", "c", "d", "c"):
        m.record(event.label(None, key.of(user)), 1)
    got = series(find_metric(flushed(connected, receiver), name)[1])
    assert {k: p.as_int for k, p in got.items()} == {
        (("user", "a"),): 1, (("user", "b"),): 1, (("otel.metric.overflow", True),): 3}


def test_plain_opencensus_views_arrive_too(connected: otel.Exporter,
                                           receiver: Receiver) -> None:
    measure = oc_measure.MeasureFloat("otel_oc_m", "stock", "ms")
    dist_name, count_name, last_name = ("otel_oc_dist", "otel_oc_count",
                                        "otel_oc_last")
    manager = oc_stats.stats.view_manager
    for name, agg in ((dist_name, oc_aggregation.DistributionAggregation([1.0, 5.0])),
                      (count_name, oc_aggregation.CountAggregation()),
                      (last_name, oc_aggregation.LastValueAggregation())):
        manager.register_view(oc_view.View(name, "stock view", ["route"], measure, agg))
    tags = TagMap()
    tags.insert("route", "/a")
    for v in (0.5, 2.0, 7.0, 9.0):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, v)
        mmap.record(tags)
    request = flushed(connected, receiver)
    dist = series(find_metric(request, dist_name)[1])[(("route", "/a"),)]
    assert list(dist.explicit_bounds) == [1.0, 5.0]
    assert list(dist.bucket_counts) == [1, 1, 2]
    assert (dist.count, dist.sum) == (4, 18.5)
    assert not dist.HasField("min")  # opencensus distributions keep no min/max
    count = find_metric(request, count_name)[1]
    assert count.sum.is_monotonic and count.sum.data_points[0].as_int == 4
    last = find_metric(request, last_name)[1]
    assert last.gauge.data_points[0].as_double == 9.0
    assert find_metric(request, dist_name)[1].unit == "ms"


def test_our_metric_recorded_through_opencensus_arrives_once(
        connected: otel.Exporter, receiver: Receiver) -> None:
    m = stats.Float64("otel_mixed_m", "", "ms")
    name = metric.HistogramFloat64("otel_mixed", "", [0.0, 10.0]).record(m)
    m.record(None, 10.0)
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_float_put(metric.opencensus_measure(m), 0.0)
    mmap.record(TagMap())
    request = flushed(connected, receiver)
    names = [x.name for rm in request.resource_metrics for sm in rm.scope_metrics
             for x in sm.metrics]
    assert names.count(name) == 1
    point = find_metric(request, name)[1].histogram.data_points[0]
    assert list(point.bucket_counts) == [1, 1, 0]


def test_collect_start_times_are_fixed_per_series() -> None:
    key = event.new_string_key("k")
    m = stats.Int64("otel_start_m", "", "1")
    name = metric.Scalar("otel_start", keys=[key]).sum_int64(m)
    m.record(event.label(None, key.of("x")), 3)

    def points() -> List[Any]:
        (found,) = [x for x in otel.collect().resource_metrics[0].scope_metrics[0].metrics
                    if x.name == name]
        return list(found.data.data_points)

    (first,) = points()
    m.record(event.label(None, key.of("y")), 4)
    second = points()
    assert [p.start_time_unix_nano for p in second] == [first.start_time_unix_nano] * 2
    assert sorted((p.attributes["k"], p.value) for p in second) == [("x", 3), ("y", 4)]


def test_histogram_points_are_sdk_points_with_named_fields() -> None:
    m = stats.Float64("otel_fields_m", "", "1")
    name = metric.HistogramFloat64("otel_fields", "", [1.0]).record(m)
    m.record(None, 0.5)
    m.record(None, 3.0)
    (found,) = [x for x in otel.collect().resource_metrics[0].scope_metrics[0].metrics
                if x.name == name]
    (point,) = found.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert (point.count, point.sum, list(point.bucket_counts), list(point.explicit_bounds),
            point.min, point.max) == (2, 3.5, [1, 1], [1.0], 0.5, 3.0)


def test_collect_resource_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,host.name=h1")
    got = otel_data.resource(None, None, 42).attributes
    assert (got["service.name"], got["host.name"], got["process.pid"],
            got["deployment.environment"]) == ("from-env", "h1", 42, "test")
    explicit = otel_data.resource("mine", "hostx", 7).attributes
    assert (explicit["service.name"], explicit["host.name"]) == ("mine", "hostx")


def test_console_exporter_takes_collect_output() -> None:
    m = stats.Int64("otel_console_m", "", "1")
    name = metric.Scalar("otel_console").count_int64(m)
    m.record(None, 1)
    out = io.StringIO()
    exporter = ConsoleMetricExporter(out=out, formatter=lambda d: d.to_json(indent=None) + "\n")
    assert exporter.export(otel.collect()) is MetricExportResult.SUCCESS
    doc = json.loads(out.getvalue())
    found = [x for x in doc["resource_metrics"][0]["scope_metrics"][0]["metrics"]
             if x["name"] == name]
    assert found[0]["data"]["data_points"][0]["value"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_periodic_export_without_flush(transport: str,
                                       transport_receiver: AnyReceiver) -> None:
    m = stats.Int64("otel_periodic_m", "", "1")
    name = metric.Scalar("otel_periodic").count_int64(m)
    m.record(None, 1)
    e = otel.connect(sdk_exporter(transport, transport_receiver.endpoint), interval=0.05)
    try:
        requests = transport_receiver.wait_for(2)
    finally:
        e.shutdown(5000)
    for request in requests:
        assert find_metric(request, name)[1].sum.data_points[0].as_int == 1


@pytest.mark.parametrize("outage", ["refused", "down"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_outage_then_recovery_loses_nothing(
        transport: str, transport_receiver: AnyReceiver, outage: str,
        caplog: pytest.LogCaptureFixture) -> None:
    # "refused": the receiver answers every export with an error (see
    # refuse(): HTTP 400, gRPC UNAVAILABLE); "down": it is stopped and comes
    # back on the same port.  timeout=0.5: the gRPC exporter's own retry
    # (1 s backoff and more) does not fit, so each attempt fails at once.
    receiver = transport_receiver
    m = stats.Int64("otel_outage_m", "", "1")
    name = metric.Scalar("otel_outage").sum_int64(m)
    hist = metric.HistogramInt64("otel_outage_hist", "", [10]).record(m)
    e = otel.connect(sdk_exporter(transport, receiver.endpoint, timeout=0.5), interval=3600)
    try:
        m.record(None, 5)
        assert find_metric(flushed(e, receiver), name)[1].sum.data_points[0].as_int == 5
        with caplog.at_level(logging.INFO, logger="gotools_compat.export.otel"):
            if outage == "refused":
                refuse(receiver, True)
            else:
                receiver.stop()
            assert e.force_flush(5000) is False
            m.record(None, 6)
            assert e.force_flush(5000) is False
            m.record(None, 20)
            if outage == "refused":
                assert receiver.failures == 2
                refuse(receiver, False)
                request = flushed(e, receiver)  # the first export after it works
            else:
                receiver.start()
                assert _poll(lambda: e.force_flush(5000))
                request = receiver.requests[-1]
    finally:
        e.shutdown(5000)
    assert find_metric(request, name)[1].sum.data_points[0].as_int == 31
    point = find_metric(request, hist)[1].histogram.data_points[0]
    assert (list(point.bucket_counts), point.count, point.sum) == ([2, 1], 3, 31)
    ours = [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name == "gotools_compat.export.otel"]
    assert [level for level, _ in ours] == ["WARNING", "INFO"]  # the outage once, its end
    failed = re.search(r"after (\d+) failed attempts", ours[1][1])
    assert failed is not None and int(failed.group(1)) >= 2


@pytest.mark.parametrize("flush_first", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shutdown_exports_what_is_left_and_is_idempotent(
        transport: str, transport_receiver: AnyReceiver, flush_first: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = transport_receiver
    calls: List[float] = []
    sdk = sdk_exporter(transport, receiver.endpoint)
    sdk_shutdown = sdk.shutdown

    def counting(timeout_millis: float = 30_000, **kwargs: Any) -> None:
        calls.append(timeout_millis)
        sdk_shutdown(timeout_millis, **kwargs)

    monkeypatch.setattr(sdk, "shutdown", counting)
    m = stats.Int64("otel_shut_m", "", "1")
    name = metric.Scalar("otel_shut").count_int64(m)
    e = otel.connect(sdk, interval=3600)
    m.record(None, 1)
    sent = 1  # requests, and the count the last one carries
    if flush_first:
        assert find_metric(flushed(e, receiver), name)[1].sum.data_points[0].as_int == 1
        m.record(None, 1)
        sent = 2
    assert e.shutdown(5000) is True
    assert len(receiver.requests) == sent
    assert find_metric(receiver.requests[-1], name)[1].sum.data_points[0].as_int == sent
    assert e.shutdown(5000) is True
    e.close()
    assert len(calls) == 1
    assert e.closed is True
    assert e.force_flush(1000) is False
    assert len(receiver.requests) == sent


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shutdown_returns_within_its_timeout_when_the_endpoint_hangs(transport: str) -> None:
    # The SDK exporter waits for its own timeout (30 s here), not for the one
    # it is given.
    with hanging_endpoint(transport) as (_, endpoint):
        m = stats.Int64("otel_hang_m", "", "1")
        metric.Scalar("otel_hang").count_int64(m)
        m.record(None, 1)
        before = threading.enumerate()
        e = otel.connect(sdk_exporter(transport, endpoint, timeout=30), interval=3600)
        thread = thread_started(before, "gotools-otel-exporter")
        assert e.force_flush(200) is False
        assert e.shutdown(200) is False
        assert e.shutdown(200) is False
        if transport == "grpc":
            # Shutting the gRPC exporter down cancelled the call in flight:
            # the exporter's thread ends now, not after 30 s.  (The HTTP
            # exporter's request is not cancelled: it runs to its timeout.)
            thread.join(10)
            assert not thread.is_alive()


def test_works_with_set_exporter_and_multi(receiver: Receiver) -> None:
    m = stats.Int64("otel_multi_m", "", "1")
    name = metric.Scalar("otel_multi").count_int64(m)
    e = otel.connect(OTLPMetricExporter(endpoint=receiver.endpoint), interval=3600)
    both = export.multi(e, export.log_writer(io.StringIO(), True))
    before = export.get_exporter()
    export.set_exporter(both)
    try:
        m.record(None, 1)
        both.flush()  # type: ignore[attr-defined]
        assert find_metric(receiver.requests[-1], name)[1].sum.data_points[0].as_int == 1
        both.close()  # type: ignore[attr-defined]
        assert e.closed is True
    finally:
        export.set_exporter(before)


def test_connect_refuses_what_is_not_an_exporter() -> None:
    with pytest.raises(TypeError):
        otel.connect(object())
    with pytest.raises(ValueError):
        otel.connect(ConsoleMetricExporter(out=io.StringIO()), interval=0)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
@pytest.mark.parametrize("with_ocagent", [False, True])
def test_a_forked_child_exports_its_own_values_under_its_own_pid(
        receiver: Receiver, with_ocagent: bool) -> None:
    script = textwrap.dedent("""
        import os, sys, warnings
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from gotools_compat import metric, stats
        from gotools_compat.export import otel
        m = stats.Int64("fork_requests", "", "1")
        metric.Scalar("fork_count").count_int64(m)
        if sys.argv[2] == "True":  # ocagent's fork hooks too (to a closed port)
            from gotools_compat.export import ocagent
            ocagent.connect(ocagent.Config(address="127.0.0.1:9", rate=3600, timeout=1))
        e = otel.connect(OTLPMetricExporter(endpoint=sys.argv[1], timeout=5), interval=3600)
        for _ in range(5):
            m.record(None, 1)
        assert e.force_flush()
        with warnings.catch_warnings():  # 3.12+: forking with threads
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            for _ in range(3):
                m.record(None, 1)
            os._exit(0 if e.force_flush() else 3)
        m.record(None, 1)
        _, status = os.waitpid(pid, 0)
        assert e.force_flush()
        print(pid)
        sys.exit(status >> 8)
    """)
    done = subprocess.run([sys.executable, "-c", script, receiver.endpoint, str(with_ocagent)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    child = int(done.stdout.split()[-1])
    by_pid = {}
    for request in receiver.requests:
        resource, found = find_metric(request, "fork_count")
        by_pid[attrs(resource.attributes)["process.pid"]] = found.sum.data_points[0]
    assert len(by_pid) == 2
    parent = next(pid for pid in by_pid if pid != child)
    assert by_pid[child].as_int == 3
    assert by_pid[parent].as_int == 6
    assert by_pid[child].start_time_unix_nano > by_pid[parent].start_time_unix_nano


# The OTLP/gRPC exporter only: its metadata.

@pytest.mark.parametrize("transport", ["grpc"])
def test_grpc_counter_histogram_labels_and_resource_arrive(
        transport_receiver: AnyReceiver) -> None:
    method = event.new_string_key("method")
    m = stats.Float64("grpc_latency", "", "ms")
    count = metric.Scalar("grpc_count", "calls", keys=[method]).count_float64(m)
    hist = metric.HistogramFloat64("grpc_hist", "latency dist", [1.0, 10.0],
                                   keys=[method]).record(m)
    hover, rename = event.label(None, method.of("hover")), event.label(None, method.of("rename"))
    for v in (0.5, 1.0, 2.5, 10.0, 12.0):
        m.record(hover, v)
    m.record(rename, 100.0)
    e = otel.connect(sdk_exporter("grpc", transport_receiver.endpoint,
                                  headers={"x-tenant": "t1"}),
                     interval=3600, service="svc-grpc", host="host-grpc")
    try:
        request = flushed(e, transport_receiver)
    finally:
        e.shutdown(5000)
    resource, got = find_metric(request, count)
    assert attrs(resource.attributes)["service.name"] == "svc-grpc"
    assert attrs(resource.attributes)["host.name"] == "host-grpc"
    assert attrs(resource.attributes)["process.pid"] == os.getpid()
    assert got.description == "calls"
    assert got.sum.is_monotonic and got.sum.aggregation_temporality == CUMULATIVE
    assert {k: p.as_int for k, p in series(got).items()} == {
        (("method", "hover"),): 5, (("method", "rename"),): 1}
    got = find_metric(request, hist)[1]
    assert (got.description, got.unit) == ("latency dist", "ms")
    assert got.histogram.aggregation_temporality == CUMULATIVE
    points = series(got)
    point = points[(("method", "hover"),)]
    assert list(point.explicit_bounds) == [1.0, 10.0]
    assert list(point.bucket_counts) == [2, 2, 1]  # 0.5, 1 | 2.5, 10 | 12
    assert (point.count, point.sum, point.min, point.max) == (5, 26.0, 0.5, 12.0)
    point = points[(("method", "rename"),)]
    assert (list(point.bucket_counts), point.count, point.sum) == ([0, 0, 1], 1, 100.0)
    headers = transport_receiver.headers[0]
    assert headers["x-tenant"] == "t1"
    assert headers["user-agent"].startswith("OTel-OTLP-Exporter-Python/")
    assert "grpc-python/" in headers["user-agent"]


# Exit without shutdown, on both transports.

_EXIT_SCRIPT = textwrap.dedent("""
    import atexit, logging, sys, threading, time
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    from gotools_compat import event, metric, stats
    from gotools_compat.export import otel
    transport, endpoint, n, sdk_timeout, timeout, no_thread_at_exit = sys.argv[1:]
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter)
        sdk_exporter = OTLPMetricExporter(endpoint=endpoint, insecure=True,
                                          timeout=float(sdk_timeout))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter)
        sdk_exporter = OTLPMetricExporter(endpoint=endpoint, timeout=float(sdk_timeout))
    method = event.new_string_key("method")
    m = stats.Float64("exit_latency", "", "ms")
    metric.Scalar("exit_count", keys=[method]).count_float64(m)
    metric.HistogramFloat64("exit_hist", "", [1, 10]).record(m)
    e = otel.connect(sdk_exporter, interval=3600, timeout=float(timeout), service="exit-svc")
    if no_thread_at_exit == "True":
        # What CPython 3.12.0 and 3.12.1 do at exit, on every Python.  This
        # hook runs before the exporter's (atexit runs the last one first).
        def refuse(self):
            sys.stderr.write("a thread was started at exit\\n")
            raise RuntimeError("can't create new thread at interpreter shutdown")
        def no_thread_from_now_on():
            assert not e.closed
            threading.Thread.start = refuse
        atexit.register(no_thread_from_now_on)
    ctx = event.label(None, method.of("hover"))
    for i in range(int(n)):
        m.record(ctx, float(i))
    print(time.time(), flush=True)  # the script's end: the exit starts here
""")


def _exit_delay(*args: Any) -> Tuple[float, List[str]]:
    """Run _EXIT_SCRIPT; (seconds from the script's end to the process's, our WARNINGs)."""
    done = subprocess.run([sys.executable, "-c", _EXIT_SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    ended = time.time()
    assert done.returncode == 0, done.stderr
    assert "a thread was started at exit" not in done.stderr
    ours = [line for line in done.stderr.splitlines()
            if line.startswith("WARNING gotools_compat.export.otel:")]
    return ended - float(done.stdout.split()[-1]), ours


@pytest.mark.parametrize("no_thread_at_exit", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_child_process_that_just_exits_delivers_every_value(
        transport: str, no_thread_at_exit: bool) -> None:
    # No flush, no shutdown: the exit hook's shutdown does the only export.
    # It needs no new thread, so it works where none can start at exit
    # (3.12.0, 3.12.1): the exporter's thread is there already, and neither
    # the HTTP exporter nor the gRPC one, whose calls are blocking unary
    # ones, starts any (gRPC streams do: export.ocagent posts over HTTP at
    # exit for that).
    n = 37
    receiver = start_receiver(transport)
    try:
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", _EXIT_SCRIPT, transport, receiver.endpoint,
             str(n), "5", "5", str(no_thread_at_exit)],
            capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert (done.returncode, done.stderr) == (0, "")
        (request,) = receiver.wait_for(1)
    finally:
        receiver.stop()
    resource, count = find_metric(request, "exit_count")
    assert attrs(resource.attributes)["service.name"] == "exit-svc"
    assert attrs(resource.attributes)["process.pid"] != os.getpid()
    assert {k: p.as_int for k, p in series(count).items()} == {(("method", "hover"),): n}
    point = find_metric(request, "exit_hist")[1].histogram.data_points[0]
    assert list(point.bucket_counts) == [2, 9, n - 11]  # 0, 1 | 2..10 | 11..36
    assert (point.count, point.sum) == (n, sum(range(n)))
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("no_thread_at_exit", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exit_with_a_hanging_endpoint_ends_at_the_export_timeout(
        transport: str, no_thread_at_exit: bool) -> None:
    # The SDK exporter would wait 30 s; the exit hook gives up after our
    # timeout (1 s), shuts it down, and the process ends.
    with hanging_endpoint(transport) as (hole, endpoint):
        delay, warnings = _exit_delay(transport, endpoint, 3, 30, 1.0, no_thread_at_exit)
        hole.settimeout(10)
        hole.accept()[0].close()  # the exit export did dial
    assert 0.8 <= delay <= 2.5
    assert len(warnings) == 1 and "no answer within 1s" in warnings[0], warnings


@pytest.mark.parametrize("no_thread_at_exit", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exit_with_nothing_listening_does_not_wait_for_the_sdk_retries(
        transport: str, no_thread_at_exit: bool) -> None:
    # Issue 13: the SDK exporters retry a refused connection with backoff
    # until their own timeout (30 s here); once refused, nothing can arrive.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = ("127.0.0.1:%d" if transport == "grpc" else "http://127.0.0.1:%d/v1/metrics"
                ) % port
    delay, warnings = _exit_delay(transport, endpoint, 3, 30, 5.0, no_thread_at_exit)
    assert delay < 1.0  # bench_exit.py has the figure
    assert len(warnings) == 1, warnings
    assert "port %d: connection refused" % port in warnings[0]
    assert "2 series not delivered" in warnings[0]  # exit_count and exit_hist
