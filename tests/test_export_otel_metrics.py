"""gotools_compat.export._otel_metrics: our metrics' rows and opencensus Metric objects as
OpenTelemetry SDK metric data, field by field, directly (no sockets)."""

from __future__ import annotations

import datetime
import types
from typing import Any, List, Optional, Sequence

import pytest

from gotools_compat import event, metric, stats  # first: E13's clock patch

from opencensus.metrics.export import metric as oc_metric
from opencensus.metrics.export import metric_descriptor as oc_descriptor
from opencensus.metrics.export import point as oc_point
from opencensus.metrics.export import summary as oc_summary
from opencensus.metrics.export import time_series as oc_series
from opencensus.metrics.export import value as oc_value
from opencensus.metrics.label_key import LabelKey
from opencensus.metrics.label_value import LabelValue
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import TagMap
from opentelemetry.sdk.metrics.export import (AggregationTemporality, Gauge, Histogram,
                                              HistogramDataPoint, Metric, NumberDataPoint, Sum)

from gotools_compat.export._otel_metrics import foreign_metrics, from_opencensus, our_metrics

pytestmark = pytest.mark.usefixtures("registry")

Type = oc_descriptor.MetricDescriptorType
UTC = datetime.timezone.utc
NOW = 1_700_000_000_123_456_789  # the collection time passed in


