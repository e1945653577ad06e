"""gotools_compat.agent._zipkin: span records in Zipkin's v2 model, directly (no sockets),
and the forwarder's queue against a Zipkin receiver on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
from typing import Any, Dict

import pytest

from gotools_compat._oc import proto
from gotools_compat.agent._traces import span_record
from gotools_compat.agent._zipkin import ZipkinForwarder, zipkin_span

proto.install()

from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

from tests.zipkin_receiver import Receiver  # noqa: E402

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def record(**fields: Any) -> Dict[str, Any]:
    """A span record as the trace store keeps it (``_traces.span_record``'s shape)."""
    base: Dict[str, Any] = {
        "traceId": TRACE, "spanId": SPAN, "parentSpanId": "", "name": "op",
        "kind": "UNSPECIFIED", "service": "svc", "startUnixNano": 1_600_000_000_123_456_789,
        "durationNano": 2_500_999, "status": {"code": 0, "message": ""}, "attributes": {},
        "annotations": []}
    base.update(fields)
    return base


def test_a_plain_span_has_ids_microsecond_times_and_its_service() -> None:
    span = zipkin_span(record())
    assert span == {"traceId": TRACE, "id": SPAN, "name": "op",
                    "timestamp": 1_600_000_000_123_456, "duration": 2_500,
                    "localEndpoint": {"serviceName": "svc"}}
    assert json.loads(json.dumps(span)) == span  # plain JSON, nothing else


@pytest.mark.parametrize("nanos, micros", [(0, 1), (999, 1), (1_000, 1), (1_999, 1),
                                           (2_000, 2), (10_000_000_999, 10_000_000)])
def test_durations_are_whole_microseconds_and_never_zero(nanos: int, micros: int) -> None:
    assert zipkin_span(record(durationNano=nanos))["duration"] == micros


def test_a_parent_id_only_when_the_span_has_a_parent() -> None:
    assert "parentId" not in zipkin_span(record(parentSpanId=""))
    assert zipkin_span(record(parentSpanId="00f067aa0ba902b7"))["parentId"] == \
        "00f067aa0ba902b7"


@pytest.mark.parametrize("kind, expected", [("SERVER", "SERVER"), ("CLIENT", "CLIENT"),
                                            ("UNSPECIFIED", None)])
def test_only_server_and_client_kinds_are_given(kind: str, expected: Any) -> None:
    assert zipkin_span(record(kind=kind)).get("kind") == expected


def test_an_empty_service_is_unknown() -> None:
    assert zipkin_span(record(service=""))["localEndpoint"] == {"serviceName": "unknown"}


def test_tags_are_strings_and_other_values_their_json_text() -> None:
    span = zipkin_span(record(attributes={"s": "text", "quote": 'say "hi"', "b": True,
                                          "f": False, "i": -7, "d": 0.5, "n": None}))
    assert span["tags"] == {"s": "text", "quote": 'say "hi"', "b": "true", "f": "false",
                            "i": "-7", "d": "0.5", "n": "null"}
    assert all(isinstance(v, str) for v in json.loads(json.dumps(span))["tags"].values())


@pytest.mark.parametrize("status, error", [({"code": 2, "message": "bad input"}, "bad input"),
                                           ({"code": 14, "message": ""}, "code 14"),
                                           ({"code": 0, "message": "fine"}, None)])
def test_an_error_status_is_the_error_tag(status: Dict[str, Any], error: Any) -> None:
    span = zipkin_span(record(status=status))
    assert span.get("tags", {}).get("error") == error
    if error is None:
        assert "tags" not in span  # no attributes, no error: no tags at all


def test_the_error_tag_joins_the_attributes() -> None:
    span = zipkin_span(record(attributes={"method": "GET"},
                              status={"code": 5, "message": "not found"}))
    assert span["tags"] == {"method": "GET", "error": "not found"}


def test_annotations_keep_their_order_with_microsecond_timestamps() -> None:
    span = zipkin_span(record(annotations=[
        {"timeUnixNano": 1_600_000_000_200_000_999, "value": "first"},
        {"timeUnixNano": 1_600_000_000_100_000_000, "value": "SENT id=1"}]))
    assert span["annotations"] == [{"timestamp": 1_600_000_000_200_000, "value": "first"},
                                   {"timestamp": 1_600_000_000_100_000, "value": "SENT id=1"}]
    assert "annotations" not in zipkin_span(record())


def test_a_received_protobuf_span_end_to_end() -> None:
    span = trace_pb2.Span(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN),
        parent_span_id=bytes.fromhex("00f067aa0ba902b7"), name={"value": "fetch"},
        kind=trace_pb2.Span.CLIENT, start_time={"seconds": 1_600_000_000, "nanos": 5_000},
        end_time={"seconds": 1_600_000_001, "nanos": 4_000},
        status={"code": 4, "message": "deadline"})
    span.attributes.attribute_map["cached"].bool_value = True
    span.attributes.attribute_map["tries"].int_value = 3
    span.attributes.attribute_map["host"].string_value.value = "db"
    got = zipkin_span(span_record("client-svc", span))
    assert got == {
        "traceId": TRACE, "id": SPAN, "parentId": "00f067aa0ba902b7", "name": "fetch",
        "kind": "CLIENT", "timestamp": 1_600_000_000_000_005, "duration": 999_999,
        "localEndpoint": {"serviceName": "client-svc"},
        "tags": {"cached": "true", "tries": "3", "host": "db", "error": "deadline"}}


# The forwarder: queued spans go out on stop(); a full queue drops, a dead Zipkin warns.

def test_queued_spans_are_posted_as_zipkin_json_by_stop() -> None:
    with Receiver() as zipkin:
        forwarder = ZipkinForwarder(zipkin.url)
        forwarder.submit([record(name="a"), record(name="b", kind="SERVER")])
        forwarder.start()
        forwarder.stop()
        spans = zipkin.wait_for(2)  # also checks the path and Content-Type
    assert spans == [zipkin_span(record(name="a")), zipkin_span(record(name="b",
                                                                       kind="SERVER"))]
    assert forwarder.sent == 2


def test_a_full_queue_drops_the_newest_and_says_how_many(
        caplog: pytest.LogCaptureFixture) -> None:
    with Receiver() as zipkin, caplog.at_level(logging.WARNING, "gotools_compat.agent"):
        forwarder = ZipkinForwarder(zipkin.url, max_queue=2)
        forwarder.submit([record(name=n) for n in "abcde"])
        forwarder.start()
        forwarder.stop()
        spans = zipkin.wait_for(2)
    assert [s["name"] for s in spans] == ["a", "b"] and forwarder.sent == 2
    assert [r.getMessage() for r in caplog.records] == ["zipkin queue full: 3 spans dropped"]


def test_an_unreachable_zipkin_is_one_warning_and_nothing_sent(
        caplog: pytest.LogCaptureFixture) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    url = "http://127.0.0.1:%d/api/v2/spans" % hole.getsockname()[1]
    hole.close()  # nothing listens there now: connections are refused
    with caplog.at_level(logging.WARNING, "gotools_compat.agent"):
        forwarder = ZipkinForwarder(url)
        forwarder.submit([record(name="x"), record(name="y"), record(name="z")])
        forwarder.start()
        forwarder.stop()
    assert forwarder.sent == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert messages[0].startswith("cannot send 3 spans to zipkin at %s: " % url)


def test_stop_of_a_forwarder_never_started_returns_at_once() -> None:
    forwarder = ZipkinForwarder("http://127.0.0.1:9/api/v2/spans")
    forwarder.submit([record()])
    forwarder.stop(timeout=0.0)
    assert forwarder.sent == 0
