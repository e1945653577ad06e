"""gotools_compat.agent._otlp_spans: OpenCensus protocol spans as SDK spans for OTLP, directly
(no sockets).

The oracle: OpenTelemetry's own OTLP encoder turns the SDK spans into an
``ExportTraceServiceRequest``, whose bytes are read back with the
opentelemetry-proto classes and compared field by field.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest

from gotools_compat._oc import proto
from gotools_compat._otel import data as sdk
from gotools_compat._otel import ocproto
from gotools_compat._pages.tracez_json import Cut
from gotools_compat.agent._otlp_spans import ForwardedSpan, attributes_of, span_from_proto

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp  # noqa: E402

TRACE = bytes(range(1, 17))
NODE = common_pb2.Node(identifier={"host_name": "h1", "pid": 42},
                       service_info={"name": "svc"})
HAS_REMOTE = otlp.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
IS_REMOTE = otlp.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def oc_span(span_id: int, name: str = "s", parent: bytes = b"", **fields: Any) -> Any:
    fields.setdefault("trace_id", TRACE)
    return trace_pb2.Span(
        span_id=span_id.to_bytes(8, "big"), parent_span_id=parent, name={"value": name},
        start_time={"seconds": 1_700_000_000, "nanos": 123_456_789},
        end_time={"seconds": 1_700_000_001, "nanos": 5}, **fields)


def convert(span: Any, node: Any = NODE, resource: Any = None,
            cut: Optional[Cut] = None) -> ForwardedSpan:
    request_resource = ocproto.resource_from_node(node, resource)
    converted = span_from_proto(span, request_resource, node, cut) if cut else \
        span_from_proto(span, request_resource, node)
    assert converted is not None
    return converted


def on_the_wire(*spans: ForwardedSpan) -> List[Tuple[Any, Any, Any]]:
    """(resource, scope, span) of each span, through OTLP bytes and back."""
    wire = encode_spans(list(spans)).SerializeToString()
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(wire)
    return [(rs.resource, ss.scope, one) for rs in request.resource_spans
            for ss in rs.scope_spans for one in ss.spans]


def only(span: Any, **kwargs: Any) -> Any:
    (found,) = on_the_wire(convert(span, **kwargs))
    return found[2]


def attrs(kvs: Any) -> Dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in kvs}


def test_a_root_span_reaches_otlp_with_its_ids_times_name_and_scope() -> None:
    ((resource, scope, span),) = on_the_wire(convert(oc_span(7, "hover",
                                                             kind=trace_pb2.Span.SERVER)))
    assert span == otlp.Span(
        trace_id=TRACE, span_id=(7).to_bytes(8, "big"), name="hover",
        kind=otlp.Span.SPAN_KIND_SERVER, start_time_unix_nano=1_700_000_000_123_456_789,
        end_time_unix_nano=1_700_000_001_000_000_005, status=otlp.Status(), flags=HAS_REMOTE)
    assert (scope.name, scope.version) == (sdk.SCOPE.name, sdk.SCOPE.version)
    assert scope.name == "gotools_compat"
    assert attrs(resource.attributes) == {"service.name": "svc", "host.name": "h1",
                                          "process.pid": 42}


@pytest.mark.parametrize("kind, expected", [
    (trace_pb2.Span.SPAN_KIND_UNSPECIFIED, otlp.Span.SPAN_KIND_INTERNAL),
    (trace_pb2.Span.SERVER, otlp.Span.SPAN_KIND_SERVER),
    (trace_pb2.Span.CLIENT, otlp.Span.SPAN_KIND_CLIENT),
    (7, otlp.Span.SPAN_KIND_INTERNAL),  # a kind OpenCensus does not define
])
def test_server_and_client_stay_and_any_other_kind_is_internal(kind: int, expected: int
                                                               ) -> None:
    assert only(oc_span(1, kind=kind)).kind == expected


@pytest.mark.parametrize("same_process, remote", [(None, False), (True, False),
                                                  (False, True)])
def test_a_parent_is_remote_only_when_said_not_in_the_same_process(
        same_process: Optional[bool], remote: bool) -> None:
    fields: Dict[str, Any] = {} if same_process is None else {
        "same_process_as_parent_span": {"value": same_process}}
    converted = convert(oc_span(2, parent=(1).to_bytes(8, "big"), **fields))
    assert converted.parent is not None
    assert (converted.parent.trace_id, converted.parent.span_id) == (int.from_bytes(TRACE,
                                                                                    "big"), 1)
    assert converted.parent.is_remote is remote
    ((_, _, span),) = on_the_wire(converted)
    assert span.parent_span_id == (1).to_bytes(8, "big")
    assert span.flags == HAS_REMOTE | (IS_REMOTE if remote else 0)


@pytest.mark.parametrize("parent", [b"", b"\0" * 8, b"\0" * 3])
def test_an_empty_or_all_zero_parent_makes_a_root_span(parent: bytes) -> None:
    converted = convert(oc_span(2, parent=parent, same_process_as_parent_span={"value": False}))
    assert converted.parent is None
    span = on_the_wire(converted)[0][2]
    assert (span.parent_span_id, span.flags) == (b"", HAS_REMOTE)


@pytest.mark.parametrize("fields", [
    {"trace_id": TRACE[:15]}, {"trace_id": TRACE + b"\1"}, {"trace_id": b"\0" * 16},
    {"trace_id": b""}, {"span_id": b"\1" * 7}, {"span_id": b"\1" * 9}, {"span_id": b"\0" * 8},
    {"parent_span_id": b"\0\0\0\1"}, {"parent_span_id": b"\1" * 9},
])
def test_a_span_with_an_id_of_the_wrong_length_or_all_zero_is_refused(
        fields: Dict[str, bytes]) -> None:
    span = oc_span(5)
    for key, value in fields.items():
        setattr(span, key, value)
    assert span_from_proto(span, ocproto.resource_from_node(NODE), NODE) is None


def test_attributes_keep_their_types_and_valueless_ones_are_left_out() -> None:
    message = trace_pb2.Span.Attributes(attribute_map={
        "s": {"string_value": {"value": "hover"}}, "empty": {"string_value": {}},
        "i": {"int_value": -(2**62)}, "b": {"bool_value": False},
        "d": {"double_value": 0.1}, "none": {}})
    assert attributes_of(message) == {"s": "hover", "empty": "", "i": -(2**62), "b": False,
                                      "d": 0.1}
    assert attributes_of(trace_pb2.Span.Attributes()) == {}
    span = only(oc_span(1, attributes=message))
    values = {kv.key: kv.value for kv in span.attributes}
    assert sorted(values) == ["b", "d", "empty", "i", "s"]
    assert [values[k].WhichOneof("value") for k in ("s", "i", "b", "d")] == [
        "string_value", "int_value", "bool_value", "double_value"]
    assert (values["i"].int_value, values["b"].bool_value, values["d"].double_value) == (
        -(2**62), False, 0.1)


def test_an_error_status_carries_its_message_and_the_opencensus_code() -> None:
    failed = only(oc_span(1, status={"code": 13, "message": "it broke"},
                          attributes={"attribute_map": {"k": {"int_value": 1}}}))
    assert (failed.status.code, failed.status.message) == (otlp.Status.STATUS_CODE_ERROR,
                                                          "it broke")
    assert attrs(failed.attributes) == {"k": 1, "opencensus.status_code": 13}
    ok = only(oc_span(2, status={"code": 0, "message": "ignored"}))
    assert (ok.status.code, ok.status.message) == (otlp.Status.STATUS_CODE_UNSET, "")
    assert list(ok.attributes) == []


def test_annotations_are_events_named_by_description_or_by_sorted_attributes() -> None:
    at = {"seconds": 1_700_000_000, "nanos": 7}
    span = only(oc_span(1, time_events={"time_event": [
        {"time": at, "annotation": {"description": {"value": "retrying"},
                                    "attributes": {"attribute_map": {
                                        "attempt": {"int_value": 2}}}}},
        {"time": {"seconds": 3}, "annotation": {"attributes": {"attribute_map": {
            "z": {"string_value": {"value": "last"}}, "a": {"bool_value": True},
            "m": {"int_value": 5}}}}},
        {"annotation": {}},
        {"time": {"seconds": 4}},  # neither an annotation nor a message event: left out
    ]}))
    assert [(e.name, e.time_unix_nano, attrs(e.attributes)) for e in span.events] == [
        ("retrying", 1_700_000_000_000_000_007, {"attempt": 2}),
        ("a=True, m=5, z=last", 3_000_000_000, {"z": "last", "a": True, "m": 5}),
        ("", 0, {})]


def test_an_event_named_by_its_attributes_is_cut_as_a_whole() -> None:
    cut = Cut(10)
    span = only(oc_span(1, time_events={"time_event": [{"annotation": {"attributes": {
        "attribute_map": {"a": {"string_value": {"value": "x" * 8}},
                          "b": {"string_value": {"value": "y" * 8}}}}}}]}), cut=cut)
    # Each value is cut to 10 first (not at all here), then the name they make.
    assert [e.name for e in span.events] == ["a=xxxxxxxx"]
    assert cut.count == 1


def test_message_events_carry_the_rpc_message_attributes() -> None:
    big = 2**40 + 3
    span = only(oc_span(1, time_events={"time_event": [
        {"time": {"nanos": 1}, "message_event": {"type": 1, "id": 9,
                                                 "uncompressed_size": big,
                                                 "compressed_size": 60}},
        {"time": {"nanos": 2}, "message_event": {"type": 2, "id": 10}},
        {"time": {"nanos": 3}, "message_event": {}}]}))
    assert [(e.name, e.time_unix_nano) for e in span.events] == [
        ("message", 1), ("message", 2), ("message", 3)]
    assert [attrs(e.attributes) for e in span.events] == [
        {"rpc.message.type": "SENT", "rpc.message.id": 9,
         "rpc.message.uncompressed_size": big, "rpc.message.compressed_size": 60},
        {"rpc.message.type": "RECEIVED", "rpc.message.id": 10,
         "rpc.message.uncompressed_size": 0, "rpc.message.compressed_size": 0},
        {"rpc.message.type": "UNSPECIFIED", "rpc.message.id": 0,
         "rpc.message.uncompressed_size": 0, "rpc.message.compressed_size": 0}]


def test_links_keep_their_ids_and_attributes_and_ones_with_bad_ids_are_skipped() -> None:
    other = bytes(range(16, 32))
    span = only(oc_span(1, links={"link": [
        {"trace_id": other, "span_id": (99).to_bytes(8, "big"),
         "attributes": {"attribute_map": {"why": {"string_value": {"value": "batch"}}}}},
        {"trace_id": other[:15], "span_id": (98).to_bytes(8, "big")},
        {"trace_id": other, "span_id": b"\0" * 8},
        {"trace_id": TRACE, "span_id": (97).to_bytes(8, "big")}]}))
    assert [(link.trace_id, link.span_id, attrs(link.attributes)) for link in span.links] == [
        (other, (99).to_bytes(8, "big"), {"why": "batch"}),
        (TRACE, (97).to_bytes(8, "big"), {})]
    assert {link.flags for link in span.links} == {HAS_REMOTE | IS_REMOTE}


def test_the_tracestate_and_the_senders_dropped_counts_are_kept() -> None:
    converted = convert(oc_span(
        2, parent=(1).to_bytes(8, "big"),
        tracestate={"entries": [{"key": "vendor", "value": "v1"}, {"key": "b", "value": "2"}]},
        attributes={"dropped_attributes_count": 2},
        time_events={"dropped_annotations_count": 1, "dropped_message_events_count": 4},
        links={"dropped_links_count": 3}))
    assert (converted.dropped_attributes, converted.dropped_events,
            converted.dropped_links) == (2, 5, 3)
    parent, context = converted.parent, converted.get_span_context()
    assert parent is not None and context is not None
    assert parent.trace_state == context.trace_state  # the parent's too
    span = on_the_wire(converted)[0][2]
    assert span.trace_state == "vendor=v1,b=2"
    assert (span.dropped_attributes_count, span.dropped_events_count,
            span.dropped_links_count) == (2, 5, 3)
    plain = only(oc_span(3))
    assert (plain.trace_state, plain.dropped_attributes_count, plain.dropped_events_count,
            plain.dropped_links_count) == ("", 0, 0, 0)


def test_a_spans_own_resource_replaces_the_requests() -> None:
    request = resource_pb2.Resource(type="host", labels={"zone": "z1"})
    own = resource_pb2.Resource(type="k8s", labels={"pod": "p2"})
    shared = convert(oc_span(1, "shared"), resource=request)
    mine = convert(oc_span(2, "own", resource=own), resource=request)
    found = {span.name: attrs(resource.attributes)
             for resource, _, span in on_the_wire(shared, mine)}
    node = {"service.name": "svc", "host.name": "h1", "process.pid": 42}
    assert found == {"shared": dict(node, zone="z1", **{"opencensus.resourcetype": "host"}),
                     "own": dict(node, pod="p2", **{"opencensus.resourcetype": "k8s"})}
    alone = span_from_proto(oc_span(3, resource=own), ocproto.resource_from_node(NODE, request))
    assert alone is not None  # no node given: the span's resource alone
    assert dict(alone.resource.attributes) == {"opencensus.resourcetype": "k8s", "pod": "p2"}


def test_cut_shortens_every_string_the_sender_gave() -> None:
    cut = Cut(4)
    span = only(oc_span(
        1, "long-name", status={"code": 2, "message": "message"},
        attributes={"attribute_map": {"method": {"string_value": {"value": "textDocument"}},
                                      "n": {"int_value": 123456}}},
        tracestate={"entries": [{"key": "vendor", "value": "value1"}]},
        time_events={"time_event": [{"annotation": {
            "description": {"value": "retrying"},
            "attributes": {"attribute_map": {"attempt": {"string_value": {"value": "second"}}}}}}]},
        links={"link": [{"trace_id": TRACE, "span_id": (9).to_bytes(8, "big"),
                         "attributes": {"attribute_map": {
                             "reason": {"string_value": {"value": "batch"}}}}}]}), cut=cut)
    assert span.name == "long" and span.status.message == "mess"
    assert attrs(span.attributes) == {"meth": "text", "n": 123456,
                                      "opencensus.status_code": 2}
    assert span.trace_state == "vend=valu"
    assert [(e.name, attrs(e.attributes)) for e in span.events] == [("retr", {"atte": "seco"})]
    assert attrs(span.links[0].attributes) == {"reas": "batc"}
    assert cut.count == 11  # name, status, 2 attribute, 2 tracestate, 3 event, 2 link
