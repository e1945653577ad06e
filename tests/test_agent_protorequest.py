"""gotools_compat.agent._protorequest: binary metrics requests read through the lean view.

Every reading is compared with a plain reading of the same bytes by the real
opencensus-proto classes (:func:`real_form`); a sub-message the real class
refuses makes the whole request a BadRequest, whenever the lean reader meets it.
"""

from __future__ import annotations

from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings

from gotools_compat.agent import _protorequest
from gotools_compat.agent._model import BadRequest, Export, Summary

from agent_requests import (MD, Request, common_pb2, dist, metric, metrics_pb2, node,
                            requests, resource_pb2, store_form)


def read(body: bytes) -> Export:
    """A binary request as the gRPC and HTTP receivers read it."""
    return _protorequest.export(_protorequest.parse(body))


def real_form(body: bytes) -> List[Any]:
    """The store's form of a binary request, read field by field from the real classes."""
    out = []
    for m in Request.FromString(body).metrics:
        d = m.metric_descriptor
        desc = (d.name, d.description, d.unit, int(d.type), tuple(k.key for k in d.label_keys))
        series = []
        for ts in m.timeseries:
            if not ts.points:
                continue
            p = ts.points[-1]
            which = p.WhichOneof("value")
            if which == "distribution_value":
                v = p.distribution_value
                value: Any = (v.count, v.sum, tuple(v.bucket_options.explicit.bounds),
                              [b.count for b in v.buckets])
            elif which == "summary_value":
                s = p.summary_value
                value = (s.count.value, s.sum.value,
                         tuple((q.percentile / 100, q.value) for q in s.snapshot.percentile_values))
            else:
                value = getattr(p, which) if which else None
            series.append(([lv.value for lv in ts.label_values], value))
        out.append((desc, series))
    return out


def lean_form(body: bytes) -> List[Any]:
    form = store_form(read(body))
    return [(desc, [(labels, (v.count, v.sum, v.quantiles) if isinstance(v, Summary) else v)
                    for labels, v in series]) for desc, series in form]


def summary(count: int, total: float, percentiles: List[Any]) -> Any:
    return metrics_pb2.SummaryValue(
        count={"value": count}, sum={"value": total},
        snapshot={"percentile_values": [{"percentile": p, "value": v} for p, v in percentiles]})


# The lean view against the real classes.

def lean_messages() -> Dict[str, Any]:
    """The lean view's message descriptors by name, from the request down."""
    found: Dict[str, Any] = {}
    todo = [_protorequest.LeanRequest.DESCRIPTOR]
    while todo:
        d = todo.pop()
        if d.name not in found:
            found[d.name] = d
            todo.extend(f.message_type for f in d.fields if f.message_type is not None)
    return found


def test_the_lean_messages_have_the_real_ones_names_field_numbers_and_labels() -> None:
    lean = lean_messages()
    assert sorted(lean) == sorted(real.DESCRIPTOR.name for real, _, _ in _protorequest.LAYOUT)
    is_repeated = _protorequest.is_repeated
    for real, fields, _ in _protorequest.LAYOUT:
        by_name = real.DESCRIPTOR.fields_by_name
        assert {f.name: (f.number, is_repeated(f)) for f in lean[real.DESCRIPTOR.name].fields} \
            == {name: (by_name[name].number, is_repeated(by_name[name])) for name in fields}


def test_the_lean_points_value_is_a_oneof_as_the_real_ones() -> None:
    point = lean_messages()["Point"]
    assert sorted(f.name for f in point.oneofs_by_name["value"].fields) == sorted(
        f.name for f in metrics_pb2.Point.DESCRIPTOR.oneofs_by_name["value"].fields)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_any_request_reads_as_the_real_classes_read_it(request: Any) -> None:
    body = request.SerializeToString()
    assert lean_form(body) == real_form(body)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests())
def test_any_request_rebuilds_to_the_real_message(request: Any) -> None:
    export = read(request.SerializeToString())
    assert export.request() == request
    assert export.node == (request.node.SerializeToString() if request.HasField("node")
                           else None)


