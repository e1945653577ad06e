"""gotools_compat.agent._json, ._jsonfast, ._jsonrequest and ._jsondoc: JSON bodies read.

The fast path (dicts straight to the store's form, and to the request for
forwarding) is checked against ``json_format`` on the same bodies; then the
document rules (lone surrogates, nesting) and the collector pause.
"""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gotools_compat.agent import _json, _jsondoc, _jsonfast, _jsonrequest, _protorequest
from gotools_compat.agent._model import BadRequest, Summary

from agent_requests import (MD, Request, dist, metric, metrics_pb2, node, requests,
                            store_form)

FIXTURES = Path(__file__).parent / "fixtures"
GO_METRICS = (FIXTURES / "go-ocagent-v1-metrics.json").read_bytes()
GO_TRACE = (FIXTURES / "go-ocagent-v1-trace.json").read_bytes()


def by_json_format(body: bytes) -> Any:
    """What the agent would read from ``body`` if it always used json_format."""
    return _protorequest.from_proto(json_format.Parse(body, Request(), ignore_unknown_fields=True))


@pytest.fixture
def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any) -> Any:
        raise AssertionError("the body went to json_format")

    monkeypatch.setattr(_json, "_slow", refuse)


def body_of(*metrics: Any, **fields: Any) -> bytes:
    return json.dumps({"metrics": list(metrics), **fields}).encode()


def gauge(point: Any, **series: Any) -> Any:
    return {"metric_descriptor": {"name": "g", "type": 1},
            "timeseries": [{"points": [point], **series}]}


def fast_export(body: bytes) -> Any:
    """The fast path alone (no fallback), its request built by the fast path too."""
    doc = json.loads(body)
    return _jsonfast.export(doc, lambda: _jsonrequest.request(doc))


# The fast path against json_format.

def test_json_fast_path_builds_what_json_format_builds() -> None:
    doc = json.loads(GO_METRICS)
    series = doc["metrics"][0]["timeseries"][0]
    series["labelValues"] = [{"value": "in", "hasValue": True}, {"value": "x"}]
    series["points"].append({"timestamp": series["points"][0]["timestamp"],
                             "int64_value": "9007199254740993"})
    doc["metrics"][1]["timeseries"][0]["points"][0]["distributionValue"][
        "sumOfSquaredDeviation"] = 2.5
    body = json.dumps(doc).encode()
    fast = _jsonrequest.request(json.loads(body))
    assert fast == json_format.Parse(body, Request())
    assert fast.metrics[0].timeseries[0].points[1].int64_value == 9007199254740993


def test_json_fast_path_reads_what_the_protobuf_reader_reads() -> None:
    # The store's form straight from the dicts equals json_format's message
    # read by the gRPC reader (lean view), for the Go fixture and for a body
    # in grpc-gateway's spelling with labels, int64 strings and zero buckets.
    gateway = json_format.MessageToJson(Request(node=node("gw"), metrics=[
        metric("lat", MD.CUMULATIVE_DISTRIBUTION, ["k", "j"],
               [(["a", None], dist([0.0, 10.0], [0, 2 ** 40, 1], 7.25)),
                (["b", "x"], dist([0.0, 10.0], [3, 0, 0], -1.0))]),
        metric("c", MD.CUMULATIVE_INT64, [], [([], 2 ** 62)])]))
    for body in (GO_METRICS, gateway.encode()):
        fast = fast_export(body)
        slow = _protorequest.from_proto(json_format.Parse(body, Request()))
        assert [(d, list(s)) for d, s in fast.metrics] == \
            [(d, list(s)) for d, s in slow.metrics] and fast.node == slow.node
        assert fast.request() == json_format.Parse(body, Request())
    lat = fast_export(gateway.encode())
    assert lat.metrics[0] == (("lat", "", "", MD.CUMULATIVE_DISTRIBUTION, ("k", "j")), [
        (["a", ""], (2 ** 40 + 1, 7.25, (0.0, 10.0), [0, 2 ** 40, 1])),
        (["b", "x"], (3, -1.0, (0.0, 10.0), [3, 0, 0]))])
    assert lat.metrics[1][1] == [([], 2 ** 62)]



