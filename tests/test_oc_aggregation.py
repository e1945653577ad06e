"""gotools_compat._oc.aggregation: each aggregation's opencensus type and the rows it makes."""

from __future__ import annotations

import threading

import pytest
from opencensus.metrics.export.metric_descriptor import MetricDescriptorType

from gotools_compat._oc import aggregation as agg
from gotools_compat._oc import histogram, rows


@pytest.mark.parametrize("aggregation, metric_type", [
    (agg.Count(), MetricDescriptorType.CUMULATIVE_INT64),
    (agg.Sum(True), MetricDescriptorType.CUMULATIVE_INT64),
    (agg.Sum(False), MetricDescriptorType.CUMULATIVE_DOUBLE),
    (agg.LastValue(True), MetricDescriptorType.GAUGE_INT64),
    (agg.LastValue(False), MetricDescriptorType.GAUGE_DOUBLE),
    (agg.Distribution([1], True), MetricDescriptorType.CUMULATIVE_DISTRIBUTION),
])
def test_each_aggregation_names_its_opencensus_descriptor_type(
        aggregation: agg.Aggregation, metric_type: int) -> None:
    assert aggregation.get_metric_type(None) == metric_type


@pytest.mark.parametrize("aggregation, row_type, zero", [
    (agg.Count(), rows.CountRow, 0),
    (agg.Sum(True), rows.SumRow, 0),
    (agg.Sum(False), rows.SumRow, 0.0),
    (agg.LastValue(True), rows.LastValueRow, 0),
    (agg.LastValue(False), rows.LastValueRow, 0.0),
])
def test_each_scalar_aggregation_makes_its_row_empty_with_the_labels_and_lock_given(
        aggregation: agg.Aggregation, row_type: type, zero: float) -> None:
    lock = threading.Lock()
    row = aggregation.new_row(lock, ("a",), ("t",))
    assert type(row) is row_type and (row.lock, row.labels, row.tags) == (lock, ("a",), ("t",))
    assert row.value() == zero and type(row.value()) is type(zero)  # type: ignore[union-attr]


def test_a_distribution_makes_histogram_rows_with_its_bounds_as_declared() -> None:
    distribution = agg.Distribution([-1, 0, 2.5], False)
    row = distribution.new_row(threading.Lock(), (), ())
    assert type(row) is histogram.HistogramRow and row.bounds == (-1, 0, 2.5)
    assert row.snapshot() == ([0, 0, 0, 0], 0.0, None, None, 0.0)
    assert distribution.bucket_options.type_.bounds == [-1.0, 0.0, 2.5]
