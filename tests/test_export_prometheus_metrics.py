"""gotools_compat.export._prometheus_metrics: names, headers and lines of our metrics, directly
(no sockets)."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from gotools_compat import event, metric, stats
from gotools_compat.export._prometheus_metrics import Plan, label_names
from tests.helpers import entry

pytestmark = pytest.mark.usefixtures("registry")


def render(plan: Plan, openmetrics: bool = False) -> str:
    out: List[str] = []
    plan.render(out, openmetrics)
    return "".join(out) + ("# EOF\n" if openmetrics else "")


def parsed(text: str, openmetrics: bool = False) -> Dict[str, Any]:
    """The families of an exposition by name, read by prometheus_client's parser."""
    parse = om_parse if openmetrics else text_parse
    return {family.name: family for family in parse(text)}


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def by_labels(family: Any) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_label_names_rename_reserved_and_clashing_names_with_free_suffixes() -> None:
    assert label_names(["le", "key_le"]) == ("key_le", "key_le_2")
    assert label_names(["a_2", "a", "a"]) == ("a_2", "a", "a_3")  # _2 is taken: _3
    assert label_names(["__name__", "quantile", "0"]) == ("key___name__", "key_quantile",
                                                          "key_0")
    assert label_names(["", "caf\u00e9"]) == ("_", "caf_")
    assert label_names([]) == ()


def test_a_counter_plan_names_its_family_sample_headers_and_claims() -> None:
    m = stats.Int64("calls", "calls", "1")
    name = metric.Scalar("rpc.calls", "Calls made.").count_int64(m)
    plan = Plan(entry(name), "app-1")
    assert (plan.type, plan.family, plan.sample) == ("counter", "app_1_rpc_calls",
                                                     "app_1_rpc_calls_total")
    assert plan.claims == {"app_1_rpc_calls", "app_1_rpc_calls_total", "app_1_rpc_calls_created"}
    assert plan.header_text == ("# HELP app_1_rpc_calls_total Calls made.\n"
                                "# TYPE app_1_rpc_calls_total counter\n")
    assert plan.header_om == ("# HELP app_1_rpc_calls Calls made.\n"
                              "# TYPE app_1_rpc_calls counter\n")


def test_a_counter_named_total_claims_its_family_without_a_second_suffix() -> None:
    m = stats.Int64("hits", "hits", "1")
    plan = Plan(entry(metric.Scalar("hits_total", "h").count_int64(m)), "")
    assert (plan.family, plan.sample) == ("hits", "hits_total")
    assert plan.claims == {"hits", "hits_total", "hits_created"}


def test_gauges_claim_their_name_and_histograms_their_sample_names() -> None:
    m = stats.Float64("v", "v", "1")
    gauge = Plan(entry(metric.Scalar("depth", "d").latest_float64(m)), "")
    hist = Plan(entry(metric.HistogramFloat64("lat", "l", [1.0]).record(m)), "ns")
    assert (gauge.type, gauge.family, gauge.sample, gauge.claims) == (
        "gauge", "depth", "depth", {"depth"})
    assert hist.type == "histogram"
    assert hist.claims == {"ns_lat", "ns_lat_bucket", "ns_lat_count", "ns_lat_sum",
                           "ns_lat_created"}