def test_the_fast_path_takes_gos_body(no_fallback: None) -> None:
    export = _json.parse_metrics(GO_METRICS)
    assert [desc[0] for desc, _ in export.metrics] == ["started", "received_bytes", "sent_bytes"]
    assert store_form(export)[0][1][3] == ([], 10)
    assert store_form(export)[2][1][0] == (
        [], (1, 1917.0, (1024.0, 2048.0, 4096.0, 16384.0, 65536.0, 1048576.0),
             [0, 1, 1, 1, 1, 1]))


@pytest.mark.parametrize("snake", [False, True], ids=["camelCase", "snake_case"])
def test_the_fast_path_takes_json_formats_own_output_in_either_spelling(
        no_fallback: None, snake: bool) -> None:
    request = Request(node=node("gw"), metrics=[
        metric("lat", MD.CUMULATIVE_DISTRIBUTION, ["k"],
               [(["a"], dist([0.0, 10.0], [1, 2, 3], 7.5))]),
        metric("c", MD.CUMULATIVE_INT64, ["k"], [([None], 2 ** 62)])])
    body = json_format.MessageToJson(request, preserving_proto_field_name=snake).encode()
    export = _json.parse_metrics(body)
    assert store_form(export) == [
        (("lat", "", "", MD.CUMULATIVE_DISTRIBUTION, ("k",)),
         [(["a"], (6, 7.5, (0.0, 10.0), [1, 2, 3]))]),
        (("c", "", "", MD.CUMULATIVE_INT64, ("k",)), [([""], 2 ** 62)])]
    assert export.node == node("gw").SerializeToString()


def test_gos_body_reads_as_json_format_reads_it() -> None:
    fast = _json.parse_metrics(GO_METRICS)
    slow = by_json_format(GO_METRICS)
    assert store_form(fast) == store_form(slow)
    assert fast.node == slow.node


def test_gos_body_rebuilds_the_request_json_format_builds() -> None:
    assert _json.parse_metrics(GO_METRICS).request() == json_format.Parse(GO_METRICS, Request())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests(), snake=st.booleans())
def test_any_request_reads_as_json_format_reads_it(request: Any, snake: bool) -> None:
    body = json_format.MessageToJson(request, preserving_proto_field_name=snake).encode()
    fast = _json.parse_metrics(body)
    assert store_form(fast) == store_form(by_json_format(body))
    assert fast.node == (request.node.SerializeToString() if request.HasField("node") else None)
    assert store_form(_protorequest.from_proto(fast.request())) == store_form(fast)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests(), snake=st.booleans())
def test_any_request_rebuilds_to_the_message_json_format_builds(request: Any,
                                                               snake: bool) -> None:
    # An empty descriptor object ({}) is the known difference: see the xfail below.
    assume(all(m.metric_descriptor != MD() for m in request.metrics))
    body = json_format.MessageToJson(request, preserving_proto_field_name=snake).encode()
    assert _json.parse_metrics(body).request() == json_format.Parse(body, Request()) == request


@pytest.mark.xfail(strict=True, reason="_jsonrequest drops the presence of an empty "
                   "metric_descriptor object: the rebuilt request lacks the field")
def test_an_empty_descriptor_object_rebuilds_as_json_format_builds_it() -> None:
    body = b'{"metrics": [{"metricDescriptor": {}}]}'
    assert _json.parse_metrics(body).request() == json_format.Parse(body, Request())


def test_int64_strings_are_read_exactly_past_2_to_the_53() -> None:
    body = body_of(gauge({"int64Value": "9007199254740993"}),
                   gauge({"int64_value": "-9223372036854775808"}))
    assert [s for _, series in store_form(_json.parse_metrics(body)) for s in series] == [
        ([], 9007199254740993), ([], -2 ** 63)]
    assert _json.parse_metrics(body).request().metrics[0].timeseries[0].points[0] \
        .int64_value == 9007199254740993


