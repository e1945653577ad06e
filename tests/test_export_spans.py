"""Spans through the ocagent exporter: the wire bytes, a real agent's tracez, Zipkin."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from gotools_compat import _oc, event, export
from gotools_compat._oc import proto
from gotools_compat._wire import spans
from gotools_compat.agent import Agent
from gotools_compat.export import ocagent

proto.install()

from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402
from opencensus.trace import execution_context, samplers  # noqa: E402
from opencensus.trace import tracer as oc_tracer  # noqa: E402

from tests.zipkin_receiver import Receiver as ZipkinReceiver  # noqa: E402

_oc.patch_clock("opencensus.trace.span")
ROOT = Path(__file__).resolve().parent.parent


def get_json(port: int, path: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


def recent(agent: Agent, names: List[str]) -> Dict[str, Any]:
    doc = get_json(agent.prometheus_port or 0, "/debug/tracez.json?limit=1000")
    found = {s["name"]: s for s in doc["recent"] if s["name"] in names}
    assert sorted(found) == sorted(names), doc["recent"]
    return found


@pytest.fixture
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", "127.0.0.1:0").start()
    yield a
    a.stop()


@pytest.fixture
def connected(agent: Agent) -> Iterator[ocagent.Exporter]:
    saved = export.get_exporter()
    e = ocagent.connect(ocagent.Config(address="127.0.0.1:%d" % agent.port,
                                       service="span-test", rate=3600))
    assert e is not None
    export.set_exporter(e)
    yield e
    export.set_exporter(saved)
    e.close()
    execution_context.clean()


def _ended(name: str, *tags: event.Tag) -> event.Span:
    ctx, end = event.start_span(event.background(), name, *tags)
    end()
    span = event.get_span(ctx)
    assert span is not None
    return span


# The bytes.

def test_a_span_encodes_to_the_opencensus_span_message() -> None:
    keys = [event.new_string_key("s"), event.new_int_key("i"), event.new_float64_key("f"),
            event.new_boolean_key("b"), event.new_error_key("e"), event.new_uint64_key("u"),
            event.new_key("any")]
    values: List[Any] = ["text", -5, 0.25, False, OSError("disk full"), 2 ** 64 - 1, [1, 2]]
    ctx, end = event.start_span(event.background(), "parent")
    child, end_child = event.start_span(ctx, "child", *[k.of(v) for k, v in zip(keys, values)])
    event.print(child, "cache miss", keys[0].of("a.go"))
    event.error(child, "read", ValueError("eof"))
    event.error(child, "", KeyError("k"))
    end_child()
    end()
    ours = event.get_span(child)
    assert ours is not None
    span = trace_pb2.Span.FromString(spans.encode(ours))
    assert span.trace_id == ours.trace_id.to_bytes(16, "big")
    assert span.span_id == ours.id.to_bytes(8, "big")
    assert span.parent_span_id == ours.parent_id.to_bytes(8, "big")
    assert span.name.value == "child"
    start = span.start_time.seconds * 10 ** 9 + span.start_time.nanos
    end_ns = span.end_time.seconds * 10 ** 9 + span.end_time.nanos
    assert (start, end_ns) == (ours.start, ours.end)
    attrs = span.attributes.attribute_map
    assert {k: v.WhichOneof("value") for k, v in attrs.items()} == {
        "s": "string_value", "i": "int_value", "f": "double_value", "b": "bool_value",
        "e": "string_value", "u": "string_value", "any": "string_value"}
    assert (attrs["s"].string_value.value, attrs["i"].int_value, attrs["f"].double_value,
            attrs["b"].bool_value, attrs["e"].string_value.value,
            attrs["u"].string_value.value, attrs["any"].string_value.value) == (
        "text", -5, 0.25, False, "disk full", "18446744073709551615", "[1, 2]")
    notes = [(e.annotation.description.value,
              {k: v.string_value.value for k, v in e.annotation.attributes.attribute_map.items()})
             for e in span.time_events.time_event]
    assert notes == [("cache miss", {"s": "a.go"}), ("read", {"Error": "eof"}), ("'k'", {})]
    assert span.time_events.time_event[0].time.seconds == ours.events[0].at_ns // 10 ** 9
    root = trace_pb2.Span.FromString(spans.encode(event.get_span(ctx)))  # type: ignore[arg-type]
    assert root.parent_span_id == b"" and not root.HasField("attributes")


def test_huge_values_are_cut_and_counted() -> None:
    key = event.new_string_key("big")
    many = [event.new_int_key("k%02d" % i).of(i) for i in range(spans.MAX_ATTRIBUTES + 3)]
    ours = _ended("\u00e9" * 5000, key.of("x" * 100_000), *many)
    span = trace_pb2.Span.FromString(spans.encode(ours))
    assert len(span.name.value.encode()) == spans.MAX_STRING_BYTES
    assert span.name.truncated_byte_count == 10_000 - spans.MAX_STRING_BYTES
    big = span.attributes.attribute_map["big"].string_value
    assert (len(big.value), big.truncated_byte_count) == (
        spans.MAX_STRING_BYTES, 100_000 - spans.MAX_STRING_BYTES)
    assert len(span.attributes.attribute_map) == spans.MAX_ATTRIBUTES
    assert span.attributes.dropped_attributes_count == 4


def test_things_that_are_not_tags_are_left_out_of_the_attributes() -> None:
    key = event.new_string_key("ok")
    ours = _ended("odd", key.of("yes"), "not a tag", 7)  # type: ignore[arg-type]
    span = trace_pb2.Span.FromString(spans.encode(ours))
    assert list(span.attributes.attribute_map) == ["ok"]


def test_dropped_events_and_status_reach_the_wire() -> None:
    with pytest.raises(RuntimeError):
        with event.span(event.background(), "busy") as ctx:
            for i in range(event.MAX_EVENTS + 2):
                event.print(ctx, "n%d" % i)
            raise RuntimeError("gave up")
    ours = event.get_span(ctx)
    assert ours is not None
    span = trace_pb2.Span.FromString(spans.encode(ours))
    assert span.time_events.dropped_annotations_count == 2
    assert span.time_events.time_event[0].annotation.description.value == "n2"
    assert (span.status.code, span.status.message) == (2, "RuntimeError: gave up")


def test_requests_stay_under_the_limit_and_carry_the_node() -> None:
    many = [_ended("s%d" % i) for i in range(50)]
    bodies = spans.requests(many, (b"\x0a\x00", b"\x1a\x00"), limit=600)
    from opencensus.proto.agent.trace.v1 import trace_service_pb2

    parsed = [trace_service_pb2.ExportTraceServiceRequest.FromString(b) for b in bodies]
    assert len(bodies) > 1 and max(len(b) for b in bodies) <= 600
    assert [s.name.value for r in parsed for s in r.spans] == ["s%d" % i for i in range(50)]
    assert all(r.HasField("node") and r.HasField("resource") for r in parsed)


# A real agent.

def test_spans_reach_the_agents_tracez_with_parents_attributes_and_annotations(
        agent: Agent, connected: ocagent.Exporter) -> None:
    outer_name, inner_name = "tz_outer", "tz_inner"
    method, n = event.new_string_key("method"), event.new_int_key("n")
    ctx, end = event.start_span(event.background(), outer_name, method.of("hover"), n.of(3))
    with event.span(ctx, inner_name) as inner:
        event.print(inner, "cache miss", method.of("x"))
    end()
    assert connected.flush()
    found = recent(agent, [outer_name, inner_name])
    outer, child = found[outer_name], found[inner_name]
    ours = event.get_span(ctx)
    assert ours is not None
    assert outer["traceId"] == "%032x" % ours.trace_id == child["traceId"]
    assert outer["spanId"] == "%016x" % ours.id and child["parentSpanId"] == outer["spanId"]
    assert outer["parentSpanId"] == "" and outer["service"] == "span-test"
    assert outer["attributes"] == {"method": "hover", "n": 3}
    assert outer["durationNano"] == ours.end - ours.start
    assert [a["value"] for a in child["annotations"]] == ["cache miss"]
    page = get_json(agent.prometheus_port or 0, "/debug/tracez.json")
    assert {r["name"]: r["count"] for r in page["spanNames"]}[outer_name] == 1


def test_our_spans_and_opencensus_tracer_spans_form_one_tree_at_the_agent(
        agent: Agent, connected: ocagent.Exporter) -> None:
    names = ["oc_root", "ours", "oc_leaf"]
    tracer = oc_tracer.Tracer(sampler=samplers.AlwaysOnSampler(),
                              exporter=connected.trace_exporter)
    with tracer.span(names[0]):
        with event.span(None, names[1]):
            with tracer.span(names[2]):
                pass
    assert connected.flush()
    found = recent(agent, names)
    root, ours, leaf = (found[n] for n in names)
    assert root["traceId"] == ours["traceId"] == leaf["traceId"]
    assert ours["parentSpanId"] == root["spanId"] and leaf["parentSpanId"] == ours["spanId"]


def test_spans_wait_in_the_queue_while_the_agent_is_down_and_are_sent_after() -> None:
    # A bound socket that does not listen refuses connections, and holds the
    # port until the agent takes it (a freed port could go to another socket).
    down = socket.socket()
    down.bind(("127.0.0.1", 0))
    port = down.getsockname()[1]
    saved = export.get_exporter()
    e = ocagent.connect(ocagent.Config(address="127.0.0.1:%d" % port, rate=3600, timeout=1))
    assert e is not None
    export.set_exporter(e)
    try:
        name = "queued"
        _ended(name)
        assert not e.flush(timeout=5)  # the span goes back to the queue
        down.close()
        b = Agent("127.0.0.1:%d" % port, "127.0.0.1:0").start()
        try:
            deadline = time.monotonic() + 10
            while not e.flush(timeout=5):
                assert time.monotonic() < deadline
            recent(b, [name])
        finally:
            b.stop()
    finally:
        down.close()
        export.set_exporter(saved)
        e.close()


def test_the_agent_forwards_our_spans_to_zipkin_v2() -> None:
    saved = export.get_exporter()
    try:
        with ZipkinReceiver() as zipkin, Agent("127.0.0.1:0", None, zipkin=zipkin.url) as agent:
            e = ocagent.connect(ocagent.Config(address="127.0.0.1:%d" % agent.port,
                                               service="zipkin-test", rate=3600))
            assert e is not None
            export.set_exporter(e)
            flag, n = event.new_boolean_key("cached"), event.new_int_key("n")
            ctx, end = event.start_span(event.background(), "zk_root", flag.of(True), n.of(7))
            with event.span(ctx, "zk_child") as child:
                event.print(child, "hello")
            end()
            assert e.flush()
            e.close()
            by_name = {s["name"]: s for s in zipkin.wait_for(2)}
    finally:
        export.set_exporter(saved)
    root, child_span = by_name["zk_root"], by_name["zk_child"]
    ours = event.get_span(ctx)
    assert ours is not None
    assert root["traceId"] == "%032x" % ours.trace_id and root["id"] == "%016x" % ours.id
    assert "parentId" not in root and child_span["parentId"] == root["id"]
    assert root["localEndpoint"] == {"serviceName": "zipkin-test"}
    assert root["tags"] == {"cached": "true", "n": "7"}
    assert root["timestamp"] == ours.start // 1000
    assert root["duration"] == max(1, (ours.end - ours.start) // 1000)
    assert [a["value"] for a in child_span["annotations"]] == ["hello"]


def test_a_span_never_ended_is_not_sent_and_the_process_exits_cleanly(agent: Agent) -> None:
    script = textwrap.dedent("""
        import sys
        from gotools_compat import event, export
        from gotools_compat.export import ocagent
        e = ocagent.connect(ocagent.Config(address=sys.argv[1], rate=3600))
        export.set_exporter(e)
        ctx, end = event.start_span(event.background(), "exit_open")
        _, end_child = event.start_span(ctx, "exit_closed")
        end_child()
        # no end(), no flush: the exporter's exit hook sends what ended
    """)
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, "127.0.0.1:%d" % agent.port],
        capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert (done.returncode, done.stderr) == (0, "")
    doc = get_json(agent.prometheus_port or 0, "/debug/tracez.json")
    assert [s["name"] for s in doc["recent"]] == ["exit_closed"]


def test_the_demo_records_a_span_per_value(agent: Agent,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from examples import demo

    saved = export.get_exporter()
    try:
        assert demo.main(["--agent", "http://127.0.0.1:%d" % agent.port, "--count", "3",
                          "--no-sleep", "--seed", "1"]) == 0
    finally:
        export.set_exporter(saved)
    assert capsys.readouterr().out.count("Latency: ") == 3
    doc = get_json(agent.prometheus_port or 0, "/debug/tracez.json")
    assert [(s["name"], s["service"]) for s in doc["recent"]] == [
        ("demo.iteration", "go-tools-test")] * 3
