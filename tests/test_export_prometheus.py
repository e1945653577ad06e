"""export.prometheus: exposition, serving, registries, stock-exporter takeover."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import logging
import os
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import pytest

# gotools_compat first: it makes opencensus's clock warning-free (E13) before
# opencensus.stats is imported.
from gotools_compat import event, metric, stats  # isort: skip
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import tag_map as oc_tag_map
from prometheus_client import CollectorRegistry, generate_latest, make_asgi_app, make_wsgi_app
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from gotools_compat.export import prometheus
from tests.helpers import entry

@pytest.fixture
def prefix(registry: None) -> str:
    """The tests' metric-name prefix; each test defines its metrics in a fresh registry."""
    return "tp_"


@pytest.fixture
def server() -> Iterator[prometheus.Server]:
    srv = prometheus.new().serve(port=0)
    yield srv
    srv.stop()


def scrape(url: str, accept: Optional[str] = None,
           encoding: Optional[str] = None) -> Tuple[int, Dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if accept:
        request.add_header("Accept", accept)
    if encoding:
        request.add_header("Accept-Encoding", encoding)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        error.close()
        return error.code, dict(error.headers), body


def samples(text: str, parse: Any = text_parse) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]],
                                                         float]:
    """Every sample as {(name, sorted labels): value}."""
    out = {}
    for family in parse(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str, parse: Any = text_parse) -> Dict[str, Any]:
    return {family.name: family for family in parse(text)}


def test_counter_is_scraped_with_total_suffix_labels_and_help(prefix: str,
                                                             server: prometheus.Server) -> None:
    method = event.new_string_key("method")
    m = stats.Float64(prefix + "reqs", "requests", "1")
    metric.Scalar(prefix + "requests", "Requests served.", keys=[method]).count_float64(m)
    for value, name in [(1.0, "GET"), (2.0, "GET"), (3.0, "POST")]:
        m.record(event.label(None, method.of(name)), value)
    status, headers, body = scrape(server.url)
    assert status == 200
    assert headers["Content-Type"] == prometheus.TEXT_CONTENT_TYPE
    text = body.decode()
    assert "# HELP %srequests_total Requests served.\n" % prefix in text
    assert "# TYPE %srequests_total counter\n" % prefix in text
    assert '%srequests_total{method="GET"} 2\n' % prefix in text
    family = families(text)[prefix + "requests"]
    assert family.type == "counter"
    assert {s.labels["method"]: s.value for s in family.samples} == {"GET": 2.0, "POST": 1.0}


def test_int_sums_and_gauges_are_exact_past_2_53(prefix: str) -> None:
    m = stats.Int64(prefix + "bytes", "bytes", "By")
    metric.Scalar(prefix + "bytes_sum", "sum").sum_int64(m)
    metric.Scalar(prefix + "bytes_last", "last").latest_int64(m)
    m.record(None, 2 ** 53)
    m.record(None, 1)
    text = prometheus.new().render().decode()
    assert "\n%sbytes_sum_total 9007199254740993\n" % prefix in text
    assert "\n%sbytes_last 1\n" % prefix in text


def test_float_sum_counter_and_negative_gauge(prefix: str) -> None:
    m = stats.Float64(prefix + "temp", "temperature", "C")
    metric.Scalar(prefix + "temp_sum", "sum").sum_float64(m)
    metric.Scalar(prefix + "temp_now", "now").latest_float64(m)
    for value in (0.25, 1.5, 12.75, -0.5):
        m.record(None, value)
    got = families(prometheus.new().render().decode())
    assert got[prefix + "temp_sum"].type == "counter"
    assert got[prefix + "temp_sum"].samples[0].value == 14.0
    assert got[prefix + "temp_now"].type == "gauge"
    assert got[prefix + "temp_now"].samples[0].value == -0.5


