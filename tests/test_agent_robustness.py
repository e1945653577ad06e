"""gotools_compat.agent under bad input and rough clients: each case, then proof
that the agent still serves and kept the other senders' series."""

from __future__ import annotations

import gc
import http.client
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import grpc
import pytest
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat._server import Limits
from gotools_compat.agent import Agent
from tests.helpers import http_post

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()
EXPORT = "/opencensus.proto.agent.metrics.v1.MetricsService/Export"
GO_LINE = 'promdemo_started_total{vendor="otc",job="gopls",instance="vm:2411"} 19\n'
Request = metrics_service_pb2.ExportMetricsServiceRequest


@pytest.fixture
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", None, max_message_bytes=64 * 1024,
              limits=Limits(header_timeout=0.3)).start()
    # Another sender's state, which nothing below may disturb.
    assert http_post(a.port, "/v1/metrics", GO_METRICS)[0] == 200
    yield a
    a.stop()


def get(port: int, path: str) -> Tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        conn.close()


def still_serving(agent: Agent) -> str:
    status, text = get(agent.port, "/metrics")
    assert status == 200 and GO_LINE in text
    list(text_string_to_metric_families(text))
    return text


def request(service: str, pid: int, value: int, pad: int = 0) -> Any:
    return Request(
        node=common_pb2.Node(identifier=common_pb2.ProcessIdentifier(host_name="h", pid=pid),
                             service_info=common_pb2.ServiceInfo(name=service)),
        metrics=[metrics_pb2.Metric(
            metric_descriptor=metrics_pb2.MetricDescriptor(
                name="n", type=metrics_pb2.MetricDescriptor.CUMULATIVE_INT64,
                description="x" * pad),
            timeseries=[metrics_pb2.TimeSeries(points=[metrics_pb2.Point(int64_value=value)])])])


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        return True


def test_garbage_bytes_get_a_400_and_nothing_else_changes(agent: Agent) -> None:
    reply = raw_exchange(agent.port, b"\x00\xff\x13garbage\r\n\r\n")
    assert reply.startswith(b"HTTP/1.") and b" 400 " in reply.split(b"\r\n")[0]
    still_serving(agent)