def ns(dt: datetime.datetime) -> int:
    """Nanoseconds since the epoch, by integer arithmetic (a naive datetime is UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    epoch = datetime.datetime(1970, 1, 1, tzinfo=UTC)
    return (dt - epoch) // datetime.timedelta(microseconds=1) * 1000


def iso_ns(text: str) -> int:
    """Nanoseconds of opencensus's ``%Y-%m-%dT%H:%M:%S.%fZ`` text."""
    return ns(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ"))


def start_of(name: str) -> int:
    (entry,) = [e for e in metric.registered() if e.name == name]
    return iso_ns(entry.start_time)


def only(metrics: List[Metric], name: str) -> Metric:
    (found,) = [m for m in metrics if m.name == name]
    return found


def oc(kind: int, keys: Sequence[str], series: List[Any], name: str = "oc_x",
       description: Optional[str] = "about x", unit: Optional[str] = "ms") -> Any:
    descriptor = oc_descriptor.MetricDescriptor(name, description, unit, kind,
                                                [LabelKey(k, "") for k in keys])
    return oc_metric.Metric(descriptor, series)


def distribution(bounds: List[float], counts: List[int], total: float) -> Any:
    return oc_value.ValueDistribution(
        count=sum(counts), sum_=total, sum_of_squared_deviation=1.0,
        bucket_options=oc_value.BucketOptions(oc_value.Explicit(bounds)),
        buckets=[oc_value.Bucket(c) for c in counts])


# Our metrics (our_metrics).

def test_metrics_without_rows_are_left_out_and_the_rest_keep_definition_order() -> None:
    m = stats.Int64("om_order_m", "", "1")
    names = [metric.Scalar("om_z").count_int64(m), metric.Scalar("om_empty").count_int64(
        stats.Int64("om_unused_m", "", "1")), metric.Scalar("om_a").sum_int64(m)]
    assert our_metrics(NOW) == []
    m.record(None, 4)
    assert [x.name for x in our_metrics(NOW)] == [names[0], names[2]]


def test_a_count_is_a_monotonic_cumulative_sum_field_by_field() -> None:
    method = event.new_string_key("method")
    m = stats.Int64("om_count_m", "bytes in", "By")
    name = metric.Scalar("om_count", "requests seen", keys=[method]).count_int64(m)
    for v in (10, 20, 30):
        m.record(event.label(None, method.of("GET")), v)
    found = only(our_metrics(NOW), name)
    assert (found.name, found.description, found.unit) == ("om_count", "requests seen", "By")
    assert isinstance(found.data, Sum)
    assert found.data.is_monotonic is True
    assert found.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (point,) = found.data.data_points
    assert isinstance(point, NumberDataPoint)
    assert point.attributes == {"method": "GET"}
    assert point.start_time_unix_nano == start_of(name)
    assert point.time_unix_nano == NOW
    assert point.value == 3 and isinstance(point.value, int)


def test_sums_keep_their_number_type_and_latest_values_are_gauges() -> None:
    mi = stats.Int64("om_i", "", "1")
    mf = stats.Float64("om_f", "", "s")
    isum = metric.Scalar("om_isum").sum_int64(mi)
    fsum = metric.Scalar("om_fsum").sum_float64(mf)
    last_i = metric.Scalar("om_last_i").latest_int64(mi)
    last_f = metric.Scalar("om_last_f").latest_float64(mf)
    for v in (5, -7):
        mi.record(None, v)
    for f in (0.25, 1.5):
        mf.record(None, f)
    got = our_metrics(NOW)
    values = {}
    for name in (isum, fsum, last_i, last_f):
        (point,) = only(got, name).data.data_points
        values[name] = (type(only(got, name).data).__name__, point.value, type(point.value))
    assert values == {isum: ("Sum", -2, int), fsum: ("Sum", 1.75, float),
                      last_i: ("Gauge", -7, int), last_f: ("Gauge", 1.5, float)}
    assert isinstance(only(got, last_f).data, Gauge)


def test_an_int64_histogram_has_float_bounds_and_per_bucket_counts() -> None:
    m = stats.Int64("om_hist_m", "", "By")
    name = metric.HistogramInt64("om_hist", "sizes", [0, 100]).record(m)
    for v in (-5, 0, 1, 100, 101, 7000):
        m.record(None, v)
    found = only(our_metrics(NOW), name)
    assert isinstance(found.data, Histogram)
    assert found.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (point,) = found.data.data_points
    assert isinstance(point, HistogramDataPoint)
    assert list(point.explicit_bounds) == [0.0, 100.0]
    assert all(type(b) is float for b in point.explicit_bounds)
    # value <= bound: -5, 0 | 1, 100 | 101, 7000
    assert list(point.bucket_counts) == [2, 2, 2]
    assert (point.count, point.sum, point.min, point.max) == (6, 7197, -5, 7000)
    assert (point.start_time_unix_nano, point.time_unix_nano) == (start_of(name), NOW)
    assert point.attributes == {}


def test_a_key_without_a_value_is_left_out_and_int_tags_are_text() -> None:
    method = event.new_string_key("method")
    code = event.new_int_key("code")
    m = stats.Int64("om_tags_m", "", "1")
    name = metric.Scalar("om_tags", keys=[method, code]).count_int64(m)
    m.record(event.label(None, method.of("PUT"), code.of(201)), 1)
    m.record(event.label(None, code.of(404)), 1)
    m.record(None, 1)
    points = only(our_metrics(NOW), name).data.data_points
    assert [p.attributes for p in points] == [{"method": "PUT", "code": "201"},
                                              {"code": "404"}, {}]


def test_rows_beyond_max_rows_share_one_row_with_the_otel_overflow_attribute() -> None:
    user = event.new_string_key("user")
    m = stats.Int64("om_ovf_m", "", "1")
    name = metric.Scalar("om_ovf", keys=[user], max_rows=2).sum_int64(m)
    for who, v in (("a", 1), ("b", 2), ("c", 4), ("d", 8), ("a", 16)):
        m.record(event.label(None, user.of(who)), v)
    points = only(our_metrics(NOW), name).data.data_points
    assert [(p.attributes, p.value) for p in points] == [
        ({"user": "a"}, 17), ({"user": "b"}, 2), ({"otel.metric.overflow": True}, 12)]


def test_an_int64_sum_below_the_int64_range_is_held_at_its_minimum() -> None:
    m = stats.Int64("om_low_m", "", "1")
    name = metric.Scalar("om_low").sum_int64(m)
    for _ in range(3):
        m.record(None, -(2 ** 62))
    (point,) = only(our_metrics(NOW), name).data.data_points
    assert point.value == -(2 ** 63)


# opencensus Metric objects (from_opencensus).

def test_a_cumulative_int64_series_times_and_labels() -> None:
    at = datetime.datetime(2024, 1, 2, 3, 4, 5, 678901)  # naive: UTC, as opencensus's are
    got = from_opencensus(oc(Type.CUMULATIVE_INT64, ["method", "code"], [
        oc_series.TimeSeries([LabelValue("GET"), LabelValue(None)],
                             [oc_point.Point(oc_value.ValueLong(5), at)],
                             "2024-01-01T00:00:00.000001Z")]), NOW)
    assert got is not None
    assert (got.name, got.description, got.unit) == ("oc_x", "about x", "ms")
    assert isinstance(got.data, Sum) and got.data.is_monotonic is True
    assert got.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
    (point,) = got.data.data_points
    assert point.attributes == {"method": "GET"}
    assert point.value == 5
    assert point.time_unix_nano == 1_704_164_645_678_901_000 == ns(at)
    assert point.start_time_unix_nano == 1_704_067_200_000_001_000


def test_a_gauge_without_times_takes_the_collection_time_for_both() -> None:
    got = from_opencensus(oc(Type.GAUGE_DOUBLE, [], [
        oc_series.TimeSeries([], [oc_point.Point(oc_value.ValueDouble(2.5), None)], None)],
        description=None, unit=None), NOW)
    assert got is not None and isinstance(got.data, Gauge)
    assert (got.description, got.unit) == ("", "")
    (point,) = got.data.data_points
    assert (point.value, point.start_time_unix_nano, point.time_unix_nano) == (2.5, NOW, NOW)


def test_a_datetime_start_in_another_zone_and_the_last_point_of_a_series() -> None:
    plus2 = datetime.timezone(datetime.timedelta(hours=2))
    start = datetime.datetime(2024, 6, 1, 12, 0, 0, 250000, tzinfo=plus2)  # 10:00:00.25 UTC
    first = datetime.datetime(2024, 6, 1, 10, 0, 1)
    last = datetime.datetime(2024, 6, 1, 10, 0, 2)
    got = from_opencensus(oc(Type.CUMULATIVE_DOUBLE, ["k"], [
        oc_series.TimeSeries([LabelValue("v")],
                             [oc_point.Point(oc_value.ValueDouble(1.0), first),
                              oc_point.Point(oc_value.ValueDouble(3.5), last)], start)]), NOW)
    assert got is not None
    (point,) = got.data.data_points
    assert point.value == 3.5 and point.time_unix_nano == ns(last)
    assert point.start_time_unix_nano == 1_717_236_000_250_000_000 == ns(start)


@pytest.mark.parametrize("kind, temporality", [
    (Type.CUMULATIVE_DISTRIBUTION, AggregationTemporality.CUMULATIVE),
    (Type.GAUGE_DISTRIBUTION, AggregationTemporality.DELTA),
])
def test_distributions_are_histograms_without_min_and_max(
        kind: int, temporality: AggregationTemporality) -> None:
    at = datetime.datetime(2024, 1, 1, 0, 0, 1)
    got = from_opencensus(oc(kind, ["route"], [
        oc_series.TimeSeries([LabelValue("/a")],
                             [oc_point.Point(distribution([1.0, 5.0], [1, 1, 2], 18.5), at)],
                             "2024-01-01T00:00:00.000000Z"),
        oc_series.TimeSeries([LabelValue("/b")],
                             [oc_point.Point(distribution([1.0, 5.0], [0, 3, 0], 6.0), at)],
                             "2024-01-01T00:00:00.000000Z")]), NOW)
    assert got is not None and isinstance(got.data, Histogram)
    assert got.data.aggregation_temporality is temporality
    a, b = got.data.data_points
    assert (a.attributes, b.attributes) == ({"route": "/a"}, {"route": "/b"})
    assert (list(a.bucket_counts), a.count, a.sum) == ([1, 1, 2], 4, 18.5)
    assert (list(b.bucket_counts), b.count, b.sum) == ([0, 3, 0], 3, 6.0)
    assert list(a.explicit_bounds) == [1.0, 5.0]
    assert (a.min, a.max) == (None, None)
    assert (a.start_time_unix_nano, a.time_unix_nano) == (1_704_067_200_000_000_000, ns(at))


def test_a_plain_distribution_view_without_bounds_keeps_its_count_in_one_bucket() -> None:
    measure = oc_measure.MeasureFloat("om_nobounds_m", "", "ms")
    oc_stats.stats.view_manager.register_view(oc_view.View(
        "om_nobounds", "", [], measure, oc_aggregation.DistributionAggregation([])))
    for v in (1.0, 2.0, 3.0):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, v)
        mmap.record(TagMap())
    (point,) = only(foreign_metrics(NOW), "om_nobounds").data.data_points
    assert (list(point.bucket_counts), list(point.explicit_bounds), point.count, point.sum) \
        == ([3], [], 3, 6.0)


