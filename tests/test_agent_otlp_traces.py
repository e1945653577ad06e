"""gotools-agent --otlp: the spans the agent receives reach a real OTLP/HTTP receiver as traces."""

from __future__ import annotations

import calendar
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import grpc
import pytest

from gotools_compat import event, export  # first: E13's clock patch
from gotools_compat._oc import proto
from gotools_compat.agent import Agent
from gotools_compat.agent._otlp_traces import TraceForwarder, traces_url
from gotools_compat.export import ocagent
from tests.helpers import http_post
from tests.otlp_receiver import Receiver, attrs, spans_of
from tests.test_agent_otlp import forwarding, poll, scrape

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.trace.v1 import (  # noqa: E402
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp  # noqa: E402

GO_TRACE = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-trace.json").read_bytes()
TraceRequest = trace_service_pb2.ExportTraceServiceRequest
NODE = common_pb2.Node(identifier={"host_name": "h1", "pid": 42},
                       service_info={"name": "svc"}, library_info={"language": 8})
TRACE = bytes(range(1, 17))
OTLP_STATUS = otlp.Status
OTLP_SPAN = otlp.Span


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def ns(text: str) -> int:
    """Nanoseconds of an RFC 3339 UTC time with 9 fraction digits."""
    whole, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac)


def oc_span(span_id: int, name: str, parent: int = 0, **fields: Any) -> Any:
    return trace_pb2.Span(
        trace_id=TRACE, span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"",
        name={"value": name}, start_time={"seconds": 1_700_000_000, "nanos": 123_456_789},
        end_time={"seconds": 1_700_000_001, "nanos": 5}, **fields)


def send_grpc(port: int, requests: List[Any]) -> None:
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        list(stub.Export(iter(requests), timeout=10))


def arrived(receiver: Receiver, count: int, deadline: float = 10.0) -> List[Tuple[Any, Any]]:
    """(resource, span) of the first ``count`` spans to arrive."""
    end = time.monotonic() + deadline
    while True:
        found = spans_of(receiver.traces.requests)
        if len(found) >= count:
            return found
        assert time.monotonic() < end, "%d spans arrived, %d expected" % (len(found), count)
        receiver.traces.wait_for(len(receiver.traces.requests) + 1, end - time.monotonic())


def by_name(found: List[Tuple[Any, Any]]) -> Dict[str, Any]:
    return {span.name: span for _, span in found}


