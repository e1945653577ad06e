"""metric/snapshot.py: what exporters read (Kind, registered(), rows, histogram rows)."""

from __future__ import annotations

import logging
import typing
from typing import Any, Iterator, List

import pytest
from opencensus.metrics.export.metric_descriptor import MetricDescriptorType as T

from gotools_compat import event, metric, stats
from gotools_compat.metric import snapshot
from tests.helpers import entry, oc_metric

# Each test defines its metrics in a fresh registry (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("registry")

SCALARS = [
    ("count_int64", stats.Int64, metric.Kind.COUNT_INT64),
    ("sum_int64", stats.Int64, metric.Kind.SUM_INT64),
    ("latest_int64", stats.Int64, metric.Kind.LATEST_INT64),
    ("count_float64", stats.Float64, metric.Kind.COUNT_FLOAT64),
    ("sum_float64", stats.Float64, metric.Kind.SUM_FLOAT64),
    ("latest_float64", stats.Float64, metric.Kind.LATEST_FLOAT64),
]


def _ctx(key: event.Key[str], value: str) -> Any:
    return event.label(event.background(), key.of(value))


@pytest.mark.parametrize("method, measure_type, kind", SCALARS)
def test_each_scalar_constructor_registers_its_kind(method: str, measure_type: Any,
                                                    kind: metric.Kind) -> None:
    name = getattr(metric.Scalar("s"), method)(measure_type("m"))
    assert entry(name).kind is kind


def test_each_histogram_constructor_registers_its_kind() -> None:
    hi = metric.HistogramInt64("hi", buckets=[1]).record(stats.Int64("mi"))
    hf = metric.HistogramFloat64("hf", buckets=[1]).record(stats.Float64("mf"))
    assert (entry(hi).kind, entry(hf).kind) == (metric.Kind.HISTOGRAM_INT64,
                                                 metric.Kind.HISTOGRAM_FLOAT64)


def test_kind_properties_say_gauge_histogram_and_int() -> None:
    table = {kind.name: (kind.is_gauge, kind.is_histogram, kind.is_int) for kind in metric.Kind}
    assert table == {
        "COUNT_INT64": (False, False, True),
        "SUM_INT64": (False, False, True),
        "LATEST_INT64": (True, False, True),
        "COUNT_FLOAT64": (False, False, True),
        "SUM_FLOAT64": (False, False, False),
        "LATEST_FLOAT64": (True, False, False),
        "HISTOGRAM_INT64": (False, True, True),
        "HISTOGRAM_FLOAT64": (False, True, False),
    }


def test_a_kind_is_the_string_it_used_to_be() -> None:
    kind = metric.Kind.LATEST_FLOAT64
    assert kind == "latest_float64" and str(kind) == "latest_float64"
    assert "%s" % kind == "latest_float64"
    assert metric.Kind("sum_int64") is metric.Kind.SUM_INT64


@pytest.mark.parametrize("method, measure_type, kind", SCALARS)
def test_the_opencensus_type_is_the_views(method: str, measure_type: Any,
                                          kind: metric.Kind) -> None:
    m = measure_type("m")
    name = getattr(metric.Scalar("s"), method)(m)
    m.record(None, 1)
    expected = {"count_int64": T.CUMULATIVE_INT64, "sum_int64": T.CUMULATIVE_INT64,
                "latest_int64": T.GAUGE_INT64, "count_float64": T.CUMULATIVE_INT64,
                "sum_float64": T.CUMULATIVE_DOUBLE, "latest_float64": T.GAUGE_DOUBLE}[kind]
    assert entry(name).opencensus_type == expected == oc_metric(name).descriptor.type


def test_a_histogram_is_a_cumulative_distribution() -> None:
    m = stats.Int64("m")
    name = metric.HistogramInt64("h", buckets=[1]).record(m)
    m.record(None, 1)
    assert entry(name).opencensus_type == T.CUMULATIVE_DISTRIBUTION == oc_metric(
        name).descriptor.type


def test_registered_lists_the_definition() -> None:
    key = event.new_string_key("route")
    m = stats.Float64("m", "latency", "ms")
    h = metric.HistogramFloat64("h", "request latency", [0, 2.5, 10], keys=[key],
                                max_rows=50)
    name = h.record(m)
    e = entry(name)
    assert (e.name, e.description, e.unit, e.keys, e.buckets, e.max_rows) == (
        name, "request latency", "ms", (key,), (0.0, 2.5, 10.0), 50)
    assert e.info is h and e.measure is m and e.is_gauge is False
    assert metric.registered().index(e) == len(metric.registered()) - 1  # definition order


def test_a_scalar_has_no_buckets_and_the_default_row_limit() -> None:
    name = metric.Scalar("c", "calls").count_int64(stats.Int64("m", "", "1"))
    e = entry(name)
    assert (e.buckets, e.max_rows, e.keys, e.unit) == ((), metric.MAX_ROWS, (), "1")


def test_registered_entries_are_read_only() -> None:
    e = entry(metric.Scalar("c").count_int64(stats.Int64("m")))
    with pytest.raises(AttributeError):
        e.name = "other"
    with pytest.raises(AttributeError):
        del e.kind
    assert e.name != "other"


def test_rows_are_label_value_pairs_in_creation_order() -> None:
    key = event.new_string_key("k")
    m = stats.Int64("m")
    name = metric.Scalar("s", keys=[key]).sum_int64(m)
    m.record(_ctx(key, "b"), 2)
    m.record(None, 7)  # no value for the key: label None
    m.record(_ctx(key, "a"), 3)
    m.record(_ctx(key, "b"), 5)
    assert list(entry(name).rows()) == [(("b",), 7), ((None,), 7), (("a",), 3)]
    assert entry(name).row_count() == 3