def test_a_summary_is_left_out() -> None:
    # opencensus-python's MetricDescriptor refuses type SUMMARY; a stand-in has it.
    descriptor = types.SimpleNamespace(name="oc_summary", description="", unit="1",
                                       type=Type.SUMMARY, label_keys=[])
    summary = oc_summary.Summary(2, 3.0, oc_summary.Snapshot(2, 3.0))
    series = [oc_series.TimeSeries([], [oc_point.Point(summary, None)], None)]
    got = from_opencensus(types.SimpleNamespace(descriptor=descriptor, time_series=series),
                          NOW)
    assert got is None


def test_a_series_without_points_is_skipped() -> None:
    # opencensus's own classes refuse an empty series; a stand-in has one.
    descriptor = oc_descriptor.MetricDescriptor("oc_gap", "", "1", Type.GAUGE_INT64,
                                                [LabelKey("k", "")])
    series = [types.SimpleNamespace(label_values=[LabelValue("empty")], points=[],
                                    start_timestamp=None),
              oc_series.TimeSeries([LabelValue("full")],
                                   [oc_point.Point(oc_value.ValueLong(9), None)], None)]
    got = from_opencensus(types.SimpleNamespace(descriptor=descriptor, time_series=series),
                          NOW)
    assert got is not None
    assert [(p.attributes, p.value) for p in got.data.data_points] == [({"k": "full"}, 9)]