def test_labels_are_sorted_by_name_and_le_comes_last() -> None:
    zone, app = event.new_string_key("zone"), event.new_string_key("app")
    m = stats.Float64("v", "v", "1")
    hist = Plan(entry(metric.HistogramFloat64("h", "h", [1.0], keys=[zone, app]).record(m)), "")
    gauge = Plan(entry(metric.Scalar("g", "g", keys=[zone, app]).latest_float64(m)), "")
    ctx = event.label(event.label(None, zone.of("z")), app.of("a"))
    m.record(ctx, 0.5)
    text = render(hist)
    assert 'h_bucket{app="a",zone="z",le="1.0"} 1\n' in text
    assert 'h_bucket{app="a",zone="z",le="+Inf"} 1\n' in text
    assert 'h_sum{app="a",zone="z"} 0.5\nh_count{app="a",zone="z"} 1\n' in text
    assert render(gauge).endswith('\ng{app="a",zone="z"} 0.5\n')
    # The prefixes on their own; a None value is the empty label.
    assert gauge.scalar_prefix(("x", None)) == 'g{app="",zone="x"} '
    buckets, sum_prefix, count_prefix = hist.histogram_prefixes((None, "y"))
    assert buckets == ['h_bucket{app="y",zone="",le="1.0"} ',
                       'h_bucket{app="y",zone="",le="+Inf"} ']
    assert (sum_prefix, count_prefix) == ('h_sum{app="y",zone=""} ', 'h_count{app="y",zone=""} ')


def test_le_values_are_canonical_and_buckets_count_values_up_to_their_bound() -> None:
    m = stats.Int64("n", "n", "1")
    name = metric.HistogramInt64("size", "Sizes.", [0, 1, 1000000, 1048576]).record(m)
    for value in (1, 1000000, 1000001, 2000000):
        m.record(None, value)
    plan = Plan(entry(name), "")
    assert plan.les == ["0.0", "1.0", "1e+06", "1.048576e+06", "+Inf"]
    expected: Samples = {("size_bucket", (("le", le),)): count for le, count in
                zip(plan.les, [0, 1, 2, 3, 4])}
    expected.update({("size_sum", ()): 4000002, ("size_count", ()): 4})
    for openmetrics in (False, True):
        family = parsed(render(plan, openmetrics), openmetrics)["size"]
        assert family.type == "histogram"
        assert by_labels(family) == expected
    floats = stats.Float64("f", "f", "1")
    fplan = Plan(entry(metric.HistogramFloat64("f_h", "", [0.005, 0.25, 123456]).record(floats)),
                 "")
    assert fplan.les == ["0.005", "0.25", "123456.0", "+Inf"]


def test_label_values_are_escaped_and_lone_surrogates_become_u_fffd() -> None:
    key = event.new_string_key("k")
    m = stats.Int64("n", "n", "1")
    plan = Plan(entry(metric.Scalar("c", "c", keys=[key]).count_int64(m)), "")
    odd, surrogate = 'a"b\\c\nd', "\ud800\u00e9"
    m.record(event.label(None, key.of(odd)), 1)
    m.record(event.label(None, key.of(surrogate)), 1)
    text = render(plan)
    assert 'c_total{k="a\\"b\\\\c\\nd"} 1\n' in text
    text.encode("utf-8")  # no lone surrogate is left to break the scrape
    for openmetrics in (False, True):
        family = parsed(render(plan, openmetrics), openmetrics)["c"]
        assert sorted(s.labels["k"] for s in family.samples) == [odd, "\ufffd\u00e9"]


def test_help_text_is_escaped_as_each_format_says() -> None:
    m = stats.Int64("n", "n", "1")
    doc = 'say "hi"\\now\nnext line'
    plan = Plan(entry(metric.Scalar("g", doc).latest_int64(m)), "")
    assert plan.header_text == '# HELP g say "hi"\\\\now\\nnext line\n# TYPE g gauge\n'
    assert plan.header_om == '# HELP g say \\"hi\\"\\\\now\\nnext line\n# TYPE g gauge\n'
    m.record(None, 3)
    for openmetrics in (False, True):
        family = parsed(render(plan, openmetrics), openmetrics)["g"]
        assert family.documentation == doc
        assert [s.value for s in family.samples] == [3]


def test_a_metric_without_rows_renders_its_headers_only() -> None:
    m = stats.Int64("n", "n", "1")
    plan = Plan(entry(metric.HistogramInt64("idle", "Idle.", [5]).record(m)), "")
    out: List[str] = []
    plan.render(out, False)
    assert out == ["# HELP idle Idle.\n# TYPE idle histogram\n"]
    family = parsed(render(plan, True), True)["idle"]
    assert (family.type, family.samples) == ("histogram", [])
    assert plan.family_metric().samples == []