def test_a_summary_point_reads_with_quantiles_from_0_to_1() -> None:
    request = Request(metrics=[metric("s", MD.SUMMARY, [], [
        ([], summary(5, 12.5, [(50.0, 2.0), (99.0, 9.0)]))])])
    [(_, [(_, value)])] = store_form(read(request.SerializeToString()))
    assert isinstance(value, Summary)
    assert (value.count, value.sum, value.quantiles) == (5, 12.5, ((0.5, 2.0), (0.99, 9.0)))


def test_the_last_point_is_the_series_value_and_a_series_without_points_is_left_out() -> None:
    request = Request(metrics=[metrics_pb2.Metric(
        metric_descriptor=MD(name="g", type=MD.GAUGE_INT64),
        timeseries=[{"label_values": [{"value": "a"}]},
                    {"label_values": [{"value": "b"}],
                     "points": [{"int64_value": 1}, {"int64_value": 7}]}])])
    [(_, series)] = store_form(read(request.SerializeToString()))
    assert series == [(["b"], 7)]


def test_a_point_without_a_value_reads_as_none() -> None:
    request = Request(metrics=[metrics_pb2.Metric(
        metric_descriptor=MD(name="g"), timeseries=[{"points": [{"timestamp": {"seconds": 1}}]}])])
    assert lean_form(request.SerializeToString()) == [(("g", "", "", 0, ()), [([], None)])]


def test_int64_values_and_bucket_counts_are_exact_at_the_int64_limits() -> None:
    request = Request(metrics=[
        metric("c", MD.CUMULATIVE_INT64, [], [([], 2 ** 63 - 1)]),
        metric("n", MD.GAUGE_INT64, [], [([], -2 ** 63)]),
        metric("h", MD.CUMULATIVE_DISTRIBUTION, [],
               [([], dist([1.0], [2 ** 53 + 1, 2 ** 62], 0.5))])])
    assert [s for _, series in lean_form(request.SerializeToString()) for s in series] == [
        ([], 2 ** 63 - 1), ([], -2 ** 63),
        ([], (2 ** 53 + 1 + 2 ** 62, 0.5, (1.0,), [2 ** 53 + 1, 2 ** 62]))]


def test_the_series_read_again_on_every_iteration() -> None:
    request = Request(metrics=[metric("g", MD.GAUGE_DOUBLE, ["k"], [(["a"], 1.5), (["b"], 2.5)])])
    [(_, series)] = read(request.SerializeToString()).metrics
    assert len(series) == 2
    assert list(series) == list(series) == [(["a"], 1.5), (["b"], 2.5)]


def test_an_empty_node_is_present_and_its_bytes_are_empty() -> None:
    body = Request(node=common_pb2.Node()).SerializeToString()
    assert body == b"\n\x00"
    export = read(body)
    assert export.node == b""
    assert export.request().HasField("node")


def test_a_request_without_a_node_has_none() -> None:
    assert read(b"").node is None


def test_node_of_is_the_real_node_message() -> None:
    raw = node("svc", "h", 42).SerializeToString()
    found = _protorequest.node_of(raw)
    assert isinstance(found, common_pb2.Node)
    assert (found.service_info.name, found.identifier.host_name, found.identifier.pid) == (
        "svc", "h", 42)
    assert _protorequest.node_of(raw) is found  # cached: the same message object


def test_from_proto_reads_a_real_message_as_its_bytes_read() -> None:
    request = Request(node=node("p"), metrics=[metric("g", MD.GAUGE_INT64, ["k"], [(["v"], 3)])])
    export = _protorequest.from_proto(request)
    assert store_form(export) == [(("g", "", "", MD.GAUGE_INT64, ("k",)), [(["v"], 3)])]
    assert export.node == node("p").SerializeToString()


# Invalid sub-messages: BadRequest, as the real classes would refuse the request.

def with_bad_string(message: Any, good: str) -> bytes:
    """A request's bytes with the string ``good`` replaced by as many bytes of invalid UTF-8."""
    body = message.SerializeToString()
    assert body.count(good.encode()) == 1
    return body.replace(good.encode(), b"\xff" * len(good.encode()))


def real_refuses(body: bytes) -> bool:
    try:
        Request.FromString(body)
    except Exception:
        return True
    return False


