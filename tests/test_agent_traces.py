"""Spans into gotools_compat.agent: /debug/tracez (HTML, JSON) and Zipkin forwarding."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any, Iterator, Tuple

import grpc
import pytest

from gotools_compat._oc import proto
from gotools_compat.agent import Agent

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.trace.v1 import (  # noqa: E402
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

from tests.zipkin_receiver import Receiver as ZipkinReceiver  # noqa: E402

GO_TRACE = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-trace.json").read_bytes()


def post(port: int, path: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def get(port: int, path: str) -> Tuple[str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


@pytest.fixture
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", "127.0.0.1:0").start()
    yield a
    a.stop()


def test_go_trace_fixture_on_tracez_json(agent: Agent) -> None:
    assert post(agent.port, "/v1/trace", GO_TRACE) == 200
    content_type, body = get(agent.prometheus_port or 0, "/debug/tracez.json")
    assert content_type == "application/json"
    doc = json.loads(body)
    names = {row["name"]: row for row in doc["spanNames"]}
    assert sorted(names) == ["queued", "source.Hover", "source.Identifier",
                             "textDocument/hover"]
    hover = names["textDocument/hover"]
    # 06:55:43.570932696 -> .573176543: 2.243847 ms
    assert hover["count"] == 1 and hover["errors"] == 0 and hover["latency"]["1ms"] == 1
    assert names["queued"]["latency"]["10us"] == 1  # 45.928 us
    root = [s for s in doc["recent"] if s["name"] == "textDocument/hover"][0]
    assert root["traceId"] == "cb769d8d4192f073e9b0f36486875f11"
    assert root["spanId"] == "a393c8c2b375a1b2" and root["parentSpanId"] == ""
    assert root["durationNano"] == 2_243_847 and root["service"] == "gopls"
    assert root["attributes"] == {"direction": "in", "id": "#11",
                                  "method": "textDocument/hover"}
    assert root["annotations"][0]["value"] == "status.code=OK"


def test_tracez_html_page(agent: Agent) -> None:
    post(agent.port, "/v1/trace", GO_TRACE)
    # The plain tables of before (the live page at /debug/tracez: test_pages_*.py).
    content_type, body = get(agent.prometheus_port or 0, "/debug/tracez?format=table")
    page = body.decode()
    assert content_type == "text/html; charset=utf-8"
    assert "<tr><td>textDocument/hover</td><td>1</td><td>0</td>" \
           "<td>0</td><td>0</td><td>0</td><td>1</td>" in page


def _span(name: str, code: int = 0) -> Any:
    return trace_pb2.Span(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name={"value": name},
        kind=trace_pb2.Span.SERVER, start_time={"seconds": 100, "nanos": 0},
        end_time={"seconds": 100, "nanos": 5_000_000}, status={"code": code, "message": "bad"})


def test_spans_over_grpc_and_a_bounded_store() -> None:
    with Agent("127.0.0.1:0", None, max_spans=2) as agent:
        request = trace_service_pb2.ExportTraceServiceRequest(
            node=common_pb2.Node(service_info={"name": "py"}),
            spans=[_span("a"), _span("a", code=2), _span("b")])
        with grpc.insecure_channel("127.0.0.1:%d" % agent.port) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            assert list(stub.Export(iter([request]), timeout=10)) == []
        doc = json.loads(get(agent.port, "/debug/tracez?format=json")[1])
    assert [(r["name"], r["count"], r["errors"], r["latency"]["1ms"])
            for r in doc["spanNames"]] == [("a", 2, 1, 2), ("b", 1, 0, 1)]
    assert [s["name"] for s in doc["recent"]] == ["a", "b"]  # only the last two kept
    assert doc["recent"][0]["status"] == {"code": 2, "message": "bad"}


def test_spans_forwarded_to_zipkin_v2() -> None:
    with ZipkinReceiver() as zipkin:
        with Agent("127.0.0.1:0", None, zipkin=zipkin.url) as agent:
            assert post(agent.port, "/v1/trace", GO_TRACE) == 200
            spans = {s["name"]: s for s in zipkin.wait_for(4)}
    root = spans["textDocument/hover"]
    assert root == {
        "traceId": "cb769d8d4192f073e9b0f36486875f11", "id": "a393c8c2b375a1b2",
        "name": "textDocument/hover", "timestamp": 1795676143570932, "duration": 2243,
        "localEndpoint": {"serviceName": "gopls"},
        "tags": {"direction": "in", "id": "#11", "method": "textDocument/hover"},
        "annotations": [{"timestamp": 1795676143573174, "value": "status.code=OK"}]}
    assert spans["queued"]["parentId"] == "a393c8c2b375a1b2"
    assert spans["queued"]["duration"] == 45