def test_negative_sum_is_shown_in_text_and_left_out_of_openmetrics(
        prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    key = event.new_string_key("side")
    m = stats.Float64(prefix + "bal", "balance", "1")
    metric.Scalar(prefix + "balance", "sum", keys=[key]).sum_float64(m)
    m.record(event.label(None, key.of("up")), 2.5)
    m.record(event.label(None, key.of("down")), -4.0)
    exp = prometheus.new()
    text = samples(exp.render().decode())
    assert text[(prefix + "balance_total", (("side", "down"),))] == -4.0
    with caplog.at_level(logging.WARNING, logger="gotools_compat.export.prometheus"):
        om = samples(exp.render(openmetrics=True).decode(), om_parse)
        exp.render(openmetrics=True)
    assert om[(prefix + "balance_total", (("side", "up"),))] == 2.5
    assert (prefix + "balance_total", (("side", "down"),)) not in om
    assert len([r for r in caplog.records if prefix + "balance" in r.getMessage()]) == 1


def test_counter_named_total_is_not_suffixed_twice(prefix: str) -> None:
    m = stats.Int64(prefix + "hits", "hits", "1")
    metric.Scalar(prefix + "hits_total", "hits").count_int64(m)
    m.record(None, 7)
    text = prometheus.new().render().decode()
    assert "\n%shits_total 1\n" % prefix in text
    assert "_total_total" not in text


def _histogram(prefix: str, bounds: List[float], values: List[float],
               keys: Tuple[Any, ...] = ()) -> str:
    m = stats.Float64(prefix + "lat", "latency", "ms")
    metric.HistogramFloat64(prefix + "latency", "Latency.", bounds, keys=keys).record(m)
    for value in values:
        m.record(None, value)
    return prefix + "latency"


def test_histogram_buckets_count_value_le_bound_cumulative_to_count(prefix: str) -> None:
    name = _histogram(prefix, [0, 1, 5], [0, 1, 1, 5, 6, -3, 0.5])
    text = prometheus.new().render().decode()
    got = samples(text)
    buckets = [got[(name + "_bucket", (("le", le),))] for le in ("0.0", "1.0", "5.0", "+Inf")]
    assert buckets == [2, 5, 6, 7]
    assert got[(name + "_count", ())] == 7
    assert got[(name + "_sum", ())] == 10.5
    assert families(text)[name].type == "histogram"


def test_negative_first_bound_text_has_all_three_openmetrics_buckets_only(prefix: str) -> None:
    name = _histogram(prefix, [-10, -1, 0], [-20, -5, -1, 3])
    exp = prometheus.new()
    text = samples(exp.render().decode())
    assert [text[(name + "_bucket", (("le", le),))] for le in ("-10.0", "-1.0", "0.0", "+Inf")] \
        == [1, 3, 3, 4]
    assert text[(name + "_count", ())] == 4
    assert text[(name + "_sum", ())] == -23
    om_text = exp.render(openmetrics=True).decode()
    om = samples(om_text, om_parse)
    assert [om[(name + "_bucket", (("le", le),))] for le in ("-10.0", "-1.0", "0.0", "+Inf")] \
        == [1, 3, 3, 4]
    assert (name + "_sum", ()) not in om and (name + "_count", ()) not in om


def test_openmetrics_parser_reads_back_the_same_numbers_as_text(prefix: str,
                                                              server: prometheus.Server) -> None:
    key = event.new_string_key("route")
    name = _histogram(prefix, [0.5, 2], [0.1, 1, 3], keys=(key,))
    _, headers, body = scrape(server.url, accept="application/openmetrics-text; version=1.0.0")
    assert headers["Content-Type"] == prometheus.OPENMETRICS_CONTENT_TYPE
    om_text = body.decode()
    assert om_text.endswith("# EOF\n")
    om = {k: v for k, v in samples(om_text, om_parse).items() if k[0].startswith(prefix)}
    text = {k: v for k, v in samples(scrape(server.url)[2].decode()).items()
            if k[0].startswith(prefix)}
    assert len(om) == 5 and om == text
    assert om[(name + "_bucket", (("le", "2.0"), ("route", "")))] == 2


def test_fast_renderer_matches_collector_in_a_registry(prefix: str) -> None:
    key = event.new_string_key("k")
    name = _histogram(prefix, [-1, 0, 1], [-2, 0, 2], keys=(key,))
    m = stats.Int64(prefix + "n", "n", "1")
    metric.Scalar(prefix + "n_count", "c", keys=[key]).count_int64(m)
    m.record(event.label(None, key.of('a"b\\c\nd')), 3)
    exp = prometheus.new(namespace="fast")
    registry = CollectorRegistry()
    registry.register(exp)
    fast = {k: v for k, v in families(exp.render().decode()).items() if prefix in k}
    slow = {k: v for k, v in families(generate_latest(registry).decode()).items() if prefix in k}
    assert len(fast) == 2 and fast == slow
    assert "fast_" + name in fast
    sample = fast["fast_" + prefix + "n_count"].samples[0]
    assert sample.labels == {"k": 'a"b\\c\nd'} and sample.value == 1


def test_label_names_are_made_valid() -> None:
    assert prometheus.label_names(["le", "quantile", "http.method", "9lives", "__x", "ok"]) == (
        "key_le", "key_quantile", "http_method", "key_9lives", "key___x", "ok")
    assert prometheus.label_names(["a.b", "a_b", "a-b"]) == ("a_b", "a_b_2", "a_b_3")


def test_metric_names_are_made_valid_without_unit_suffix() -> None:
    assert prometheus.metric_name("", "rpc.latency-ms") == "rpc_latency_ms"
    assert prometheus.metric_name("app", "9xx") == "app_9xx"
    assert prometheus.metric_name("", "9xx") == "_9xx"
    assert prometheus.metric_name("", "a:b") == "a:b"


def test_le_key_on_histogram_is_renamed_and_buckets_stay_intact(prefix: str) -> None:
    le = event.new_string_key("le")
    m = stats.Float64(prefix + "v", "v", "1")
    metric.HistogramFloat64(prefix + "h", "h", [1.0], keys=[le]).record(m)
    m.record(event.label(None, le.of("user")), 0.5)
    got = samples(prometheus.new().render(openmetrics=True).decode(), om_parse)
    assert got[(prefix + "h_bucket", (("key_le", "user"), ("le", "1.0")))] == 1
    assert got[(prefix + "h_bucket", (("key_le", "user"), ("le", "+Inf")))] == 1


def test_missing_key_value_is_an_empty_label(prefix: str) -> None:
    a = event.new_string_key("a")
    b = event.new_string_key("b")
    m = stats.Int64(prefix + "e", "e", "1")
    metric.Scalar(prefix + "e_last", "e", keys=[a, b]).latest_int64(m)
    m.record(event.label(None, a.of("x")), 4)
    text = prometheus.new().render().decode()
    assert '%se_last{a="x",b=""} 4\n' % prefix in text


def test_missing_and_empty_values_are_one_series_summed_or_latest(prefix: str) -> None:
    # None (key absent) and "" both render as b="": one series, not two.
    a = event.new_string_key("a")
    b = event.new_string_key("b")
    m = stats.Int64(prefix + "v", "v", "1")
    metric.Scalar(prefix + "v_count", "c", keys=[a, b]).count_int64(m)
    metric.Scalar(prefix + "v_sum", "s", keys=[a, b]).sum_int64(m)
    metric.Scalar(prefix + "v_last", "l", keys=[a, b]).latest_int64(m)
    metric.HistogramInt64(prefix + "v_hist", "h", [5], keys=[a, b]).record(m)
    exp = prometheus.new()
    registry = CollectorRegistry()
    registry.register(exp)
    m.record(event.label(None, a.of("x")), 4)  # b missing
    exp.render()  # the first row's prefix is cached before its twin exists
    m.record(event.label(event.label(None, a.of("x")), b.of("")), 10)
    m.record(event.label(None, a.of("x")), 3)
    m.record(event.label(event.label(None, a.of("y")), b.of("")), 1)  # no twin
    expected = {
        (prefix + "v_count_total", (("a", "x"), ("b", ""))): 3,
        (prefix + "v_sum_total", (("a", "x"), ("b", ""))): 17,
        (prefix + "v_last", (("a", "x"), ("b", ""))): 10,  # the row created last
        (prefix + "v_hist_bucket", (("a", "x"), ("b", ""), ("le", "5.0"))): 2,
        (prefix + "v_hist_bucket", (("a", "x"), ("b", ""), ("le", "+Inf"))): 3,
        (prefix + "v_hist_count", (("a", "x"), ("b", ""))): 3,
        (prefix + "v_hist_sum", (("a", "x"), ("b", ""))): 17,
        (prefix + "v_count_total", (("a", "y"), ("b", ""))): 1,
    }
    for text in (exp.render().decode(), generate_latest(registry).decode(),
                 exp.render(openmetrics=True).decode()):
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        assert len(lines) == len(set(line.rsplit(" ", 1)[0] for line in lines)), text
        got = samples(text, om_parse if text.endswith("# EOF\n") else text_parse)
        assert {k: got[k] for k in expected} == expected
    # A registry that never rendered through exp.render() merges too.
    fresh = CollectorRegistry()
    fresh.register(prometheus.new())
    text = generate_latest(fresh).decode()
    assert text.count('%sv_last{a="x",b=""} 10.0\n' % prefix) == 1


def test_colliding_names_show_the_first_and_warn_once(prefix: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    m = stats.Int64(prefix + "c", "c", "1")
    metric.Scalar(prefix + "dup.x", "first").latest_int64(m)
    metric.Scalar(prefix + "dup_x", "second").latest_int64(m)
    m.record(None, 1)
    exp = prometheus.new()
    with caplog.at_level(logging.WARNING, logger="gotools_compat.export.prometheus"):
        text = exp.render().decode()
        exp.render()
    assert "# HELP %sdup_x first\n" % prefix in text
    assert "second" not in text
    warned = [r for r in caplog.records if prefix + "dup_x" in r.getMessage()]
    assert len(warned) == 1


def test_plain_opencensus_views_are_shown_with_their_values(prefix: str) -> None:
    measure = oc_measure.MeasureFloat(prefix + "oc", "oc", "ms")
    manager = oc_stats.stats.view_manager
    for suffix, agg in [("sum", oc_aggregation.SumAggregation()),
                        ("count", oc_aggregation.CountAggregation()),
                        ("last", oc_aggregation.LastValueAggregation()),
                        ("dist", oc_aggregation.DistributionAggregation([1.0, 5.0]))]:
        manager.register_view(oc_view.View(prefix + "oc_" + suffix, "plain " + suffix, ["route"],
                                           measure, agg))
    for value in (0.5, 3.0):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, value)
        tags = oc_tag_map.TagMap()
        tags.insert("route", "/a")
        mmap.record(tags)
    text = prometheus.new().render().decode()
    got = samples(text)
    route = (("route", "/a"),)
    assert got[(prefix + "oc_sum_total", route)] == 3.5
    assert got[(prefix + "oc_count_total", route)] == 2
    assert got[(prefix + "oc_last", route)] == 3.0
    assert got[(prefix + "oc_dist_bucket", (("le", "5.0"), ("route", "/a")))] == 2
    assert got[(prefix + "oc_dist_count", route)] == 2
    fams = families(text)
    assert [fams[prefix + "oc_" + s].type for s in ("sum", "count", "last", "dist")] == [
        "counter", "counter", "gauge", "histogram"]
    assert text.count("# TYPE %soc_sum_total " % prefix) == 1


def test_plain_opencensus_rows_missing_and_empty_are_one_series(prefix: str) -> None:
    measure = oc_measure.MeasureInt(prefix + "ocb", "ocb", "1")
    manager = oc_stats.stats.view_manager
    for suffix, agg in [("sum", oc_aggregation.SumAggregation()),
                        ("last", oc_aggregation.LastValueAggregation()),
                        ("dist", oc_aggregation.DistributionAggregation([5.0]))]:
        manager.register_view(oc_view.View(prefix + "ocb_" + suffix, "", ["a", "b"],
                                           measure, agg))
    for value, b in ((4, None), (10, ""), (3, None)):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_int_put(measure, value)
        tags = oc_tag_map.TagMap()
        tags.insert("a", "x")
        if b is not None:
            tags.insert("b", b)
        mmap.record(tags)
    text = prometheus.new().render().decode()
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == len(set(line.rsplit(" ", 1)[0] for line in lines)), text
    got = samples(text)
    labels = (("a", "x"), ("b", ""))
    assert got[(prefix + "ocb_sum_total", labels)] == 17
    assert got[(prefix + "ocb_last", labels)] == 10  # of the row made later (b="")
    assert got[(prefix + "ocb_dist_bucket", (("a", "x"), ("b", ""), ("le", "5.0")))] == 2
    assert got[(prefix + "ocb_dist_count", labels)] == 3
    assert got[(prefix + "ocb_dist_sum", labels)] == 17


@pytest.mark.skipif(shutil.which("promtool") is None and not os.environ.get("CI"),
                    reason="promtool is not installed (it is in CI)")
def test_promtool_finds_nothing_but_name_lints(prefix: str) -> None:
    key = event.new_string_key("route")
    _histogram(prefix, [-1, 0, 2.5], [-3, 0, 1, 7], keys=(key,))
    m = stats.Int64(prefix + "x", "x", "1")
    metric.Scalar(prefix + "jobsDone", "camel case name").count_int64(m)
    metric.Scalar(prefix + "queue_depth", "depth", keys=[key]).latest_int64(m)
    m.record(event.label(None, key.of('a "quoted"\\ path')), 3)
    body = prometheus.new(namespace="pt").render()
    result = subprocess.run(["promtool", "check", "metrics"], input=body,
                            capture_output=True, timeout=30)
    problems = [line for line in result.stdout.decode().splitlines() + result.stderr.decode(
    ).splitlines() if line.strip()]
    assert any("camelCase" in line and prefix in line for line in problems), problems
    # Lints about what users chose (names; empty descriptions of other tests'
    # metrics in this process) are allowed; anything else is ours.
    unexpected = [line for line in problems if "camelCase" not in line
                  and "abbreviated units" not in line
                  and not ("no help text" in line and prefix not in line)]
    assert unexpected == []


def listening_addresses(port: int) -> Set[str]:
    """The local addresses the kernel lists as listening on TCP ``port`` (IPv4)."""
    found = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, state = line.split()[1], line.split()[3]
            host, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(socket.inet_ntoa(bytes.fromhex(host)[::-1]))
    return found


def test_serve_binds_loopback_by_default_and_empty_address_is_loopback() -> None:
    exp = prometheus.new()
    with exp.serve(port=0) as first, exp.serve(port=0, addr="") as second:
        assert first.address == second.address == "127.0.0.1"
        assert listening_addresses(first.port) == {"127.0.0.1"}
        assert listening_addresses(second.port) == {"127.0.0.1"}
        assert scrape(second.url)[0] == 200


def test_server_stops_and_starts_again_on_the_same_port() -> None:
    exp = prometheus.new()
    srv = exp.serve(port=0)
    port = srv.port
    assert scrape(srv.url)[0] == 200
    srv.stop()
    srv.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    again = exp.serve(port=port)
    try:
        assert scrape(again.url)[0] == 200
    finally:
        again.stop()


def test_two_exporters_do_not_leak_into_each_other_or_the_global_registry(prefix: str) -> None:
    from prometheus_client import REGISTRY

    m = stats.Int64(prefix + "iso", "iso", "1")
    metric.Scalar(prefix + "iso_count", "iso").count_int64(m)
    m.record(None, 1)
    with prometheus.new("alpha").serve(port=0) as a, prometheus.new("beta").serve(port=0) as b:
        text_a = scrape(a.url)[2].decode()
        text_b = scrape(b.url)[2].decode()
    assert "alpha_%siso_count_total 1\n" % prefix in text_a and "beta_" not in text_a
    assert "beta_%siso_count_total 1\n" % prefix in text_b and "alpha_" not in text_b
    assert prefix not in generate_latest(REGISTRY).decode()


@pytest.mark.parametrize("accept, openmetrics", [
    ("", False),
    ("text/plain", False),
    ("application/openmetrics-text; version=1.0.0", True),
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", False),  # Prometheus 2.x
    ("application/openmetrics-text, text/plain;q=0", True),
])
def test_text_is_chosen_whenever_the_client_takes_it(accept: str, openmetrics: bool) -> None:
    assert prometheus.wants_openmetrics(accept) is openmetrics


def test_gzip_is_used_when_asked(server: prometheus.Server) -> None:
    status, headers, body = scrape(server.url, encoding="gzip")
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == scrape(server.url)[2]


def test_scrape_error_is_500_logged_once_and_later_scrapes_work(
        prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    m = stats.Int64(prefix + "boom", "boom", "1")
    name = metric.Scalar(prefix + "boom_count", "boom").count_int64(m)
    m.record(None, 1)
    recorder = entry(name).recorder  # fault injection: its rows' table breaks

    def broken() -> List[Any]:
        raise RuntimeError("collector broke")

    with prometheus.new().serve(port=0) as srv:
        monkeypatch.setattr(recorder, "snapshot_rows", broken)
        with caplog.at_level(logging.DEBUG, logger="gotools_compat.export.prometheus"):
            first = scrape(srv.url)
            second = scrape(srv.url)
        monkeypatch.undo()
        third = scrape(srv.url)
    assert first[0] == second[0] == 500
    assert first[2] == b"scrape failed: RuntimeError\n"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert "collector broke" in str(errors[0].exc_info[1])
    assert third[0] == 200 and b"%sboom_count_total 1\n" % prefix.encode() in third[2]


def test_scrape_while_other_threads_add_rows(prefix: str) -> None:
    key = event.new_int_key("n")
    m = stats.Float64(prefix + "race", "race", "1")
    metric.HistogramFloat64(prefix + "race_h", "race", [1.0], keys=[key]).record(m)
    stop = threading.Event()

    def add_rows() -> None:
        for i in itertools.count():
            if stop.is_set() or i >= 3000:
                return
            m.record(event.label(None, key.of(i)), 0.5)

    thread = threading.Thread(target=add_rows)
    thread.start()
    exp = prometheus.new()
    try:
        for _ in range(10):
            text = exp.render().decode()
            assert text.count("# TYPE %srace_h histogram" % prefix) == 1
    except BaseException:
        stop.set()  # only on a failure: else every row is added, however fast the renders
        raise
    finally:
        thread.join()
    got = samples(exp.render().decode())
    counts = [v for (n, _), v in got.items() if n == prefix + "race_h_count"]
    assert len(counts) == 3000 and set(counts) == {1}


def test_works_in_wsgi_and_asgi_apps_of_a_user_registry(prefix: str) -> None:
    m = stats.Int64(prefix + "app", "app", "1")
    metric.Scalar(prefix + "app_count", "app").count_int64(m)
    m.record(None, 1)
    registry = CollectorRegistry()
    exp = prometheus.new(registry=registry)
    expected = "%sapp_count_total 1.0\n" % prefix

    status: List[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
               "HTTP_ACCEPT": "text/plain"}
    wsgi_body = b"".join(make_wsgi_app(registry)(environ, lambda s, h: status.append(s)))
    assert status == ["200 OK"] and expected in wsgi_body.decode()

    own = b"".join(exp.wsgi_app(environ, lambda s, h: status.append(s)))
    assert status[-1] == "200 OK" and "%sapp_count_total 1\n" % prefix in own.decode()

    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": [(b"accept", b"text/plain")]}
    asyncio.run(make_asgi_app(registry)(scope, receive, send))
    assert sent[0]["status"] == 200
    assert expected in b"".join(s.get("body", b"") for s in sent[1:]).decode()


def test_take_over_turns_a_failing_stock_exporter_endpoint_correct(prefix: str) -> None:
    from opencensus.ext.prometheus import stats_exporter as stock_module
    from prometheus_client import REGISTRY

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stock = stock_module.new_stats_exporter(
        stock_module.Options(namespace="stock", port=port, address="127.0.0.1"))
    manager = oc_stats.stats.view_manager
    manager.register_exporter(stock)
    measure = oc_measure.MeasureFloat(prefix + "st", "stock app", "ms")
    manager.register_view(oc_view.View(prefix + "st_sum", "app sum", ["route"], measure,
                                       oc_aggregation.SumAggregation()))
    manager.register_view(oc_view.View(prefix + "st_last", "app last", ["route"], measure,
                                       oc_aggregation.LastValueAggregation()))
    ours = stats.Int64(prefix + "ours", "ours", "1")
    metric.Scalar(prefix + "ours_count", "ours").count_int64(ours)
    ours.record(None, 1)
    for value in (1.5, 2.0):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, value)
        tags = oc_tag_map.TagMap()
        tags.insert("route", "/r")
        mmap.record(tags)
    url = "http://127.0.0.1:%d/metrics" % port
    try:
        assert scrape(url)[0] == 500  # E16: one Sum view breaks every scrape
        exp = prometheus.take_over(stock)
        status, _, body = scrape(url)
    finally:
        if stock in manager.measure_to_view_map.exporters:
            manager.unregister_exporter(stock)
    assert exp.namespace == "stock"
    assert status == 200
    got = samples(body.decode())
    assert got[("stock_%sst_sum_total" % prefix, (("route", "/r"),))] == 3.5
    assert got[("stock_%sst_last" % prefix, (("route", "/r"),))] == 2.0
    assert got[("stock_%sours_count_total" % prefix, ())] == 1
    assert stock not in manager.measure_to_view_map.exporters
    assert any(c is exp for c in REGISTRY._collector_to_names)
    REGISTRY.unregister(exp)