def test_floats_are_written_shortest_and_integral_ones_without_a_point() -> None:
    key = event.new_string_key("k")
    m = stats.Float64("f", "f", "1")
    plan = Plan(entry(metric.Scalar("g", "g", keys=[key]).latest_float64(m)), "")
    values = {"a": 0.1 + 0.2, "b": 3.0, "c": 1e20, "d": -2.5e-07, "e": 1e14}
    for label, value in values.items():
        m.record(event.label(None, key.of(label)), value)
    text = render(plan)
    for label, written in [("a", "0.30000000000000004"), ("b", "3"), ("c", "1e+20"),
                           ("d", "-2.5e-07"), ("e", "100000000000000")]:
        assert 'g{k="%s"} %s\n' % (label, written) in text
    family = parsed(text)["g"]
    assert {s.labels["k"]: s.value for s in family.samples} == values


def test_a_histogram_with_a_negative_sum_has_buckets_only_in_openmetrics() -> None:
    m = stats.Int64("n", "n", "1")
    plan = Plan(entry(metric.HistogramInt64("debt", "d", [0, 10]).record(m)), "")
    for value in (-5, -1, 3):
        m.record(None, value)
    assert not plan.negative  # the first bound is 0: only the sum is negative
    buckets: Samples = {("debt_bucket", (("le", le),)): n
                        for le, n in [("0.0", 2), ("10.0", 3), ("+Inf", 3)]}
    text = by_labels(parsed(render(plan))["debt"])
    totals: Samples = {("debt_sum", ()): -3, ("debt_count", ()): 3}
    assert text == {**buckets, **totals}
    om = by_labels(parsed(render(plan, True), True)["debt"])
    assert om == buckets


def test_a_new_render_shows_new_values_and_new_rows() -> None:
    key = event.new_string_key("k")
    m = stats.Int64("n", "n", "1")
    plan = Plan(entry(metric.Scalar("s", "s", keys=[key]).sum_int64(m)), "")
    m.record(event.label(None, key.of("a")), 2)
    assert render(plan).endswith('\ns_total{k="a"} 2\n')
    m.record(event.label(None, key.of("a")), 5)
    m.record(event.label(None, key.of("b")), 1)
    assert render(plan).endswith('\ns_total{k="a"} 7\ns_total{k="b"} 1\n')


def test_family_metric_yields_every_histogram_series_and_negative_counters_as_they_are(
        ) -> None:
    key = event.new_string_key("k")
    m = stats.Int64("n", "n", "1")
    hist = Plan(entry(metric.HistogramInt64("t", "t", [-10, 0], keys=[key]).record(m)), "")
    total = Plan(entry(metric.Scalar("bal", "b", keys=[key]).sum_int64(m)), "")
    m.record(event.label(None, key.of("x")), -20)
    m.record(event.label(None, key.of("x")), 4)
    m.record(None, -1)  # k has no value: the label is ""
    family = hist.family_metric()
    assert (family.name, family.type) == ("t", "histogram")
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("t_bucket", {"k": "x", "le": "-10.0"}, 1), ("t_bucket", {"k": "x", "le": "0.0"}, 1),
        ("t_bucket", {"k": "x", "le": "+Inf"}, 2), ("t_sum", {"k": "x"}, -16),
        ("t_count", {"k": "x"}, 2),
        ("t_bucket", {"k": "", "le": "-10.0"}, 0), ("t_bucket", {"k": "", "le": "0.0"}, 1),
        ("t_bucket", {"k": "", "le": "+Inf"}, 1), ("t_sum", {"k": ""}, -1),
        ("t_count", {"k": ""}, 1)]
    counter = total.family_metric()
    assert (counter.name, counter.type) == ("bal", "counter")
    assert [(s.name, s.labels, s.value) for s in counter.samples] == [
        ("bal_total", {"k": "x"}, -16), ("bal_total", {"k": ""}, -1)]