# The app's plain opencensus views (foreign_metrics).

def test_plain_views_with_data_are_converted_and_ours_are_not() -> None:
    ours = metric.Scalar("om_ours").count_int64(stats.Int64("om_ours_m", "", "1"))
    measure = oc_measure.MeasureFloat("om_plain_m", "stock", "ms")
    manager = oc_stats.stats.view_manager
    for name, agg in (("om_plain_dist", oc_aggregation.DistributionAggregation([1.0, 5.0])),
                      ("om_plain_count", oc_aggregation.CountAggregation())):
        manager.register_view(oc_view.View(name, "a stock view", ["route"], measure, agg))
    idle = oc_measure.MeasureInt("om_idle_m", "", "1")
    manager.register_view(oc_view.View("om_plain_idle", "", [], idle,
                                       oc_aggregation.CountAggregation()))
    assert foreign_metrics(NOW) == []
    tags = TagMap()
    tags.insert("route", "/r")
    for v in (0.5, 2.0, 7.0):
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_float_put(measure, v)
        mmap.record(tags)
    got = {m.name: m for m in foreign_metrics(NOW)}
    assert sorted(got) == ["om_plain_count", "om_plain_dist"] and ours not in got
    (dist,) = got["om_plain_dist"].data.data_points
    assert (dist.attributes, list(dist.bucket_counts), dist.count, dist.sum) == (
        {"route": "/r"}, [1, 1, 1], 3, 9.5)
    view_start = manager.get_view("om_plain_dist").start_time
    assert dist.start_time_unix_nano == iso_ns(view_start)
    assert dist.time_unix_nano >= dist.start_time_unix_nano
    (count,) = got["om_plain_count"].data.data_points
    assert isinstance(got["om_plain_count"].data, Sum) and count.value == 3
    assert got["om_plain_count"].description == "a stock view"
    assert got["om_plain_count"].unit == "ms"