def counters(agent: Agent) -> Dict[str, float]:
    """The agent's own series on /metrics, by name and labels."""
    values = {}
    for line in scrape(agent.port).splitlines():
        if line.startswith("gotools_agent_"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_spans_over_grpc_arrive_field_by_field(receiver: Receiver) -> None:
    attributes = {"attribute_map": {
        "method": {"string_value": {"value": "hover"}}, "n": {"int_value": 7},
        "ok": {"bool_value": True}, "ratio": {"double_value": 0.25}},
        "dropped_attributes_count": 2}
    root = oc_span(1, "root", kind=trace_pb2.Span.SERVER, attributes=attributes,
                   tracestate={"entries": [{"key": "vendor", "value": "v1"}]})
    client = oc_span(2, "call", parent=1, kind=trace_pb2.Span.CLIENT,
                     status={"code": 13, "message": "it broke"},
                     same_process_as_parent_span={"value": True},
                     time_events={"time_event": [
                         {"time": {"seconds": 1_700_000_000, "nanos": 200},
                          "annotation": {"description": {"value": "retrying"},
                                         "attributes": {"attribute_map": {
                                             "attempt": {"int_value": 2}}}}},
                         {"time": {"seconds": 1_700_000_000, "nanos": 300},
                          "message_event": {"type": 1, "id": 9, "uncompressed_size": 100,
                                            "compressed_size": 60}}],
                         "dropped_annotations_count": 1},
                     links={"link": [{"trace_id": bytes(range(16, 32)),
                                      "span_id": (99).to_bytes(8, "big"),
                                      "attributes": {"attribute_map": {
                                          "why": {"string_value": {"value": "batch"}}}}}],
                            "dropped_links_count": 3})
    remote_child = oc_span(3, "inner", parent=2, same_process_as_parent_span={"value": False})
    agent = forwarding(receiver)
    try:
        # One stream: the node comes once, the second message's spans are still svc's.
        send_grpc(agent.port, [TraceRequest(node=NODE, spans=[root, client]),
                               TraceRequest(spans=[remote_child])])
        found = arrived(receiver, 3)
        counts = poll(lambda: (lambda c: c if c.get(
            "gotools_agent_otlp_sent_spans_total") == 3 else None)(counters(agent)))
    finally:
        agent.stop()
    assert len(found) == 3
    for resource, _ in found:
        assert attrs(resource.attributes) == {"service.name": "svc", "host.name": "h1",
                                              "process.pid": 42,
                                              "telemetry.sdk.language": "python"}
    spans = by_name(found)
    r, c, inner = spans["root"], spans["call"], spans["inner"]
    assert {s.trace_id for s in (r, c, inner)} == {TRACE}
    assert (r.span_id, r.parent_span_id) == ((1).to_bytes(8, "big"), b"")
    assert c.parent_span_id == (1).to_bytes(8, "big")
    assert inner.parent_span_id == (2).to_bytes(8, "big")
    assert (r.start_time_unix_nano, r.end_time_unix_nano) == (1_700_000_000_123_456_789,
                                                              1_700_000_001_000_000_005)
    assert (r.kind, c.kind, inner.kind) == (OTLP_SPAN.SPAN_KIND_SERVER,
                                            OTLP_SPAN.SPAN_KIND_CLIENT,
                                            OTLP_SPAN.SPAN_KIND_INTERNAL)  # unspecified
    assert attrs(r.attributes) == {"method": "hover", "n": 7, "ok": True, "ratio": 0.25}
    assert r.dropped_attributes_count == 2 and r.trace_state == "vendor=v1"
    assert (r.status.code, r.status.message) == (OTLP_STATUS.STATUS_CODE_UNSET, "")
    assert (c.status.code, c.status.message) == (OTLP_STATUS.STATUS_CODE_ERROR, "it broke")
    assert attrs(c.attributes) == {"opencensus.status_code": 13}
    assert [(e.name, e.time_unix_nano, attrs(e.attributes)) for e in c.events] == [
        ("retrying", 1_700_000_000_000_000_200, {"attempt": 2}),
        ("message", 1_700_000_000_000_000_300, {
            "rpc.message.type": "SENT", "rpc.message.id": 9,
            "rpc.message.uncompressed_size": 100, "rpc.message.compressed_size": 60})]
    assert c.dropped_events_count == 1 and c.dropped_links_count == 3
    (link,) = c.links
    assert (link.trace_id, link.span_id) == (bytes(range(16, 32)), (99).to_bytes(8, "big"))
    assert attrs(link.attributes) == {"why": "batch"}
    remote = otlp.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    assert (c.flags & remote, inner.flags & remote) == (0, remote)
    assert counts["gotools_agent_otlp_pending_spans"] == 0
    assert counts["gotools_agent_otlp_dropped_spans_total"] == 0
    assert counts["gotools_agent_otlp_failed_trace_exports_total"] == 0


def test_go_json_trace_arrives_with_its_tree_and_times(receiver: Receiver) -> None:
    agent = forwarding(receiver)
    try:
        assert http_post(agent.port, "/v1/trace", GO_TRACE)[0] == 200
        found = arrived(receiver, 4)
    finally:
        agent.stop()
    assert attrs(found[0][0].attributes) == {
        "service.name": "gopls", "host.name": "vm", "process.pid": 2411,
        "telemetry.sdk.language": "go", "telemetry.sdk.version": "x/tools",
        "opencensus.exporterversion": "0.0.1",
        "opencensus.starttime": "2026-11-26T06:55:39.099119649Z"}
    spans = by_name(found)
    assert sorted(spans) == ["queued", "source.Hover", "source.Identifier",
                             "textDocument/hover"]
    root = spans["textDocument/hover"]
    assert root.trace_id.hex() == "cb769d8d4192f073e9b0f36486875f11"
    assert root.span_id.hex() == "a393c8c2b375a1b2" and root.parent_span_id == b""
    assert {s.parent_span_id.hex() for name, s in spans.items() if s is not root} == {
        "a393c8c2b375a1b2"}
    assert (root.start_time_unix_nano, root.end_time_unix_nano) == (
        ns("2026-11-26T06:55:43.570932696Z"), ns("2026-11-26T06:55:43.573176543Z"))
    assert spans["queued"].end_time_unix_nano - spans["queued"].start_time_unix_nano == 45_928
    assert attrs(root.attributes) == {"direction": "in", "id": "#11",
                                      "method": "textDocument/hover"}
    # Go's annotation has no description: named by its attributes, as on tracez.
    assert [(e.name, e.time_unix_nano, attrs(e.attributes)) for e in root.events] == [
        ("status.code=OK", ns("2026-11-26T06:55:43.573174961Z"), {"status.code": "OK"})]
    assert {s.kind for s in spans.values()} == {OTLP_SPAN.SPAN_KIND_INTERNAL}
    assert {s.status.code for s in spans.values()} == {OTLP_STATUS.STATUS_CODE_UNSET}


def test_spans_from_our_ocagent_exporter_arrive_as_one_tree(receiver: Receiver) -> None:
    saved = export.get_exporter()
    agent = forwarding(receiver)
    exporter = ocagent.connect(ocagent.Config(address="127.0.0.1:%d" % agent.port,
                                              service="py-app", host="box-7", rate=3600.0))
    assert exporter is not None
    key = event.new_int_key("attempt")
    try:
        export.set_exporter(exporter)
        with event.span(event.background(), "outer", key.of(3)) as ctx:
            with event.span(ctx, "inner") as inner_ctx:
                event.print(inner_ctx, "hello")
        assert exporter.flush()
        found = arrived(receiver, 2)
    finally:
        export.set_exporter(saved)
        exporter.close(timeout=2)
        agent.stop()
    spans = by_name(found)
    outer, inner = spans["outer"], spans["inner"]
    ours = event.get_span(ctx)
    assert ours is not None
    assert outer.trace_id.hex() == "%032x" % ours.trace_id
    assert outer.span_id.hex() == "%016x" % ours.id
    assert inner.trace_id == outer.trace_id and inner.parent_span_id == outer.span_id
    assert outer.parent_span_id == b"" and attrs(outer.attributes) == {"attempt": 3}
    assert [e.name for e in inner.events] == ["hello"]
    assert outer.start_time_unix_nano <= inner.start_time_unix_nano \
        <= inner.end_time_unix_nano <= outer.end_time_unix_nano
    resource = attrs(found[0][0].attributes)
    assert (resource["service.name"], resource["host.name"]) == ("py-app", "box-7")


def test_a_down_endpoint_keeps_spans_counts_and_sends_each_once(receiver: Receiver) -> None:
    receiver.fail_status = 503
    agent = forwarding(receiver, otlp_timeout=0.5)
    try:
        send_grpc(agent.port, [TraceRequest(node=NODE, spans=[oc_span(1, "a"), oc_span(2, "b")])])
        receiver.wait_for_failures(1)
        poll(lambda: counters(agent).get("gotools_agent_otlp_failed_trace_exports_total"))
        # Meanwhile ingest goes on; the new span joins the pending ones.
        send_grpc(agent.port, [TraceRequest(node=NODE, spans=[oc_span(3, "c")])])
        poll(lambda: counters(agent)["gotools_agent_otlp_pending_spans"] == 3)
        assert counters(agent)["gotools_agent_spans_received_total"] == 3
        assert receiver.traces.requests == []
        receiver.fail_status = 0
        found = arrived(receiver, 3)
        counts = poll(lambda: (lambda c: c if c.get(
            "gotools_agent_otlp_sent_spans_total") == 3 else None)(counters(agent)))
    finally:
        agent.stop()
    assert sorted(span.span_id[-1] for _, span in spans_of(receiver.traces.requests)) == [1, 2, 3]
    assert len(found) == 3
    assert counts["gotools_agent_otlp_pending_spans"] == 0
    assert counts["gotools_agent_otlp_dropped_spans_total"] == 0
    assert counts["gotools_agent_otlp_failed_trace_exports_total"] >= 1
    # Metrics have counters of their own: nothing of them was sent or failed.
    assert counts.get("gotools_agent_otlp_sent_series_total", 0) == 0


class _Failing:
    """An exporter that fails every export and notes when it was called."""

    def __init__(self) -> None:
        self.calls: List[float] = []

    def export(self, spans: Any) -> Any:
        self.calls.append(time.monotonic())
        return None

    def shutdown(self) -> None:
        pass


def test_retries_back_off_and_what_cannot_be_kept_is_counted() -> None:
    exporter = _Failing()
    forwarder = TraceForwarder("http://127.0.0.1:9", max_spans=2, max_backoff=1.0,
                               exporter=exporter)
    forwarder.start()
    try:
        forwarder.submit(NODE, None, [oc_span(1, "a"), oc_span(2, "b"), oc_span(3, "c")])
        poll(lambda: len(exporter.calls) >= 4)
        counts = {f.name: items[0][1] for f, items in forwarder.families()}
    finally:
        forwarder.stop(grace=0.5)
    gaps = [b - a for a, b in zip(exporter.calls, exporter.calls[1:])]
    # Backoff: 0.5 s, then doubling, capped at max_backoff (lower bounds only).
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0 and gaps[2] >= 1.0
    assert counts["gotools_agent_otlp_pending_spans"] == 2
    assert counts["gotools_agent_otlp_dropped_spans"] == 1  # over max_spans
    assert counts["gotools_agent_otlp_failed_trace_exports"] >= 3
    assert counts["gotools_agent_otlp_sent_spans"] == 0
    # The stop could not send the two pending ones either: counted too.
    assert {f.name: items[0][1] for f, items in forwarder.families()}[
        "gotools_agent_otlp_dropped_spans"] == 3


def test_a_full_queue_drops_the_oldest_request_and_counts_its_spans() -> None:
    forwarder = TraceForwarder("http://127.0.0.1:9", max_queue=1, exporter=_Failing())
    # Not started: nothing drains the queue.
    forwarder.submit(NODE, None, [oc_span(1, "a"), oc_span(2, "b")])
    forwarder.submit(NODE, None, [oc_span(3, "c")])
    counts = {f.name: items[0][1] for f, items in forwarder.families()}
    forwarder.stop(grace=0.1)
    assert counts["gotools_agent_otlp_dropped_spans"] == 2


def test_bad_ids_are_rejected_and_oversized_spans_not_forwarded(receiver: Receiver) -> None:
    agent = forwarding(receiver, max_bytes_per_span=8 * 1024)
    bad_trace = trace_pb2.Span(trace_id=b"\1" * 15, span_id=b"\1" * 8, name={"value": "x"})
    zero_span = trace_pb2.Span(trace_id=TRACE, span_id=b"\0" * 8, name={"value": "y"})
    big = oc_span(5, "big", attributes={"attribute_map": {
        "k%d" % i: {"string_value": {"value": "v" * 4000}} for i in range(4)}})
    long_name = oc_span(6, "n" * 5000)
    try:
        send_grpc(agent.port, [TraceRequest(node=NODE, spans=[
            bad_trace, zero_span, big, long_name, oc_span(7, "good")])])
        found = arrived(receiver, 2)
        # The receiver has the spans before the forwarder's export call returns and
        # counts them as sent: wait for both counters, not only the first.
        counts = poll(lambda: (lambda c: c if (
            c.get("gotools_agent_otlp_rejected_spans_total"),
            c.get("gotools_agent_otlp_sent_spans_total")) == (2, 2) else None)(counters(agent)))
    finally:
        agent.stop()
    assert sorted(len(span.name) for _, span in found) == [4, 4096]  # cut as on tracez
    assert counts['gotools_agent_spans_dropped_total{cause="max_bytes_per_span"}'] == 1


def test_a_request_resource_and_a_span_resource_reach_otlp(receiver: Receiver) -> None:
    agent = forwarding(receiver)
    own = oc_span(2, "own", resource=resource_pb2.Resource(type="k8s", labels={"pod": "p2"}))
    try:
        send_grpc(agent.port, [TraceRequest(
            node=NODE, resource=resource_pb2.Resource(type="host", labels={"zone": "z1"}),
            spans=[oc_span(1, "shared"), own])])
        found = arrived(receiver, 2)
    finally:
        agent.stop()
    resources = {span.name: attrs(resource.attributes) for resource, span in found}
    assert resources["shared"]["zone"] == "z1"
    assert resources["shared"]["opencensus.resourcetype"] == "host"
    assert resources["own"]["pod"] == "p2" and "zone" not in resources["own"]
    assert resources["own"]["opencensus.resourcetype"] == "k8s"
    assert resources["own"]["host.name"] == "h1"


def test_trace_urls() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/v1/metrics") == "http://c:4318/v1/traces"
    assert traces_url("https://c/otlp/v1/traces") == "https://c/otlp/v1/traces"
    assert traces_url("http://c/otlp") == "http://c/otlp/v1/traces"
    with pytest.raises(ValueError, match="expected a URL"):
        traces_url("c:4318")


def test_missing_trace_exporter_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules,
                        "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ImportError, match=r"pip install 'gotools_compat\[otel\]'"):
        Agent("127.0.0.1:0", None, otlp="http://127.0.0.1:4318")