def test_int64_bucket_counts_as_strings_are_read_exactly() -> None:
    body = body_of(gauge({"distributionValue": {
        "count": "9007199254740995", "sum": 1.5,
        "bucketOptions": {"explicit": {"bounds": [1]}},
        "buckets": [{"count": "9007199254740993"}, {}, {"count": 2}]}}))
    [(_, [(_, value)])] = store_form(_json.parse_metrics(body))
    assert value == (9007199254740995, 1.5, (1.0,), [9007199254740993, 0, 2])


def test_a_string_double_like_nan_is_read_by_json_format() -> None:
    body = body_of(gauge({"doubleValue": "NaN"}), gauge({"doubleValue": "-Infinity"}))
    values = [v for _, series in store_form(_json.parse_metrics(body)) for _, v in series]
    assert math.isnan(values[0]) and values[1] == -math.inf


def test_a_summary_is_read_by_json_format() -> None:
    body = body_of(gauge({"summaryValue": {
        "count": "3", "sum": 4.5,
        "snapshot": {"percentileValues": [{"percentile": 50, "value": 1.5},
                                          {"percentile": 99, "value": 3.0}]}}}))
    [(_, [(_, value)])] = store_form(_json.parse_metrics(body))
    assert isinstance(value, Summary)
    assert (value.count, value.sum, value.quantiles) == (3, 4.5, ((0.5, 1.5), (0.99, 3.0)))


def test_unknown_fields_are_ignored_as_json_format_ignores_them() -> None:
    body = body_of(gauge({"int64Value": 4, "exemplar": {"x": 1}}, extra="yes"), future=[1])
    assert store_form(_json.parse_metrics(body)) == [(("g", "", "", 1, ()), [([], 4)])]


def test_an_unknown_type_name_is_unspecified_as_json_format_reads_it() -> None:
    body = body_of({"metricDescriptor": {"name": "g", "type": "NOT_A_TYPE"},
                    "timeseries": [{"points": [{"int64Value": 1}]}]})
    assert store_form(_json.parse_metrics(body)) == store_form(by_json_format(body)) == [
        (("g", "", "", 0, ()), [([], 1)])]


def test_a_type_by_name_is_its_number() -> None:
    body = body_of({"metricDescriptor": {"name": "g", "type": "CUMULATIVE_DOUBLE"},
                    "timeseries": [{"points": [{"doubleValue": 0.5}]}]})
    assert store_form(_json.parse_metrics(body)) == [(("g", "", "", 5, ()), [([], 0.5)])]


def test_a_series_without_points_is_left_out() -> None:
    body = body_of({"metricDescriptor": {"name": "g", "type": 1},
                    "timeseries": [{"labelValues": [{"value": "a"}]},
                                   {"labelValues": [{"value": "b"}],
                                    "points": [{"int64Value": 2}]}]})
    assert store_form(_json.parse_metrics(body))[0][1] == [(["b"], 2)]


def test_the_last_point_of_a_series_is_its_value() -> None:
    body = body_of(gauge({"int64Value": 1}, startTimestamp="2026-01-01T00:00:00Z"))
    doc = json.loads(body)
    doc["metrics"][0]["timeseries"][0]["points"].append({"int64Value": 9})
    assert store_form(_json.parse_metrics(json.dumps(doc).encode()))[0][1] == [([], 9)]


def test_an_int64_past_its_range_is_a_bad_request_as_json_format_says() -> None:
    body = body_of(gauge({"int64Value": "9223372036854775808"}))
    with pytest.raises(json_format.ParseError):
        json_format.Parse(body, Request())
    with pytest.raises(BadRequest):
        store_form(_json.parse_metrics(body))


def test_a_double_past_its_range_is_a_bad_request() -> None:
    body = b'{"metrics": [{"timeseries": [{"points": [{"doubleValue": 1%s}]}]}]}' % (
        b"0" * 400)
    with pytest.raises(BadRequest):
        _json.parse_metrics(body)