def test_rows_of_a_metric_without_keys_have_empty_labels() -> None:
    m = stats.Float64("m")
    name = metric.Scalar("g").latest_float64(m)
    assert list(entry(name).rows()) == []
    m.record(None, 1.5)
    m.record(None, -0.25)
    assert list(entry(name).rows()) == [((), -0.25)]


def test_rows_are_read_when_iterated_not_when_asked_for() -> None:
    m = stats.Int64("m")
    name = metric.Scalar("c").count_int64(m)
    m.record(None, 1)
    rows = entry(name).rows()
    m.record(None, 1)
    assert list(rows) == [((), 2)]


def test_values_are_exact_and_saturated_only_when_asked(
        caplog: pytest.LogCaptureFixture) -> None:
    m = stats.Int64("m")
    name = metric.Scalar("s").sum_int64(m)
    for _ in range(3):
        m.record(None, 2 ** 63 - 1)
    e = entry(name)
    assert list(e.rows()) == [((), 3 * (2 ** 63 - 1))]
    with caplog.at_level(logging.WARNING):
        assert list(e.rows(saturate=True)) == [((), 2 ** 63 - 1)]
        assert list(e.rows(saturate=True)) == [((), 2 ** 63 - 1)]
    assert len([r for r in caplog.records if "past the int64 range" in r.message]) == 1


def test_values_keep_their_type() -> None:
    f = stats.Float64("m")
    count = metric.Scalar("c").count_float64(f)
    total = metric.Scalar("s").sum_float64(f)
    f.record(None, 2.0)
    [(_, n)] = entry(count).rows()
    [(_, s)] = entry(total).rows()
    assert (type(n), n, type(s), s) == (int, 1, float, 2.0)


def test_the_overflow_row_has_every_label_overflow() -> None:
    a, b = event.new_string_key("a"), event.new_string_key("b")
    m = stats.Int64("m")
    name = metric.Scalar("c", keys=[a, b], max_rows=2).count_int64(m)
    for i in range(4):
        m.record(event.label(event.background(), a.of(str(i)), b.of("x")), 1)
    assert list(entry(name).rows()) == [
        (("0", "x"), 1), (("1", "x"), 1), ((metric.OVERFLOW, metric.OVERFLOW), 2)]
    assert metric.OVERFLOW == "__overflow__"


def test_histogram_rows_carry_counts_sum_min_max_and_squared_deviation() -> None:
    key = event.new_string_key("k")
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", buckets=[1, 10], keys=[key]).record(m)
    for v in (0.5, 1.0, 4.0, 30.0):
        m.record(_ctx(key, "x"), v)
    [(labels, (counts, total, lo, hi, ssd))] = entry(name).histogram_rows()
    assert (labels, counts, total, lo, hi) == (("x",), [2, 1, 1], 35.5, 0.5, 30.0)
    mean = 35.5 / 4
    assert ssd == pytest.approx(sum((v - mean) ** 2 for v in (0.5, 1.0, 4.0, 30.0)))


def test_int_histogram_rows_have_int_sums() -> None:
    m = stats.Int64("m")
    name = metric.HistogramInt64("h", buckets=[0, 5]).record(m)
    for v in (-3, 0, 7):
        m.record(None, v)
    [((), (counts, total, lo, hi, _))] = entry(name).histogram_rows()
    assert (counts, total, type(total), lo, hi) == ([2, 0, 1], 4, int, -3, 7)


def test_reading_a_metric_with_the_other_method_is_a_type_error() -> None:
    h = entry(metric.HistogramInt64("h", buckets=[1]).record(stats.Int64("mh")))
    c = entry(metric.Scalar("c").count_int64(stats.Int64("mc")))
    with pytest.raises(TypeError, match="histogram_rows"):
        h.rows()
    with pytest.raises(TypeError, match="rows()"):
        c.histogram_rows()


def test_start_time_is_the_views_iso_text() -> None:
    m = stats.Int64("m")
    name = metric.Scalar("c").count_int64(m)
    m.record(None, 1)
    start = entry(name).start_time
    assert start.endswith("Z") and start[10] == "T" and len(start) == 27
    assert oc_metric(name).time_series[0].start_timestamp == start


def test_the_snapshot_api_is_typed() -> None:
    hints = typing.get_type_hints(metric.Registered.rows, vars(snapshot))
    assert hints["return"] == Iterator[metric.RowSnapshot]
    hints = typing.get_type_hints(metric.Registered.histogram_rows, vars(snapshot))
    assert hints["return"] == Iterator[metric.HistogramRowSnapshot]
    assert typing.get_type_hints(metric.registered)["return"] == List[metric.Registered]
    assert typing.get_type_hints(metric.Registered)["kind"] is metric.Kind


def test_each_registered_makes_one_object_per_metric_and_forgets_gone_ones() -> None:
    from gotools_compat.testing import fresh_registry

    m = stats.Float64("each_m")
    metric.Scalar("each_a").count_float64(m)
    metric.Scalar("each_b").sum_float64(m)
    made: List[str] = []

    def make(registered: metric.Registered) -> str:
        made.append(registered.name)
        return "plan of " + registered.name

    cache: dict = {}
    assert metric.each_registered(cache, make) == ["plan of each_a", "plan of each_b"]
    assert metric.each_registered(cache, make) == ["plan of each_a", "plan of each_b"]
    assert made == ["each_a", "each_b"]  # once each
    with fresh_registry():
        metric.Scalar("each_c").count_float64(stats.Float64("each_m2"))
        assert metric.each_registered(cache, make) == ["plan of each_c"]
        assert sorted(e.name for e in cache) == ["each_c"]  # the others' dropped
