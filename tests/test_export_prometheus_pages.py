"""gotools_compat.export._prometheus_pages: /metrics.json of serve() and its tracez answers,
directly (no sockets)."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator

import pytest

# gotools_compat first: it makes opencensus's clock warning-free (E13) before
# opencensus.stats is imported.
from gotools_compat import event, export, metric, stats  # isort: skip
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import tag_map as oc_tag_map

from gotools_compat._version import __version__
from gotools_compat.export import prometheus
from gotools_compat.export._prometheus_pages import SOURCE, TRACEZ_PATHS, PageData, tracez_answer

pytestmark = pytest.mark.usefixtures("registry")


def build(exporter: prometheus.Exporter, interval: float = 2.0) -> Dict[str, Any]:
    body = PageData(exporter, interval).build(interval)
    assert body.isascii()
    doc: Dict[str, Any] = json.loads(body)
    return doc


def by_name(doc: Dict[str, Any]) -> Dict[str, Any]:
    return {f["name"]: f for f in doc["families"]}


@pytest.fixture
def restore_exporter() -> Iterator[None]:
    saved = export.get_exporter()
    yield
    export.set_exporter(saved)


# -- the document --------------------------------------------------------------

def test_with_no_metrics_the_document_has_its_fields_and_no_families() -> None:
    raw = PageData(prometheus.new(), 0.75).build(0.75)
    doc = json.loads(raw)
    assert list(doc) == ["source", "interval", "now", "changed", "tracez", "families"]
    assert SOURCE == "gotools_compat " + __version__
    assert doc["source"] == SOURCE
    assert doc["interval"] == 0.75 and doc["tracez"] is False and doc["families"] == []
    assert doc["changed"] == doc["now"]  # the first answer counts as a change
    assert b'"interval":3,' in PageData(prometheus.new(), 3.0).build(3.0)  # integral: no .0


def test_counters_and_gauges_carry_exact_values_help_and_unit() -> None:
    m = stats.Int64("bytes", "bytes", "By")
    metric.Scalar("bytes_sum", "Bytes in all.").sum_int64(m)
    metric.Scalar("bytes_count", "Writes.").count_int64(m)
    metric.Scalar("hits_total", "Already total.").count_int64(m)
    metric.Scalar("bytes_last", "Last write.").latest_int64(m)
    f = stats.Float64("temp", "temperature", "C")
    metric.Scalar("temp_now", "Now.").latest_float64(f)
    m.record(None, 2 ** 53)
    m.record(None, 1)
    f.record(None, -1.5)
    fams = by_name(build(prometheus.new(namespace="app")))
    assert sorted(fams) == ["app_bytes_count", "app_bytes_last", "app_bytes_sum",
                            "app_hits", "app_temp_now"]
    assert fams["app_bytes_sum"] == {"name": "app_bytes_sum", "type": "counter",
                                     "help": "Bytes in all.", "unit": "By",
                                     "series": [{"labels": {}, "value": 2 ** 53 + 1}]}
    assert fams["app_bytes_count"]["series"] == [{"labels": {}, "value": 2}]
    # The family name of a counter is that of /metrics without "_total" (its samples add it).
    assert fams["app_hits"]["type"] == "counter"
    assert fams["app_hits"]["series"] == [{"labels": {}, "value": 2}]
    assert fams["app_bytes_last"]["type"] == "gauge"
    assert fams["app_bytes_last"]["series"] == [{"labels": {}, "value": 1}]
    assert (fams["app_temp_now"]["unit"], fams["app_temp_now"]["series"]) == (
        "C", [{"labels": {}, "value": -1.5}])


def test_label_objects_use_prometheus_names_sorted_and_leave_out_absent_values() -> None:
    zeta, dotted = event.new_string_key("zeta"), event.new_string_key("my.key")
    le, other = event.new_string_key("le"), event.new_string_key("other")
    m = stats.Int64("n", "n", "1")
    metric.Scalar("n_count", "", keys=[zeta, dotted, le, other]).count_int64(m)
    ctx = event.label(None, zeta.of('q"uo\\te\n<b>'))
    ctx = event.label(ctx, dotted.of("caf\u00e9"))
    ctx = event.label(ctx, le.of("0.5"))
    m.record(ctx, 1)  # "other" is None: left out
    m.record(event.label(event.label(None, other.of("")), zeta.of("z")), 1)  # "": left out too
    (fam,) = build(prometheus.new())["families"]
    first, second = fam["series"]
    assert list(first["labels"].items()) == [("key_le", "0.5"), ("my_key", "caf\u00e9"),
                                             ("zeta", 'q"uo\\te\n<b>')]
    assert (second["labels"], first["value"], second["value"]) == ({"zeta": "z"}, 1, 1)


def test_histograms_are_per_bucket_with_their_le_list_count_and_sum() -> None:
    route = event.new_string_key("route")
    m = stats.Float64("lat", "latency", "ms")
    metric.HistogramFloat64("latency", "Latency.", [-1.0, 0.0, 2.5, 1e6],
                            keys=[route]).record(m)
    for value in (-3.0, -1.0, 0.0, 1.0, 2.5, 7.0, 2e6):  # value <= le counts in that bucket
        m.record(event.label(None, route.of("/a")), value)
    m.record(event.label(None, route.of("/b")), 0.25)
    (fam,) = build(prometheus.new(namespace="app"))["families"]
    assert (fam["name"], fam["type"], fam["help"], fam["unit"]) == (
        "app_latency", "histogram", "Latency.", "ms")
    le = ["-1.0", "0.0", "2.5", "1e+06", "+Inf"]
    assert fam["series"] == [
        {"labels": {"route": "/a"}, "le": le, "buckets": [2, 1, 2, 1, 1], "count": 7,
         "sum": 2000006.5},
        {"labels": {"route": "/b"}, "le": le, "buckets": [0, 0, 1, 0, 0], "count": 1,
         "sum": 0.25}]


def test_an_unchanged_histogram_reads_the_same_and_a_changed_one_anew() -> None:
    key = event.new_string_key("k")
    m = stats.Int64("size", "size", "By")
    metric.HistogramInt64("sizes", "", [10, 100], keys=[key]).record(m)
    m.record(event.label(None, key.of("a")), 5)
    m.record(event.label(None, key.of("b")), 50)
    data = PageData(prometheus.new(), 2.0)
    first = json.loads(data.build(2.0))["families"][0]["series"]
    assert json.loads(data.build(2.0))["families"][0]["series"] == first
    m.record(event.label(None, key.of("b")), 500)
    a, b = json.loads(data.build(2.0))["families"][0]["series"]
    assert a == first[0] == {"labels": {"k": "a"}, "le": ["10.0", "100.0", "+Inf"],
                             "buckets": [1, 0, 0], "count": 1, "sum": 5}
    assert b == {"labels": {"k": "b"}, "le": ["10.0", "100.0", "+Inf"],
                 "buckets": [0, 1, 1], "count": 2, "sum": 550}


def test_rows_differing_only_in_none_against_empty_are_one_series_from_the_next_poll(
        ) -> None:
    a, b = event.new_string_key("a"), event.new_string_key("b")
    m = stats.Int64("v", "v", "1")
    metric.Scalar("v_count", "", keys=[a, b]).count_int64(m)
    metric.Scalar("v_last", "", keys=[a, b]).latest_int64(m)
    metric.HistogramInt64("v_hist", "", [5], keys=[a, b]).record(m)
    m.record(event.label(None, a.of("x")), 4)  # b missing (None)
    m.record(event.label(event.label(None, a.of("x")), b.of("")), 10)  # b "": its twin
    m.record(event.label(None, a.of("x")), 3)
    data = PageData(prometheus.new(), 2.0)
    data.build(2.0)  # the poll that meets the twins (it may still show both)
    fams = by_name(json.loads(data.build(2.0)))
    assert fams["v_count"]["series"] == [{"labels": {"a": "x"}, "value": 3}]  # summed
    assert fams["v_last"]["series"] == [{"labels": {"a": "x"}, "value": 10}]  # created last
    assert fams["v_hist"]["series"] == [{"labels": {"a": "x"}, "le": ["5.0", "+Inf"],
                                         "buckets": [2, 1], "count": 3, "sum": 17}]


def test_plain_opencensus_views_are_families_with_absent_tags_left_out() -> None:
    measure = oc_measure.MeasureFloat("oc", "oc", "ms")
    manager = oc_stats.stats.view_manager
    for suffix, agg in [("sum", oc_aggregation.SumAggregation()),
                        ("count", oc_aggregation.CountAggregation()),
                        ("last", oc_aggregation.LastValueAggregation()),
                        ("dist", oc_aggregation.DistributionAggregation([1.0, 5.0, 10.0]))]:
        manager.register_view(oc_view.View("oc_" + suffix, "plain " + suffix,
                                           ["route", "zone"], measure, agg))
    for value in (0.5, 3.0, 4.0, 4.5):  # sum 12, mean 3: exact through opencensus
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, value)
        tags = oc_tag_map.TagMap()
        tags.insert("route", "/a")  # no "zone"
        mmap.record(tags)
    fams = by_name(build(prometheus.new(namespace="app")))
    route = {"route": "/a"}
    assert [(fams["app_oc_" + s]["type"], fams["app_oc_" + s]["help"])
            for s in ("sum", "count", "last", "dist")] == [
        ("counter", "plain sum"), ("counter", "plain count"), ("gauge", "plain last"),
        ("histogram", "plain dist")]
    assert fams["app_oc_sum"]["series"] == [{"labels": route, "value": 12}]
    assert fams["app_oc_count"]["series"] == [{"labels": route, "value": 4}]
    assert fams["app_oc_last"]["series"] == [{"labels": route, "value": 4.5}]
    # opencensus buckets are value < bound: 0.5 | 3, 4, 4.5 | - | -
    assert fams["app_oc_dist"]["series"] == [
        {"labels": route, "le": ["1.0", "5.0", "10.0", "+Inf"], "buckets": [1, 3, 0, 0],
         "count": 4, "sum": 12}]


def test_a_colliding_name_leaves_the_later_metric_out_of_the_document() -> None:
    m = stats.Int64("c", "c", "1")
    metric.Scalar("dup.x", "first").latest_int64(m)
    metric.Scalar("dup_x", "second").latest_int64(m)
    measure = oc_measure.MeasureInt("ocm", "ocm", "1")
    oc_stats.stats.view_manager.register_view(oc_view.View(
        "dup_x", "third", [], measure, oc_aggregation.LastValueAggregation()))
    m.record(None, 7)
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_int_put(measure, 9)
    mmap.record(oc_tag_map.TagMap())
    assert build(prometheus.new())["families"] == [
        {"name": "dup_x", "type": "gauge", "help": "first", "unit": "1",
         "series": [{"labels": {}, "value": 7}]}]


def test_json_shares_a_recent_answer_while_build_reads_the_data_now() -> None:
    m = stats.Int64("n", "n", "1")
    metric.Scalar("n_count", "").count_int64(m)
    m.record(None, 1)
    data = PageData(prometheus.new(), 600.0)
    first = data.json()
    m.record(None, 1)
    assert data.json() is first  # built less than half an interval ago
    assert json.loads(first)["interval"] == 600
    assert json.loads(first)["families"][0]["series"] == [{"labels": {}, "value": 1}]
    assert json.loads(data.build(600.0))["families"][0]["series"] == [
        {"labels": {}, "value": 2}]


# -- tracez_answer ---------------------------------------------------------------

def query_of(**values: str) -> Any:
    return lambda key, default: values.get(key, default)


def test_tracez_answer_is_none_for_other_paths_and_an_exporter_keeping_no_spans(
        restore_exporter: None) -> None:
    assert TRACEZ_PATHS == ("/debug/tracez", "/debug/tracez.json")
    fresh = prometheus.new()  # not the process exporter, no span ended here
    assert [tracez_answer(fresh, p, query_of(), 2.0) for p in TRACEZ_PATHS] == [None, None]
    off = prometheus.new(max_spans=0)
    export.set_exporter(off)
    assert tracez_answer(off, "/debug/tracez.json", query_of(), 2.0) is None
    on = prometheus.new()
    export.set_exporter(on)
    for path in ("/metrics", "/", "/debug/tracez/", "/debug/tracez.json.gz"):
        assert tracez_answer(on, path, query_of(), 2.0) is None


def test_tracez_answer_gives_json_the_page_a_table_and_a_400_for_a_bad_query(
        restore_exporter: None) -> None:
    exporter = prometheus.new()
    export.set_exporter(exporter)
    for name in ("db <query>", "rpc"):
        event.start_span(event.background(), name)[1]()
    json_answer = tracez_answer(exporter, "/debug/tracez.json", query_of(), 1.5)
    assert json_answer is not None
    status, headers, body = json_answer
    doc = json.loads(body)
    assert status == 200 and dict(headers)["Content-Type"] == "application/json"
    assert dict(headers)["Cache-Control"] == "no-store"
    assert doc["interval"] == 1.5 and [s["name"] for s in doc["recent"]] == ["db <query>", "rpc"]
    as_json = tracez_answer(exporter, "/debug/tracez", query_of(format="json"), 1.5)
    assert as_json is not None and json.loads(as_json[2])["recent"] == doc["recent"]
    bad = tracez_answer(exporter, "/debug/tracez.json", query_of(trace="xyz"), 1.5)
    assert bad is not None and bad[0] == 400
    assert dict(bad[1])["Content-Type"] == "application/json" and bad[2].endswith(b"\n")
    assert json.loads(bad[2])["error"].startswith("trace: expected 32 hex digits")
    table = tracez_answer(exporter, "/debug/tracez", query_of(format="table", limit="x"), 1.5)
    assert table is not None and table[0] == 200
    assert dict(table[1])["Content-Type"] == "text/html; charset=utf-8"
    assert table[2] == exporter.spans.html(50) != exporter.spans.html(1)  # unreadable: 50
    page = tracez_answer(exporter, "/debug/tracez", query_of(), 1.5)
    assert page is not None and page[0] == 200 and b'src="../_pages/tracez.js"' in page[2]
    assert dict(page[1])["Content-Security-Policy"].startswith("default-src 'self'")