@pytest.mark.parametrize("body, message", [
    (b"{", "invalid JSON"),
    (b"[]", "a JSON object is expected"),
    (b'{"metrics": 5}', "invalid ExportMetricsServiceRequest"),
    (b'{"metrics": [{"timeseries": [{"points": [{"int64Value": true}]}]}]}',
     "Bool value True is not acceptable for integer field"),
    (b'{"metrics": [{"timeseries": [{"startTimestamp": "yesterday", "points": []}]}]}',
     "invalid ExportMetricsServiceRequest"),
    (b'{"metrics": [{"timeseries": [{"points": [{"int64Value": "12x"}]}]}]}',
     "invalid ExportMetricsServiceRequest"),
])
def test_an_invalid_body_is_a_bad_request_with_json_formats_reason(body: bytes,
                                                                   message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        _json.parse_metrics(body)


def test_a_binary_body_reads_as_the_real_class_reads_it() -> None:
    request = Request(node=node("bin"), metrics=[
        metric("c", MD.CUMULATIVE_INT64, ["k"], [(["a"], 7)])])
    export = _json.parse_binary_metrics(request.SerializeToString())
    assert store_form(export) == [(("c", "", "", MD.CUMULATIVE_INT64, ("k",)), [(["a"], 7)])]
    assert export.request() == request


def test_an_invalid_binary_body_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="invalid protobuf ExportMetricsServiceRequest"):
        _json.parse_binary_metrics(b"\x0a\x05ab")


# Traces.

def test_gos_trace_body_is_json_formats_request() -> None:
    trace = _json.parse_trace(GO_TRACE)
    assert trace == json_format.Parse(GO_TRACE, _json.TraceRequest())
    assert trace.node.service_info.name == "gopls"


def test_a_trace_body_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="a JSON object is expected"):
        _json.parse_trace(b'"spans"')


# Strings: every string valid UTF-8.

def test_lone_surrogates_in_label_values_and_descriptions_become_replacement_characters() -> None:
    body = (b'{"metrics": [{"metricDescriptor": {"name": "g", "type": 1, '
            b'"description": "bad \\udc80 help", "labelKeys": [{"key": "k\\ud800"}]}, '
            b'"timeseries": [{"labelValues": [{"value": "x\\ud83d"}], '
            b'"points": [{"int64Value": 1}]}]}]}')
    [(desc, [(labels, _)])] = store_form(_json.parse_metrics(body))
    assert (desc[1], desc[4], labels) == ("bad \ufffd help", ("k\ufffd",), ["x\ufffd"])
    assert _json.parse_metrics(body).request().metrics[0].metric_descriptor.description == (
        "bad \ufffd help")


def test_a_surrogate_pair_is_one_character_and_stays() -> None:
    assert _jsondoc.load(b'{"v": "\\ud83d\\ude00"}') == {"v": "\U0001f600"}


def test_lone_surrogates_in_keys_nested_lists_and_a_bare_string_are_replaced() -> None:
    assert _jsondoc.load(b'{"k\\ud800": [["\\udfff", 1, {"x": "\\uDBFF!"}]]}') == {
        "k\ufffd": [["\ufffd", 1, {"x": "\ufffd!"}]]}
    assert _jsondoc.load(b'"\\ud800"') == "\ufffd"


def test_a_body_with_only_low_surrogates_is_made_valid_too() -> None:
    # (found by tests/test_server_fuzz.py: {"\udfff": null} was a 500, protobuf's
    # field lookup choking on the key.)  DC00-DFFF escape the same walk as D800-DBFF.
    assert _jsondoc.load(b'{"\\udfff": "v\\uDC80"}') == {"\ufffd": "v\ufffd"}
    assert _json.parse_metrics(b'{"\\udfff": null}').metrics == []
    assert _json.parse_trace(b'{"\\udc00": 1}') == _json.TraceRequest()


def test_invalid_utf8_bytes_become_replacement_characters() -> None:
    assert _jsondoc.load(b'{"v": "a\xff\xfeb"}') == {"v": "a\ufffd\ufffdb"}


