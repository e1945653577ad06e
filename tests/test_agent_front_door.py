"""The agent's front door held by rough clients: half HTTP/2 prefaces, many held gRPC
streams, idle streams; each time another client is served and earlier data is kept."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat._server import Limits
from gotools_compat.agent import Agent
from tests.front_door import (connect, exchange, is_closed, parse, read_to_eof, wait_closed,
                              wait_until)
from tests.helpers import http_post

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()
GO_LINE = 'promdemo_started_total{vendor="otc",job="gopls",instance="vm:2411"} 19\n'
# A channel of its own: grpcio shares one connection between channels to one target.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def request(service: str, pid: int, value: int) -> Any:
    return metrics_service_pb2.ExportMetricsServiceRequest(
        node=common_pb2.Node(identifier=common_pb2.ProcessIdentifier(host_name="h", pid=pid),
                             service_info=common_pb2.ServiceInfo(name=service)),
        metrics=[metrics_pb2.Metric(
            metric_descriptor=metrics_pb2.MetricDescriptor(
                name="n", type=metrics_pb2.MetricDescriptor.CUMULATIVE_INT64),
            timeseries=[metrics_pb2.TimeSeries(points=[metrics_pb2.Point(int64_value=value)])])])


def line(service: str, pid: int, value: int) -> str:
    return 'promdemo_n_total{vendor="otc",job="%s",instance="h:%d"} %d\n' % (service, pid, value)


def scrape(port: int) -> str:
    reply = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    [(status, _, body)] = parse(reply)
    assert status == 200
    text = body.decode("utf-8")
    list(text_string_to_metric_families(text))
    return text


def gauges(port: int) -> Dict[str, float]:
    families = text_string_to_metric_families(scrape(port))
    return {s.name: s.value for f in families for s in f.samples if not s.labels}


def export(port: int, *requests: Any) -> None:
    with grpc.insecure_channel("127.0.0.1:%d" % port, options=OWN_CONNECTION) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        assert list(stub.Export(iter(requests), timeout=10)) == []


@pytest.fixture
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", "127.0.0.1:0",
              limits=Limits(header_timeout=2.5, max_connections=1000)).start()
    try:
        yield a
    finally:
        a.stop()


def test_half_http2_prefaces_wait_without_cpu_while_others_are_served(agent: Agent) -> None:
    assert http_post(agent.port, "/v1/metrics", GO_METRICS)[0] == 200
    socks = []
    try:
        start = time.monotonic()
        for i in range(200):
            sock = connect(agent.port)
            sock.sendall((b"P", b"PR", b"PRI ", b"PRI * HTTP/2.0\r\n\r\nSM")[i % 4])
            socks.append(sock)
        assert agent.prometheus_port is not None
        prom = agent.prometheus_port
        wait_until(lambda: gauges(prom)["gotools_agent_open_connections"] == 201, 10,
                   "200 connections and the scrape")
        cpu = time.process_time()
        time.sleep(1.0)
        spent = time.process_time() - cpu
        assert spent < 0.2, "%.2f s of CPU in 1 s with 200 half prefaces" % spent
        # Meanwhile an HTTP POST and a gRPC export are served.
        assert http_post(agent.port, "/v1/metrics", GO_METRICS)[0] == 200
        export(agent.port, request("whole", 1, 5))
        text = scrape(prom)
        assert GO_LINE in text and line("whole", 1, 5) in text
        if time.monotonic() - start < 2.0:  # else a slow box got past the timeout already
            assert not any(is_closed(s) for s in socks)
        for sock in socks:
            data, _ = wait_closed(sock, max(0.1, start + 2.5 + 5.0 - time.monotonic()))
            assert data == b""  # closed without a byte: neither HTTP nor gRPC
        assert time.monotonic() - start >= 2.5 * 0.9
    finally:
        for sock in socks:
            sock.close()
    assert agent.limit_hits("header_timeout") == 200
    text = scrape(prom)
    assert 'gotools_agent_limit_hits_total{limit="header_timeout"} 200\n' in text
    assert GO_LINE in text and line("whole", 1, 5) in text


def test_silent_grpc_connections_make_room_for_new_clients_at_the_cap() -> None:
    # A whole HTTP/2 preface, then nothing: a gRPC connection no timer of ours
    # ends; at max_connections the one quiet longest is closed for a newcomer.
    limits = Limits(max_connections=10, max_grpc_connections_per_peer=20)
    with Agent("127.0.0.1:0", None, limits=limits) as small:
        socks = [connect(small.port) for _ in range(10)]
        try:
            for sock in socks:
                sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                time.sleep(0.01)  # one after the other: the first is the quietest
            wait_until(lambda: gauges(small.port)["gotools_agent_open_connections"] >= 10,
                       10, "ten gRPC connections and the scrape")
            assert http_post(small.port, "/v1/metrics", GO_METRICS)[0] == 200
            export(small.port, request("newcomer", 1, 7))
            # Each newcomer at the bound closes one.  Whether the POST or the
            # export met the bound depends on when the connection before it was
            # seen to close, so newcomers that stay open (idle keep-alive, the
            # newest waiting) come until two were closed.
            held: List[http.client.HTTPConnection] = []
            try:
                while small.limit_hits("max_connections") < 2 and len(held) < 5:
                    client = http.client.HTTPConnection("127.0.0.1", small.port, timeout=10)
                    held.append(client)
                    client.request("GET", "/metrics")
                    text = client.getresponse().read().decode()
                    assert GO_LINE in text and line("newcomer", 1, 7) in text
                closed = small.limit_hits("max_connections")
                assert 2 <= closed <= 4
                for quietest in socks[:closed]:  # grpcio's SETTINGS came first, then the close
                    data, _ = wait_closed(quietest, 5.0)
                    assert data[3:4] == b"\x04"  # an HTTP/2 SETTINGS frame
                for newer in socks[closed:]:  # open still: reading times out
                    newer.settimeout(0.05)
                    with pytest.raises(socket.timeout):
                        read_to_eof(newer)
            finally:
                for client in held:
                    client.close()
        finally:
            for sock in socks:
                sock.close()


def test_300_held_streams_on_one_connection_leave_room_for_another_client(
        agent: Agent) -> None:
    release = threading.Event()

    def held(i: int) -> Iterator[Any]:
        yield request("held", i, i)
        release.wait(30)

    prom = agent.prometheus_port
    assert prom is not None
    channel = grpc.insecure_channel("127.0.0.1:%d" % agent.port, options=OWN_CONNECTION)
    try:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        calls = [stub.Export(held(i), timeout=60) for i in range(300)]
        # The connection gets max_streams_per_connection (8) of them at a time.
        wait_until(lambda: gauges(prom)["gotools_agent_open_grpc_streams"] == 8, 10,
                   "8 streams open")
        time.sleep(0.3)
        assert gauges(prom)["gotools_agent_open_grpc_streams"] == 8
        export(agent.port, request("other", 1, 42))
        text = scrape(prom)
        assert line("other", 1, 42) in text
        holding = [i for i in range(300) if line("held", i, i) in text]
        assert len(holding) == 8
        release.set()
        ended = {}
        for i, call in enumerate(calls):
            try:
                assert list(call) == []
            except grpc.RpcError:
                pass
            ended[i] = call.code()
    finally:
        release.set()
        channel.close()
    # The held ones end well.  Of those queued behind them, grpcio (client
    # and server alike, without the agent too) refuses some as slots free up
    # (REFUSED_STREAM, UNAVAILABLE to the client, which may retry).
    assert all(ended[i] == grpc.StatusCode.OK for i in holding)
    assert set(ended.values()) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
    text = scrape(prom)
    assert all(line("held", i, i) in text for i, code in ended.items()
               if code == grpc.StatusCode.OK)
    assert line("other", 1, 42) in text
    assert agent.limit_hits("stream_idle_timeout") == 0


def test_held_streams_over_many_connections_of_one_client_leave_room_for_another() -> None:
    # One client, 10 connections of 30 held streams each: the agent keeps 4 of its
    # connections (max_grpc_connections_per_peer), closing the quietest for each
    # new one, so its streams never take all max_streams and another exports.
    release = threading.Event()

    def held(i: int) -> Iterator[Any]:
        yield request("held", i, i)
        release.wait(30)

    with Agent("127.0.0.1:0", None, max_streams=150, max_streams_per_connection=32,
               limits=Limits(max_grpc_connections_per_peer=4)) as agent:
        channels = [grpc.insecure_channel("127.0.0.1:%d" % agent.port, options=OWN_CONNECTION)
                    for _ in range(10)]
        try:
            calls = []
            for c, channel in enumerate(channels):
                stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
                calls += [stub.Export(held(100 * c + i), timeout=60) for i in range(30)]
                floor = min(4, c + 1) * 30 - 30
                wait_until(lambda: gauges(agent.port)["gotools_agent_open_grpc_streams"]
                           >= floor, 10, "its streams to open")  # noqa: B023 (called at once)
            time.sleep(0.3)
            assert gauges(agent.port)["gotools_agent_open_grpc_streams"] <= 4 * 30
            assert agent.limit_hits("max_grpc_connections_per_peer") >= 6
            export(agent.port, request("other", 1, 42))  # a fifth connection: room again
            assert line("other", 1, 42) in scrape(agent.port)
        finally:
            release.set()
            for channel in channels:
                channel.close()


def test_streams_beyond_max_streams_are_refused_and_counted() -> None:
    release = threading.Event()

    def held(i: int) -> Iterator[Any]:
        yield request("held", i, i)
        release.wait(30)

    with Agent("127.0.0.1:0", None, max_streams=5) as agent:
        channel = grpc.insecure_channel("127.0.0.1:%d" % agent.port, options=OWN_CONNECTION)
        try:
            stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            calls = [stub.Export(held(i), timeout=60) for i in range(8)]
            wait_until(lambda: agent.limit_hits("max_streams") == 3, 10, "three refused")
            assert gauges(agent.port)["gotools_agent_open_grpc_streams"] == 5
            release.set()
            codes = []
            for call in calls:
                try:
                    list(call)
                except grpc.RpcError:
                    pass
                codes.append(call.code())
            assert sorted(c.name for c in codes) == ["OK"] * 5 + ["RESOURCE_EXHAUSTED"] * 3
            refused = [call.details() for call in calls
                       if call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED]
            assert refused == ["the agent has 5 gRPC streams open (--max-streams)"] * 3
        finally:
            release.set()
            channel.close()


def test_an_idle_stream_is_ended_and_a_sending_one_kept() -> None:
    agent = Agent("127.0.0.1:0", None, stream_idle_timeout=1.0).start()
    stop = threading.Event()
    sent: List[int] = []

    def stale() -> Iterator[Any]:
        yield request("stale", 1, 7)
        stop.wait(30)

    def lively() -> Iterator[Any]:
        while not stop.is_set():
            sent.append(len(sent) + 1)
            yield request("lively", 2, sent[-1])
            stop.wait(0.2)

    channel = grpc.insecure_channel("127.0.0.1:%d" % agent.port, options=OWN_CONNECTION)
    try:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        start = time.monotonic()
        stale_call = stub.Export(stale(), timeout=30)
        lively_call = stub.Export(lively(), timeout=30)
        with pytest.raises(grpc.RpcError) as caught:
            list(stale_call)
        assert caught.value.code() == grpc.StatusCode.CANCELLED
        assert 0.9 <= time.monotonic() - start < 1.0 + 5.0
        assert agent.limit_hits("stream_idle_timeout") == 1
        time.sleep(1.5)  # the lively one goes on past the idle timeout
        assert not lively_call.done() and len(sent) >= 5
        stop.set()
        assert list(lively_call) == [] and lively_call.code() == grpc.StatusCode.OK
        text = scrape(agent.port)
        assert line("stale", 1, 7) in text and line("lively", 2, sent[-1]) in text
        assert 'gotools_agent_limit_hits_total{limit="stream_idle_timeout"} 1\n' in text
        assert agent.limit_hits("stream_idle_timeout") == 1
    finally:
        stop.set()
        channel.close()
        agent.stop()
