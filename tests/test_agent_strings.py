"""Whatever one sender sends, the scrape stays valid UTF-8 and valid exposition text.

JSON bodies: bad strings (lone surrogates, invalid UTF-8) are replaced with
U+FFFD, nesting is bounded.  Binary protobuf: a string field that is not
UTF-8 is a BadRequest.  Label keys Prometheus reserves are renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import types
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat.agent import _json, _jsondoc, _protorequest
from gotools_compat.agent._model import BadRequest, Export
from gotools_compat.agent._render import render
from gotools_compat.agent._store import Store
from gotools_compat.agent._traces import TraceStore

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

MD = metrics_pb2.MetricDescriptor
GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()
BAD = "\ud800"  # a lone surrogate: json.dumps writes it as the escape "\ud800"
FFFD = "\ufffd"


def body(service: str, host: str, name: str, description: str, key: str,
         value: str) -> bytes:
    return json.dumps({
        "node": {"identifier": {"hostName": host, "pid": 1}, "serviceInfo": {"name": service}},
        "metrics": [{
            "metricDescriptor": {"name": name, "description": description, "unit": "ms",
                                 "type": "GAUGE_DOUBLE",
                                 "labelKeys": [{"key": key}, {"key": "v"}]},
            "timeseries": [{"labelValues": [{"value": "a", "hasValue": True},
                                            {"value": value, "hasValue": True}],
                            "points": [{"timestamp": "2026-11-26T06:55:43Z",
                                        "doubleValue": 2.5}]}]}]}).encode()


def ingest(store: Store, export: Export) -> int:
    sender = store.sender(None if export.node is None else _protorequest.node_of(export.node))
    return store.ingest(sender, export.metrics)


def parsed(text: str, openmetrics: bool = False) -> Dict[Tuple[str, Tuple[Any, ...]], float]:
    parse = openmetrics_families if openmetrics else text_string_to_metric_families
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parse(text) for s in family.samples}


def test_lone_surrogates_anywhere_in_a_json_body_become_u_fffd() -> None:
    store = Store(namespace="", const_labels={})
    good = body("good", "h", "lat", "fine", "k", "b")
    assert b"\\ud800" in body(BAD, BAD, BAD, BAD, BAD, BAD)  # the escape, as senders write it
    assert ingest(store, _json.parse_metrics(good)) == 1
    bad = body("svc" + BAD, "h" + BAD, "lat" + BAD, "help " + BAD + " text", "k" + BAD,
               "x" + BAD + "y")
    assert ingest(store, _json.parse_metrics(bad)) == 1
    text = render(store.snapshot()).decode("utf-8")  # was: UnicodeEncodeError, every scrape
    assert text == (
        '# HELP lat fine\n# TYPE lat gauge\nlat{job="good",instance="h:1",k="a",v="b"} 2.5\n'
        '# HELP lat_ help \ufffd text\n# TYPE lat_ gauge\n'
        'lat_{job="svc\ufffd",instance="h\ufffd:1",k_="a",v="x\ufffdy"} 2.5\n')
    assert parsed(text) == {
        ("lat", (("instance", "h:1"), ("job", "good"), ("k", "a"), ("v", "b"))): 2.5,
        ("lat_", (("instance", "h\ufffd:1"), ("job", "svc\ufffd"), ("k_", "a"),
                  ("v", "x\ufffdy"))): 2.5}
    om = render(store.snapshot(), True).decode("utf-8")
    assert parsed(om, True) == parsed(text)
    assert om.endswith("# EOF\n")


def test_the_slow_path_and_raw_invalid_utf8_are_sanitised_too() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    doc = {"metrics": [{"metricDescriptor": {"name": "s", "description": "d" + BAD,
                                             "type": "SUMMARY"},
                        "timeseries": [{"points": [{"summaryValue": {"count": "2",
                                                                     "sum": 3.0}}]}]}]}
    assert ingest(store, _json.parse_metrics(json.dumps(doc).encode())) == 1
    raw = body("svc", "h", "g", "bytes \xff", "k", "v").replace(b"\\u00ff", b"\xed\xa0\x80")
    assert b"\xed\xa0\x80" in raw  # a surrogate encoded in UTF-8, and invalid anyway
    assert ingest(store, _json.parse_metrics(raw)) == 1
    text = render(store.snapshot()).decode("utf-8")
    assert "# HELP s d\ufffd\n" in text
    assert "# HELP g bytes " + FFFD * 3 + "\n" in text
    assert len(parsed(text)) == 3


def test_paired_surrogates_and_normal_bodies_read_as_before() -> None:
    emoji = body("svc", "h", "g", "smile \ud83d\ude00", "k", "v")
    assert b"\\ud83d\\ude00" in emoji
    assert _jsondoc.load(emoji) == json.loads(emoji)
    assert json.loads(emoji)["metrics"][0]["metricDescriptor"]["description"] == "smile \U0001F600"
    assert _jsondoc.load(GO_METRICS) == json.loads(GO_METRICS)


def test_a_trace_body_with_lone_surrogates_shows_on_tracez() -> None:
    doc = {"node": {"serviceInfo": {"name": "svc" + BAD}},
           "spans": [{"traceId": "AAECAwQFBgcICQoLDA0ODw==", "spanId": "AAECAwQFBgc=",
                      "name": {"value": "span" + BAD},
                      "attributes": {"attributeMap": {"k" + BAD: {
                          "stringValue": {"value": "v" + BAD}}}}}]}
    request = _json.parse_trace(json.dumps(doc).encode())  # was: a 400
    traces = TraceStore()
    assert traces.add(request.node, request.spans) == 1
    record = traces.recent()[0]
    assert (record["name"], record["service"], record["attributes"]) == (
        "span\ufffd", "svc\ufffd", {"k\ufffd": "v\ufffd"})
    assert "<td>span\ufffd</td>" in traces.html().decode("utf-8")
    assert json.loads(traces.json())["recent"][0]["name"] == "span\ufffd"


def test_tracez_html_survives_a_lone_surrogate_from_a_python_caller() -> None:
    # A protobuf message cannot hold one; a plain node object from Python can.
    traces = TraceStore()
    node = types.SimpleNamespace(service_info=types.SimpleNamespace(name="py" + BAD))
    traces.add(node, [trace_pb2.Span(name={"value": "op"})])
    page = traces.html().decode("utf-8")
    assert "<td>py\ufffd</td><td>op</td>" in page
    assert b"py\\ud800" in traces.json()  # JSON escapes it: ASCII, valid


def test_the_store_backstop_keeps_any_string_from_breaking_a_scrape() -> None:
    # Strings handed to the store directly (no reader in between).
    store = Store(namespace="", const_labels={"c": "x" + BAD})
    sender = store.sender(common_pb2.Node(service_info={"name": "svc"}))
    store.ingest(sender, [(("g", "help" + BAD, "", 2, ("k", "q")),
                           [(["v" + BAD, 'a"' + BAD], 1.0)])])
    text = render(store.snapshot()).decode("utf-8")
    assert text == ('# HELP g help\ufffd\n# TYPE g gauge\n'
                    'g{c="x\ufffd",job="svc",k="v\ufffd",q="a\\"\ufffd"} 1\n')
    assert len(parsed(text)) == 1


def binary(**bad: str) -> bytes:
    fields = {"label": "oklabel", "desc": "okdesc", "service": "oksvc", "resource": "okres"}
    request = metrics_service_pb2.ExportMetricsServiceRequest(
        node=common_pb2.Node(service_info={"name": fields["service"]}),
        resource=resource_pb2.Resource(type=fields["resource"]),
        metrics=[metrics_pb2.Metric(
            metric_descriptor=MD(name="g", description=fields["desc"], type=MD.GAUGE_INT64,
                                 label_keys=[{"key": "k"}]),
            timeseries=[metrics_pb2.TimeSeries(
                label_values=[{"value": fields["label"], "has_value": True}],
                points=[{"int64_value": 1}])])])
    raw: bytes = request.SerializeToString()
    for field in bad:
        ok = fields[field].encode()
        raw = raw.replace(ok, b"\xff\xfe" + ok[2:])  # same length: framing intact
    return raw


@pytest.mark.parametrize("field,message", [
    ("label", "LabelValue"), ("desc", "MetricDescriptor"), ("service", "Node"),
    ("resource", "Resource")])
def test_invalid_utf8_in_a_binary_string_field_is_a_bad_request(field: str,
                                                                 message: str) -> None:
    good = _json.parse_binary_metrics(binary())
    assert [list(s) for _, s in good.metrics] == [[(["oklabel"], 1)]]
    # protobuf 7 names UTF-8 in its message, 6 (the newest for Python 3.9) does not.
    with pytest.raises(BadRequest, match="invalid protobuf %s: " % message):
        export = _json.parse_binary_metrics(binary(**{field: "bad"}))
        [list(s) for _, s in export.metrics]  # label values are read as series are


def test_reserved_label_keys_are_renamed_like_le() -> None:
    store = Store(namespace="", const_labels={})
    sender = store.sender(common_pb2.Node(identifier={"host_name": "h", "pid": 1},
                                          service_info={"name": "svc"}))
    keys = ("__name__", "__meta_x", "job", "instance", "ok")
    store.ingest(sender, [
        (("g", "a gauge", "", 2, keys), [(["n", "m", "j", "i", "o"], 1.0)]),
        (("h", "a histogram", "", 6, ("le", "__name__")),
         [(["x", "y"], (1, 2.0, (1.0,), [1, 0]))])])
    text = render(store.snapshot()).decode()
    assert ('g{job="svc",instance="h:1",exported___name__="n",exported___meta_x="m",'
            'exported_job="j",exported_instance="i",ok="o"} 1\n') in text
    labels = {tuple(sorted(s.labels)) for f in text_string_to_metric_families(text)
              for s in f.samples if s.name == "h_bucket"}
    assert labels == {("exported___name__", "exported_le", "instance", "job", "le")}
    assert len(parsed(render(store.snapshot(), True).decode(), True)) == 5
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI (apt-get install prometheus)")
        pytest.skip("promtool not installed")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert all("should have a unit" in p or "_total" in p for p in problems), problems
    assert "error" not in result.stderr.lower()


def test_a_const_label_named_like_prometheus_own_is_refused() -> None:
    with pytest.raises(ValueError, match="__name__"):
        Store(const_labels={"__name__": "x"})


def nested(depth: int) -> List[Any]:
    doc: List[Any] = []
    for _ in range(depth - 1):
        doc = [doc]
    return doc


def test_json_nested_10000_deep_is_a_bad_request() -> None:
    deep = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(BadRequest, match="JSON nested too deep"):
        _json.parse_metrics(b'{"metrics": ' + deep + b"}")
    with pytest.raises(BadRequest, match="JSON nested too deep"):
        _json.parse_trace(deep)


def test_json_deeper_than_max_depth_on_the_slow_path_is_a_bad_request() -> None:
    # An unknown field (json_format ignores it) nested 100 deep.
    doc = {"metrics": [], "extra": nested(100)}
    raw = json.dumps(doc).encode()
    with pytest.raises(BadRequest, match="nested more than 64 deep"):
        _json.parse_metrics(raw)
    with pytest.raises(BadRequest, match="nested more than 64 deep"):
        _json.parse_trace(json.dumps({"spans": [], "extra": nested(100)}).encode())
    assert _json.parse_metrics(raw, max_depth=101).metrics == []  # the bound is an option
    assert _json.too_deep(doc, 100) and not _json.too_deep(doc, 101)  # the top object: 1


def test_normal_bodies_are_not_affected_by_the_depth_bound() -> None:
    store = Store()
    assert ingest(store, _json.parse_metrics(GO_METRICS)) > 0
    fallback = json.loads(GO_METRICS)
    fallback["unknownField"] = {"a": [1, 2, {"b": 3}]}  # the slow path, shallow
    assert ingest(store, _json.parse_metrics(json.dumps(fallback).encode())) > 0