def test_a_utf16_body_is_detected_and_read() -> None:
    assert _jsondoc.load('{"v": "é"}'.encode("utf-16")) == {"v": "é"}


def test_a_body_without_surrogate_escapes_is_returned_as_json_decodes_it() -> None:
    assert _jsondoc.load(b'{"v": "a\\\\ud800", "w": "\\u00e9"}') == {"v": "a\\ud800", "w": "é"}


# Nesting.

def nested(depth: int) -> Any:
    doc: Any = 0
    for _ in range(depth):
        doc = [doc]
    return doc


def test_too_deep_counts_objects_and_arrays() -> None:
    assert _jsondoc.too_deep(nested(5), 5) is False
    assert _jsondoc.too_deep(nested(6), 5) is True
    assert _jsondoc.too_deep({"a": {"b": [{}]}}, 4) is False
    assert _jsondoc.too_deep({"a": {"b": [{}]}}, 3) is True
    assert _jsondoc.too_deep({"a": 1, "b": "x"}, 1) is False


def test_a_body_the_fast_path_leaves_may_nest_max_depth_deep() -> None:
    # The document is depth 1, "extra"'s outermost list depth 2.
    ok = body_of(gauge({"int64Value": 1}), extra=nested(_jsondoc.MAX_DEPTH - 1))
    too_deep = body_of(gauge({"int64Value": 1}), extra=nested(_jsondoc.MAX_DEPTH))
    assert store_form(_json.parse_metrics(ok)) == [(("g", "", "", 1, ()), [([], 1)])]
    with pytest.raises(BadRequest, match="JSON nested more than 64 deep"):
        _json.parse_metrics(too_deep)


def test_the_depth_bound_is_the_callers() -> None:
    body = body_of(gauge({"int64Value": 1}), extra=nested(4))
    with pytest.raises(BadRequest, match="JSON nested more than 4 deep"):
        _json.parse_metrics(body, max_depth=4)
    with pytest.raises(BadRequest, match="invalid ExportTraceServiceRequest: JSON nested more "
                                         "than 4 deep"):
        _json.parse_trace(json.dumps({"spans": nested(4)}).encode(), max_depth=4)
    assert _json.parse_trace(json.dumps({"spans": []}).encode(), max_depth=2) == \
        _json.TraceRequest()


def test_a_body_deeper_than_the_decoder_allows_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="JSON nested too deep"):
        _json.parse_metrics(b"[" * 200_000 + b"]" * 200_000)


# The collector pause.

@pytest.fixture
def collector() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_paused_while_a_request_is_read(collector: None) -> None:
    with _json.collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_collector_comes_back_when_the_last_overlapping_request_ends(
        collector: None) -> None:
    outer = _json.collector_paused()
    outer.__enter__()
    with _json.collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
    outer.__exit__(None, None, None)
    assert gc.isenabled()


def test_the_collector_comes_back_after_a_request_that_raised(collector: None) -> None:
    with pytest.raises(BadRequest):
        with _json.collector_paused():
            _json.parse_metrics(b"{")
    assert gc.isenabled()


def test_a_collector_the_application_disabled_stays_disabled(collector: None) -> None:
    gc.disable()
    with _json.collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_a_pause_past_the_limit_is_broken_by_the_next_request(
        collector: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "_PAUSE_LIMIT", 0.0)
    with _json.collector_paused():
        assert not gc.isenabled()
        with _json.collector_paused():
            assert gc.isenabled()  # overlapping requests without a break: enabled again
        assert gc.isenabled()
    assert gc.isenabled()


def test_a_protobuf_class_reads_what_the_fast_path_rebuilt() -> None:
    # The rebuilt request is a real message: its bytes parse with the real class.
    body = body_of(gauge({"distribution_value": {"count": 2, "sum": 3.0, "buckets": [
        {"count": 2}]}}))
    wire = _json.parse_metrics(body).request().SerializeToString()
    point = Request.FromString(wire).metrics[0].timeseries[0].points[0]
    assert point.distribution_value == metrics_pb2.DistributionValue(
        count=2, sum=3.0, buckets=[{"count": 2}])