def test_a_broken_http2_preface_is_closed_by_grpc(agent: Agent) -> None:
    assert raw_exchange(agent.port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff") \
        [:9] != b"HTTP/1.1 "
    still_serving(agent)


def test_http11_requests_on_the_grpc_port(agent: Agent) -> None:
    assert get(agent.port, "/")[0] == 200
    status, body = get(agent.port, "/nope")
    assert status == 404 and json.loads(body) == {"error": "no such page: /nope"}
    assert http_post(agent.port, "/v2/metrics", b"{}")[0] == 404
    still_serving(agent)


def test_half_open_connections_do_not_block_others_and_are_closed(agent: Agent) -> None:
    silent = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    partial = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
    partial.sendall(b"PR")  # the start of an HTTP/2 preface, then nothing
    try:
        still_serving(agent)  # served while both sit there
        assert closed_by_peer(silent)  # the agent closed the silent one
        assert closed_by_peer(partial)
    finally:
        silent.close()
        partial.close()


def test_invalid_protobuf_over_grpc_is_invalid_argument(agent: Agent) -> None:
    with grpc.insecure_channel("127.0.0.1:%d" % agent.port) as channel:
        export = channel.stream_stream(EXPORT, request_serializer=lambda b: b,
                                       response_deserializer=lambda b: b)
        with pytest.raises(grpc.RpcError) as caught:
            list(export(iter([b"\x0a\xff\xff\xff\xff\x0f"]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportMetricsServiceRequest" in (caught.value.details() or "")
    still_serving(agent)


def test_invalid_protobuf_and_json_over_http_are_400(
        agent: Agent, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gotools_compat.agent")
    status, body = http_post(agent.port, "/v1/metrics", b"\x0a\xff\xff", "application/x-protobuf")
    assert status == 400 and b"invalid protobuf ExportMetricsServiceRequest" in body
    status, body = http_post(agent.port, "/v1/metrics", b'{"metrics": [')
    assert status == 400 and json.loads(body)["error"].startswith("invalid JSON")
    status, body = http_post(agent.port, "/v1/metrics", b'{"metrics": 5}')
    assert status == 400 and b"ExportMetricsServiceRequest" in body
    status, body = http_post(agent.port, "/v1/trace", b"[1, 2]")
    assert status == 400
    # One WARNING for the cause, every refusal counted.
    refused = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refused) == 1 and "refused (400)" in refused[0].getMessage()
    assert agent.limit_hits("bad_request") == 4
    still_serving(agent)


def test_messages_over_the_limit_are_refused_clearly(agent: Agent) -> None:
    big = request("big", 1, 1, pad=70 * 1024)
    status, body = http_post(agent.port, "/v1/metrics", big.SerializeToString(),
                        "application/x-protobuf")
    assert status == 413
    assert "exceeds the limit of 65536 bytes" in json.loads(body)["error"]
    with grpc.insecure_channel("127.0.0.1:%d" % agent.port) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.Export(iter([big]), timeout=10))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (caught.value.details() or "")
    assert "job=\"big\"" not in still_serving(agent)


def test_twenty_concurrent_clients(agent: Agent) -> None:
    errors: List[BaseException] = []

    def client(i: int) -> None:
        try:
            if i % 2:
                # Each client its own connection, as separate processes have: channels
                # of one process share one by default, and grpcio may refuse streams
                # beyond the agent's 8 a connection (REFUSED_STREAM: UNAVAILABLE).
                with grpc.insecure_channel("127.0.0.1:%d" % agent.port,
                                           options=[("grpc.use_local_subchannel_pool", 1)]
                                           ) as channel:
                    stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
                    list(stub.Export(iter([request("c", i, v) for v in (1, 2, i)]),
                                     timeout=30))
            else:
                for v in (1, 2, i):
                    body = request("c", i, v).SerializeToString()
                    assert http_post(agent.port, "/v1/metrics", body, "application/x-protobuf")[0] \
                        == 200
        except BaseException as exc:  # collected for the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    text = still_serving(agent)
    for i in range(20):
        assert 'promdemo_n_total{vendor="otc",job="c",instance="h:%d"} %d\n' % (i, i) in text


def _wait_for(agent: Agent, line: str) -> None:
    deadline = time.monotonic() + 10
    while line not in get(agent.port, "/metrics")[1]:
        assert time.monotonic() < deadline, "never saw %r" % line
        time.sleep(0.01)


def test_clients_disconnecting_mid_stream(agent: Agent) -> None:
    release = threading.Event()

    def requests() -> Iterator[Any]:
        yield request("quitter", 1, 5)
        release.wait(10)

    channel = grpc.insecure_channel("127.0.0.1:%d" % agent.port)
    stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
    call = stub.Export(requests())
    _wait_for(agent, 'promdemo_n_total{vendor="otc",job="quitter",instance="h:1"} 5\n')
    call.cancel()
    release.set()
    channel.close()
    # An HTTP client that leaves in the middle of its body, a gRPC connection
    # that dies after the preface.
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"me")
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00")
    text = still_serving(agent)
    # What the quitter sent before it left is kept.
    assert 'promdemo_n_total{vendor="otc",job="quitter",instance="h:1"} 5\n' in text


class _Watching(Agent):
    """An agent that notes whether the cyclic collector ran during each ingest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collector_on: List[bool] = []

    def ingest_metrics(self, node: Any, export: Any, sender: Any = None) -> Any:
        self.collector_on.append(gc.isenabled())
        return super().ingest_metrics(node, export, sender)


def test_json_bodies_are_read_with_the_collector_paused_then_restored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Paused for JSON (see _json.collector_paused), on again after every
    # request, including refused ones and 20 overlapping ones; left alone for
    # protobuf bodies and when the application turned it off itself.
    from gotools_compat.agent import _json

    monkeypatch.setattr(_json, "_PAUSE_LIMIT", 60.0)  # a slow machine must not end it
    assert gc.isenabled()
    agent = _Watching("127.0.0.1:0", None).start()
    try:
        assert http_post(agent.port, "/v1/metrics", GO_METRICS)[0] == 200
        binary = request("bin", 1, 5).SerializeToString()
        assert http_post(agent.port, "/v1/metrics", binary, "application/x-protobuf")[0] == 200
        assert agent.collector_on == [False, True] and gc.isenabled()
        assert http_post(agent.port, "/v1/metrics", b'{"metrics": [')[0] == 400
        assert gc.isenabled()

        bodies = [json_format.MessageToJson(request("j", i, i)).encode() for i in range(20)]
        statuses: List[int] = []
        threads = [threading.Thread(target=lambda b=b: statuses.append(
            http_post(agent.port, "/v1/metrics", b)[0])) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert statuses == [200] * 20 and gc.isenabled()
        assert agent.collector_on[2:] == [False] * 20
        assert 'job="j",instance="h:19"} 19\n' in still_serving(agent)

        gc.disable()  # the application's choice
        try:
            assert http_post(agent.port, "/v1/metrics", GO_METRICS)[0] == 200
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        agent.stop()


def test_a_collector_paused_too_long_is_enabled_for_the_next_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from gotools_compat.agent import _json

    monkeypatch.setattr(_json, "_PAUSE_LIMIT", 0.0)
    with _json.collector_paused():
        assert not gc.isenabled()
        time.sleep(0.001)
        with _json.collector_paused():  # an overlapping request, past the limit
            assert gc.isenabled()
        assert gc.isenabled()
    assert gc.isenabled()
    with _json.collector_paused():  # no overlap any more: paused again
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_response_leaves_in_one_segment(agent: Agent) -> None:
    # Status line, headers and body in one write: written separately, the body
    # waited for the client's delayed ACK (Nagle), 40 ms per POST.
    with socket.create_connection(("127.0.0.1", agent.port), timeout=10) as sock:
        for _ in range(3):  # keep-alive: every response, not only the first
            sock.sendall(b"POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         b"\r\nContent-Length: %d\r\n\r\n%s" % (len(GO_METRICS), GO_METRICS))
            first = sock.recv(65536)
            assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"\r\n\r\n{}")


def test_the_agents_bounds_reach_its_store_traces_and_json_reader() -> None:
    # Each keyword of Agent ends up where it bounds: series, spans, tracez, JSON depth.
    with Agent("127.0.0.1:0", None, max_series=2, max_tracez_spans=1,
               max_json_depth=8) as small:
        for pid in (1, 2, 3):  # three senders, one series each: the third is refused
            status, _ = http_post(small.port, "/v1/metrics",
                                  request("svc", pid, 10 * pid).SerializeToString(),
                                  "application/x-protobuf")
            assert status == 200
        status, text = get(small.port, "/metrics")
        values = {(s.labels.get("instance"), s.labels.get("cause")): s.value
                  for f in text_string_to_metric_families(text) for s in f.samples
                  if s.name == "promdemo_n_total" or s.value and s.name ==
                  "gotools_agent_refused_series_total"}
        assert values == {("h:1", None): 10, ("h:2", None): 20, (None, "max_series"): 1}
        deep = b'{"metrics": [{"x": ' + b"[" * 9 + b"]" * 9 + b"}]}"
        status, body = http_post(small.port, "/v1/metrics", deep)
        assert status == 400 and b"nested" in body
        spans = b'{"spans": [{"name": {"value": "a"}}, {"name": {"value": "b"}}]}'
        assert http_post(small.port, "/v1/trace", spans)[0] == 200
        status, tracez = get(small.port, "/debug/tracez.json?limit=1000000")
        assert status == 200 and [s["name"] for s in json.loads(tracez)["recent"]] == ["b"]
