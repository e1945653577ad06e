"""gotools_compat.export._prometheus_views: opencensus Metrics as prometheus_client families,
directly (no sockets)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

# gotools_compat first: it makes opencensus's clock warning-free (E13).
import gotools_compat.metric  # noqa: F401  isort: skip
from opencensus.metrics.export import metric as oc_metric
from opencensus.metrics.export import metric_descriptor, point, time_series, value
from opencensus.metrics.label_key import LabelKey
from opencensus.metrics.label_value import LabelValue
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from gotools_compat.export._prometheus_views import Families, family_claims, view_family

Type = metric_descriptor.MetricDescriptorType
Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def make(name: str, kind: int, keys: Sequence[str],
         series: Sequence[Tuple[Sequence[Optional[str]], Sequence[Any]]],
         description: str = "") -> Any:
    """An opencensus Metric: ``series`` is (label values, point values) per time series."""
    descriptor = metric_descriptor.MetricDescriptor(name, description, "1", kind,
                                                    [LabelKey(k, "") for k in keys])
    return oc_metric.Metric(descriptor, [
        time_series.TimeSeries([LabelValue(v) for v in labels],
                               [point.Point(v, None) for v in values], None)
        for labels, values in series])


def dist(bounds: Sequence[float], counts: Sequence[int], total: float) -> Any:
    return value.ValueDistribution(sum(counts), total, 0.0,
                                   value.BucketOptions(value.Explicit(list(bounds))),
                                   [value.Bucket(c) for c in counts])


def family(oc: Any, namespace: str = "") -> Metric:
    found = view_family(oc, namespace)
    assert found is not None
    return found


def exposition(families: List[Metric], openmetrics: bool) -> Dict[str, Any]:
    """The families as prometheus_client writes them, read back by its parser."""
    write: Any = om_latest if openmetrics else generate_latest
    parse: Any = om_parse if openmetrics else text_parse
    return {f.name: f for f in parse(write(Families(families)).decode())}


def samples(fam: Any) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}


def test_a_gauge_view_is_a_gauge_with_namespaced_name_and_valid_label_names() -> None:
    oc = make("queue.depth", Type.GAUGE_INT64, ["le", "http.method", "__x"],
              [(["a", "GET", "z"], [value.ValueLong(5)])], "Items waiting.")
    fam = family(oc, "app-1")
    assert isinstance(fam, GaugeMetricFamily)
    assert (fam.name, fam.type, fam.documentation) == ("app_1_queue_depth", "gauge",
                                                       "Items waiting.")
    labels = {"key_le": "a", "http_method": "GET", "key___x": "z"}
    assert [(s.name, s.labels, s.value) for s in fam.samples] == [
        ("app_1_queue_depth", labels, 5)]
    for openmetrics in (False, True):
        read = exposition([fam], openmetrics)["app_1_queue_depth"]
        assert (read.type, read.documentation) == ("gauge", "Items waiting.")
        assert samples(read) == {("app_1_queue_depth", tuple(sorted(labels.items()))): 5}


def test_a_cumulative_view_is_a_counter_and_a_total_name_is_not_suffixed_twice() -> None:
    double = family(make("bytes", Type.CUMULATIVE_DOUBLE, [], [([], [value.ValueDouble(2.5)])]))
    longs = family(make("reqs_total", Type.CUMULATIVE_INT64, [],
                        [([], [value.ValueLong(3)])]))
    assert isinstance(double, CounterMetricFamily) and isinstance(longs, CounterMetricFamily)
    assert (double.name, [s.name for s in double.samples]) == ("bytes", ["bytes_total"])
    assert (longs.name, [s.name for s in longs.samples]) == ("reqs", ["reqs_total"])
    text = generate_latest(Families([double, longs])).decode()
    assert "# TYPE bytes_total counter\nbytes_total 2.5\n" in text
    assert "# TYPE reqs_total counter\nreqs_total 3.0\n" in text
    om = exposition([double, longs], True)
    assert (om["reqs"].type, samples(om["reqs"])) == ("counter", {("reqs_total", ()): 3})
    assert samples(om["bytes"]) == {("bytes_total", ()): 2.5}


def test_label_values_are_escaped_and_a_missing_value_is_the_empty_label() -> None:
    odd = 'a "quoted"\\ path\nnext'
    oc = make("hits", Type.CUMULATIVE_INT64, ["route", "code"],
              [([odd, None], [value.ValueLong(4)])])
    fam = family(oc)
    assert fam.samples[0].labels == {"route": odd, "code": ""}
    text = generate_latest(Families([fam])).decode()
    assert 'hits_total{code="",route="a \\"quoted\\"\\\\ path\\nnext"} 4.0\n' in text
    for openmetrics in (False, True):
        read = exposition([fam], openmetrics)["hits"]
        assert samples(read) == {("hits_total", (("code", ""), ("route", odd))): 4}


def test_only_the_latest_point_of_a_series_is_shown() -> None:
    oc = make("n", Type.GAUGE_DOUBLE, [], [([], [value.ValueDouble(1.5), value.ValueDouble(-7.0)])])
    assert [(s.name, s.value) for s in family(oc).samples] == [("n", -7.0)]


def test_series_missing_or_empty_are_summed_when_cumulative_and_the_later_when_gauge() -> None:
    series: List[Tuple[List[Optional[str]], List[Any]]] = [
        (["x", None], [value.ValueLong(4)]), (["x", ""], [value.ValueLong(10)]),
        (["y", None], [value.ValueLong(1)])]
    counter = family(make("c", Type.CUMULATIVE_INT64, ["a", "b"], series))
    gauge = family(make("g", Type.GAUGE_INT64, ["a", "b"], series))
    assert [(s.labels, s.value) for s in counter.samples] == [
        ({"a": "x", "b": ""}, 14), ({"a": "y", "b": ""}, 1)]
    assert [(s.labels, s.value) for s in gauge.samples] == [
        ({"a": "x", "b": ""}, 10), ({"a": "y", "b": ""}, 1)]
    read = exposition([counter, gauge], False)  # one series each, not two
    assert len(read["c"].samples) == len(read["g"].samples) == 2


def test_a_cumulative_distribution_has_canonical_le_cumulative_buckets_count_and_sum() -> None:
    oc = make("lat", Type.CUMULATIVE_DISTRIBUTION, ["route"],
              [(["/a"], [dist([0.005, 1, 1e6, 1048576], [1, 2, 0, 3, 4], 12.5)])], "Latency.")
    fam = family(oc, "ns")
    assert (fam.name, fam.type) == ("ns_lat", "histogram")
    route = (("route", "/a"),)
    expected: Samples = {("ns_lat_bucket", (("le", le),) + route): n for le, n in
                [("0.005", 1), ("1.0", 3), ("1e+06", 3), ("1.048576e+06", 6), ("+Inf", 10)]}
    expected.update({("ns_lat_count", route): 10, ("ns_lat_sum", route): 12.5})
    assert samples(fam) == expected
    for openmetrics in (False, True):
        read = exposition([fam], openmetrics)["ns_lat"]
        assert (read.type, read.documentation) == ("histogram", "Latency.")
        assert samples(read) == expected


def test_a_distribution_without_bounds_has_its_whole_count_in_the_inf_bucket() -> None:
    # A view made with DistributionAggregation([]): opencensus keeps no buckets.
    empty = value.ValueDistribution(3, 6.0, 2.0, value.BucketOptions(), None)
    fam = family(make("any", Type.CUMULATIVE_DISTRIBUTION, [], [([], [empty])]))
    assert samples(fam) == {("any_bucket", (("le", "+Inf"),)): 3, ("any_count", ()): 3,
                            ("any_sum", ()): 6.0}


def test_cumulative_distributions_are_added_unless_their_bounds_differ() -> None:
    same = make("d", Type.CUMULATIVE_DISTRIBUTION, ["k"],
                [([None], [dist([1.0], [2, 1], 4.0)]), ([""], [dist([1.0], [1, 0], 0.5)])])
    assert samples(family(same)) == {
        ("d_bucket", (("k", ""), ("le", "1.0"))): 3, ("d_bucket", (("k", ""), ("le", "+Inf"))): 4,
        ("d_count", (("k", ""),)): 4, ("d_sum", (("k", ""),)): 4.5}
    # Bounds that differ cannot be added: the later series is shown.
    other = make("d", Type.CUMULATIVE_DISTRIBUTION, ["k"],
                 [([None], [dist([1.0], [2, 1], 4.0)]), ([""], [dist([2.0], [1, 0], 0.5)])])
    assert samples(family(other)) == {
        ("d_bucket", (("k", ""), ("le", "2.0"))): 1, ("d_bucket", (("k", ""), ("le", "+Inf"))): 1,
        ("d_count", (("k", ""),)): 1, ("d_sum", (("k", ""),)): 0.5}


def test_a_gauge_distribution_is_a_gauge_histogram_with_gcount_and_gsum() -> None:
    oc = make("age", Type.GAUGE_DISTRIBUTION, ["q"], [(["a"], [dist([1.0, 10.0], [1, 2, 3],
                                                                      30.0)])], "Ages.")
    fam = family(oc)
    assert (fam.name, fam.type) == ("age", "gaugehistogram")
    expected = {("age_bucket", (("le", "1.0"), ("q", "a"))): 1,
                ("age_bucket", (("le", "10.0"), ("q", "a"))): 3,
                ("age_bucket", (("le", "+Inf"), ("q", "a"))): 6,
                ("age_gcount", (("q", "a"),)): 6, ("age_gsum", (("q", "a"),)): 30.0}
    assert samples(fam) == expected
    read = exposition([fam], True)["age"]
    assert read.type == "gaugehistogram" and samples(read) == expected


def test_family_claims_cover_each_types_sample_names() -> None:
    counter = family(make("c", Type.CUMULATIVE_INT64, [], [([], [value.ValueLong(1)])]), "ns")
    gauge = family(make("g", Type.GAUGE_DOUBLE, [], [([], [value.ValueDouble(1.0)])]), "ns")
    hist = family(make("h", Type.CUMULATIVE_DISTRIBUTION, [], [([], [dist([1.0], [1, 0], 1)])]),
                  "ns")
    assert family_claims(counter) == {"ns_c", "ns_c_total", "ns_c_created"}
    assert family_claims(gauge) == {"ns_g"}
    assert family_claims(hist) == {"ns_h", "ns_h_bucket", "ns_h_count", "ns_h_sum",
                                   "ns_h_created"}
    age = family(make("a", Type.GAUGE_DISTRIBUTION, [], [([], [dist([1.0], [1, 0], 1)])]),
                 "ns")
    written = {s.name for f in exposition([age], False).values() for s in f.samples}
    assert family_claims(age) == {"ns_a"} | written == {"ns_a", "ns_a_bucket", "ns_a_gcount",
                                                        "ns_a_gsum"}


def test_families_collects_the_families_it_was_given_in_order() -> None:
    first = GaugeMetricFamily("a", "", value=1)
    second = CounterMetricFamily("b", "", value=2)
    assert list(Families([first, second]).collect()) == [first, second]
    assert list(Families([]).collect()) == []
    assert generate_latest(Families([])) == b""