def test_a_truncated_body_is_a_bad_request() -> None:
    body = Request(metrics=[metric("g", MD.GAUGE_INT64, [], [([], 1)])]).SerializeToString()
    with pytest.raises(BadRequest, match="invalid protobuf ExportMetricsServiceRequest"):
        _protorequest.parse(body[:-1])


def test_a_label_value_that_is_not_utf8_is_a_bad_request_when_its_series_are_read() -> None:
    body = with_bad_string(Request(metrics=[metric("g", MD.GAUGE_INT64, ["k"], [(["ok"], 1)])]),
                           "ok")
    assert real_refuses(body)
    export = read(body)
    [(_, series)] = export.metrics
    with pytest.raises(BadRequest, match="invalid protobuf LabelValue"):
        list(series)


def test_a_descriptor_that_is_not_utf8_is_a_bad_request_when_the_metrics_are_read() -> None:
    body = with_bad_string(Request(metrics=[metric("name1", MD.GAUGE_INT64, [], [([], 1)])]),
                           "name1")
    assert real_refuses(body)
    with pytest.raises(BadRequest, match="invalid protobuf MetricDescriptor"):
        read(body)


def test_a_node_that_is_not_utf8_is_a_bad_request() -> None:
    body = with_bad_string(Request(node=node("svc9")), "svc9")
    assert real_refuses(body)
    with pytest.raises(BadRequest, match="invalid protobuf Node"):
        read(body)


def test_a_resource_that_is_not_utf8_is_a_bad_request() -> None:
    body = with_bad_string(Request(resource=resource_pb2.Resource(type="res9")), "res9")
    assert real_refuses(body)
    with pytest.raises(BadRequest, match="invalid protobuf Resource"):
        read(body)


def test_a_bucket_that_does_not_parse_is_a_bad_request_when_its_series_are_read() -> None:
    request = Request(metrics=[metric("h", MD.CUMULATIVE_DISTRIBUTION, [],
                                      [([], dist([1.0], [3, 4], 1.0))])])
    body = request.SerializeToString()
    bucket = b"\x2a\x02\x08\x04"  # buckets (field 5): {count: 4}
    assert body.count(bucket) == 1
    body = body.replace(bucket, b"\x2a\x02\x08\x80")  # a varint cut short, same length
    assert real_refuses(body)
    [(_, series)] = read(body).metrics
    with pytest.raises(BadRequest, match="invalid protobuf Bucket"):
        list(series)


def test_bucket_options_that_do_not_parse_are_a_bad_request_when_read() -> None:
    request = Request(metrics=[metric("h", MD.CUMULATIVE_DISTRIBUTION, [],
                                      [([], dist([2.5], [1, 1], 1.0))])])
    options = metrics_pb2.DistributionValue.BucketOptions(
        explicit={"bounds": [2.5]}).SerializeToString()
    body = request.SerializeToString()
    assert body.count(options) == 1
    # The explicit message's length one too large: it runs past its parent's end.
    broken = options[:1] + bytes([options[1] + 1]) + options[2:]
    body = body.replace(options, broken)
    assert real_refuses(body)
    [(_, series)] = read(body).metrics
    with pytest.raises(BadRequest, match="invalid protobuf BucketOptions"):
        list(series)


def test_a_summary_that_does_not_parse_is_a_bad_request_when_read() -> None:
    request = Request(metrics=[metric("s", MD.SUMMARY, [], [([], summary(1, 2.0, []))])])
    body = request.SerializeToString()
    count = b"\x0a\x02\x08\x01"  # count (field 1): Int64Value{value: 1}
    assert body.count(count) == 1
    body = body.replace(count, b"\x0a\x02\x08\x80")  # a varint cut short, same length
    assert real_refuses(body)
    [(_, series)] = read(body).metrics
    with pytest.raises(BadRequest, match="invalid protobuf SummaryValue"):
        list(series)


def test_parse_message_names_the_message_in_the_error() -> None:
    with pytest.raises(BadRequest) as raised:
        _protorequest.parse_message(metrics_pb2.Point, b"\x10")
    assert str(raised.value).startswith("invalid protobuf Point: ")
