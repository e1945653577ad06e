"""The live pages over HTTP: the agent's and serve()'s routes, headers, JSON; /metrics as before."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

# opencensus.stats is imported after gotools_compat (which sets it up).
from gotools_compat import event, metric, stats  # isort: skip
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import tag_map as oc_tag_map

from gotools_compat._pages import CSP
from gotools_compat.agent import Agent
from gotools_compat.export import prometheus
from tests.helpers import unique

GO_TRACE = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-trace.json").read_bytes()
GO_METRICS = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-metrics.json").read_bytes()


def request(port: int, path: str, method: str = "GET", body: Optional[bytes] = None
            ) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    a = Agent("127.0.0.1:0", "127.0.0.1:0", page_interval=0.5).start()
    assert request(a.port, "/v1/trace", "POST", GO_TRACE)[0] == 200
    assert request(a.port, "/v1/metrics", "POST", GO_METRICS)[0] == 200
    yield a
    a.stop()


def test_the_agent_serves_its_pages_with_the_security_headers(agent: Agent) -> None:
    port = agent.prometheus_port or 0
    for path, kind, marker in [("/", "text/html", b'src="_pages/metrics.js"'),
                               ("/debug/tracez", "text/html", b'src="../_pages/tracez.js"'),
                               ("/_pages/common.js", "text/javascript", b"createTextNode"),
                               ("/_pages/pages.css", "text/css", b".card"),
                               ("/_pages/icon.svg", "image/svg+xml", b"<svg")]:
        status, headers, body = request(port, path)
        assert status == 200 and headers["content-type"].startswith(kind) and marker in body
        assert headers["content-security-policy"] == CSP
        assert headers["x-content-type-options"] == "nosniff"
    status, headers, body = request(port, "/", "HEAD")
    assert status == 200 and body == b"" and headers["content-security-policy"] == CSP


def test_the_agents_metrics_json_holds_what_metrics_shows(agent: Agent) -> None:
    port = agent.prometheus_port or 0
    status, headers, body = request(port, "/metrics.json")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store" and headers["x-content-type-options"] == "nosniff"
    doc = json.loads(body)
    assert doc["interval"] == 0.5 and doc["tracez"] is True
    fams = {f["name"]: f for f in doc["families"]}
    sent = fams["promdemo_sent_bytes"]["series"][0]
    text = request(port, "/metrics")[2].decode()
    # The same buckets as /metrics, per bucket instead of cumulative.
    cumulative = [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("promdemo_sent_bytes_bucket")]
    running = 0
    for count, total in zip(sent["buckets"], cumulative):
        running += count
        assert running == total
    assert len(sent["buckets"]) == len(cumulative) and sent["count"] == cumulative[-1]
    assert sent["labels"]["job"] == "gopls"
    assert fams["gotools_agent_spans_received"]["series"] == [{"labels": {}, "value": 4}]


def test_the_agents_tracez_json_answers_queries_and_refuses_bad_ones(agent: Agent) -> None:
    port = agent.prometheus_port or 0
    doc = json.loads(request(port, "/debug/tracez.json?name=queued&latency=10us")[2])
    assert [s["name"] for s in doc["spans"]] == ["queued"] and doc["matched"] == 1
    trace = doc["spans"][0]["traceId"]
    whole = json.loads(request(port, "/debug/tracez.json?trace=" + trace)[2])["trace"]
    assert [s["name"] for s in whole][0] == "textDocument/hover" and len(whole) == 4
    assert [s["offsetNano"] for s in whole] == sorted(s["offsetNano"] for s in whole)
    status, _, body = request(port, "/debug/tracez.json?name=queued&latency=3ms")
    assert status == 400 and b"latency" in body
    assert json.loads(request(port, "/debug/tracez?format=json")[2])["recent"]  # as before
    status, headers, table = request(port, "/debug/tracez?format=table")
    assert status == 200 and b"<td>textDocument/hover</td>" in table


def test_the_agents_pages_are_read_only_and_metrics_unchanged(agent: Agent) -> None:
    port = agent.prometheus_port or 0
    assert request(port, "/", "POST", b"{}")[0] == 404
    assert request(port, "/metrics.json", "PUT", b"{}")[0] == 405
    assert request(port, "/_pages/nope.js")[0] == 404
    status, headers, text = request(port, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "content-security-policy" not in headers
    assert b'promdemo_sent_bytes_count{vendor="otc",job="gopls"' in text


# -- serve() ---------------------------------------------------------------------

def record_some(uniq: str) -> None:
    key = event.new_string_key("method")
    latency = stats.Float64(uniq + "lat", "latency", "ms")
    metric.HistogramFloat64(uniq + "dist", "latency <dist>", buckets=[0, 10, 100],
                            keys=[key]).record(latency)
    metric.Scalar(uniq + "n", "records").count_float64(latency)
    metric.Scalar(uniq + "last", "", keys=[key]).latest_float64(latency)
    for method, value in [("hover", 5.0), ("hover", 50.0), ("<script>", 500.0), ("hover", 0.0)]:
        latency.record(event.label(None, key.of(method)), value)
    # A plain opencensus view of the app's own: on the page too.
    measure = oc_measure.MeasureFloat(uniq + "oc", "oc", "ms")
    oc_stats.stats.view_manager.register_view(oc_view.View(
        uniq + "oc_dist", "plain", ["route"], measure,
        oc_aggregation.DistributionAggregation([1.0, 5.0])))
    for value in (0.5, 3.0, 9.0):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, value)
        tags = oc_tag_map.TagMap()
        tags.insert("route", "/a")
        mmap.record(tags)


def test_serve_has_the_page_at_root_and_metrics_on_every_other_path() -> None:
    uniq = unique("pages_") + "_"
    record_some(uniq)
    with prometheus.new(namespace="app").serve(port=0, page_interval=0.25) as server:
        assert server.page_url == "http://127.0.0.1:%d/" % server.port
        status, headers, page = request(server.port, "/")
        assert status == 200 and b'src="_pages/metrics.js"' in page
        assert headers["content-security-policy"] == CSP
        for path in ("/metrics", "/anything", "/debug/tracez"):  # no span store in-process
            status, headers, text = request(server.port, path)
            assert status == 200 and headers["content-type"].startswith("text/plain")
            assert ("app_%sn_total 4" % uniq).encode() in text
        status, headers, body = request(server.port, "/metrics.json")
    assert status == 200 and headers["content-type"] == "application/json"
    doc: Dict[str, Any] = json.loads(body)
    assert doc["interval"] == 0.25 and doc["tracez"] is False
    assert doc["source"].startswith("gotools_compat ")
    fams = {f["name"]: f for f in doc["families"]}
    dist = fams["app_%sdist" % uniq]
    assert (dist["type"], dist["help"], dist["unit"]) == ("histogram", "latency <dist>", "ms")
    assert dist["series"] == [
        {"labels": {"method": "hover"}, "le": ["0.0", "10.0", "100.0", "+Inf"],
         "buckets": [1, 1, 1, 0], "count": 3, "sum": 55},
        {"labels": {"method": "<script>"}, "le": ["0.0", "10.0", "100.0", "+Inf"],
         "buckets": [0, 0, 0, 1], "count": 1, "sum": 500}]
    assert fams["app_%sn" % uniq]["type"] == "counter"
    assert fams["app_%sn" % uniq]["series"] == [{"labels": {}, "value": 4}]
    assert fams["app_%slast" % uniq]["series"] == [
        {"labels": {"method": "hover"}, "value": 0}, {"labels": {"method": "<script>"},
                                                      "value": 500}]
    (plain,) = fams["app_%soc_dist" % uniq]["series"]
    assert plain.pop("sum") == pytest.approx(12.5)  # opencensus keeps mean * count
    assert plain == {"labels": {"route": "/a"}, "le": ["1.0", "5.0", "+Inf"],
                     "buckets": [1, 1, 1], "count": 3}
