"""gotools_compat._oc.histogram: histogram rows, their bucket rule and their folds, directly.

No metric, no view: rows are made from their aggregation with a lock of their
own and fed values as the record path feeds them (``row.add``).
"""

from __future__ import annotations

import copy
import math
import threading
from typing import List, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotools_compat._oc import aggregation as agg
from gotools_compat._oc import histogram as hist


def histogram(bounds: Sequence[float], is_int: bool = False) -> hist.HistogramRow:
    row = agg.Distribution(bounds, is_int).new_row(threading.Lock(), ("a",), ("a",))
    assert isinstance(row, hist.HistogramRow)
    return row


def fill(row: agg.Row, values: Sequence[float]) -> None:
    for v in values:
        row.add(v)


def reference_counts(bounds: Sequence[float], values: Sequence[float]) -> List[int]:
    """Per-bucket counts by the rule as written: the first bound >= value, else overflow."""
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
    return counts


# The bucket rule, folds, exact statistics, points, reset and copies.

def test_a_value_equal_to_a_bound_counts_in_that_bounds_bucket_in_a_small_fold() -> None:
    row = histogram([0, 10])
    fill(row, [0, 10, 10.000001])  # fewer than 8: the fold bisects value by value
    assert row.snapshot()[0] == [1, 1, 1]


def test_a_value_equal_to_a_bound_counts_in_that_bounds_bucket_in_a_sorted_fold() -> None:
    row = histogram([0, 10])
    fill(row, [0, 0, 10, 10, 10, 10.5, -1, 11, 0.5])  # 8 or more: the fold sorts the batch
    assert row.snapshot()[0] == [3, 4, 2]


def test_zero_and_negative_bounds_are_kept_as_declared() -> None:
    options = agg.Distribution((-5, 0, 2.5), is_int=False)
    assert options.bounds == (-5, 0, 2.5)
    assert options.bucket_options.type_.bounds == [-5.0, 0.0, 2.5]
    row = histogram((-5, 0, 2.5))
    fill(row, [-7, -5, -4.9, 0, 1, 3])
    assert row.snapshot()[0] == [2, 2, 1, 1]


def test_a_histogram_without_bounds_counts_everything_in_its_one_bucket() -> None:
    row = histogram(())
    fill(row, [-1.0, 0.0, 2.5])
    assert row.snapshot()[:4] == ([3], 1.5, -1.0, 2.5)


def test_each_value_is_counted_once_when_threads_record_and_read_together() -> None:
    row = histogram([1, 2, 3], is_int=True)
    per_thread = 20_000

    def record(offset: int) -> None:
        for i in range(per_thread):
            row.add((i + offset) % 5)

    threads = [threading.Thread(target=record, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        row.snapshot()  # reads fold concurrently with the adds
    for t in threads:
        t.join()
    counts, total, lo, hi, _ = row.snapshot()
    assert counts == [4 * per_thread * 2 // 5, 4 * per_thread // 5, 4 * per_thread // 5,
                      4 * per_thread // 5]
    assert (total, lo, hi) == (4 * per_thread * 2, 0, 4)


_bounds = st.lists(st.integers(-50, 50), max_size=6, unique=True).map(sorted)


@settings(max_examples=60, deadline=None)
@given(bounds=_bounds, values=st.lists(st.integers(-60, 60), min_size=1, max_size=300))
def test_int_histogram_counts_sum_min_max_and_deviation_match_a_reference(
        bounds: List[int], values: List[int]) -> None:
    row = histogram(bounds, is_int=True)
    fill(row, values)
    counts, total, lo, hi, m2 = row.snapshot()
    assert counts == reference_counts(bounds, values)
    assert (total, lo, hi) == (sum(values), min(values), max(values))
    assert type(total) is int
    mean = sum(values) / len(values)
    assert m2 == pytest.approx(sum((v - mean) ** 2 for v in values), rel=1e-9, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(bounds=st.lists(st.floats(-1e3, 1e3), max_size=6, unique=True).map(sorted),
       values=st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=300))
def test_float_histogram_counts_sum_min_max_and_deviation_match_a_reference(
        bounds: List[float], values: List[float]) -> None:
    row = histogram(bounds)
    fill(row, values)
    counts, total, lo, hi, m2 = row.snapshot()
    assert counts == reference_counts(bounds, values)
    assert (lo, hi) == (min(values), max(values))
    assert total == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-9)
    mean = math.fsum(values) / len(values)
    assert m2 == pytest.approx(math.fsum((v - mean) ** 2 for v in values), rel=1e-6, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 1000), min_size=1, max_size=20),
                        min_size=1, max_size=10))
def test_merging_folds_of_any_sizes_gives_the_deviation_of_all_values(
        batches: List[List[int]]) -> None:
    row = histogram([500], is_int=True)
    for batch in batches:
        fill(row, batch)
        row.drain()  # one fold per batch, small (< 8) and sorted ones mixed
    values = [v for batch in batches for v in batch]
    mean = sum(values) / len(values)
    expected = sum((v - mean) ** 2 for v in values)
    assert row.snapshot()[4] == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_int_histogram_sum_min_and_max_are_exact_past_2_to_the_53() -> None:
    big = 2 ** 53 + 1  # not a double
    row = histogram([0], is_int=True)
    fill(row, [big] * 10 + [big + 2])
    _, total, lo, hi, _ = row.snapshot()
    assert (total, lo, hi) == (11 * big + 2, big, big + 2)
    assert type(total) is int


def test_a_histogram_point_carries_counts_bounds_sum_min_max_and_deviation() -> None:
    row = histogram([1, 2])
    fill(row, [0.5, 1.5, 1.5, 5.0])
    dist = row.to_point("ts").value
    assert isinstance(dist, hist.CompatDistribution)
    assert [b.count for b in dist.buckets] == [1, 2, 1]
    assert dist.bucket_options.type_.bounds == [1.0, 2.0]
    assert (dist.count, dist.sum, dist.min, dist.max) == (4, 8.5, 0.5, 5.0)
    assert dist.sum_of_squared_deviation == pytest.approx(11.6875)


def test_histogram_points_share_small_bucket_objects_and_make_large_ones() -> None:
    row = histogram([1])
    fill(row, [0.0] * (hist.SMALL_INTS + 3) + [2.0])
    first, second = row.to_point(None).value.buckets, row.to_point(None).value.buckets
    assert [b.count for b in first] == [hist.SMALL_INTS + 3, 1]
    assert first[1] is second[1]
    assert first[0] is not second[0]


def test_histogram_reset_zeroes_counts_min_max_and_keeps_an_int_sum_an_int() -> None:
    row = histogram([1], is_int=True)
    fill(row, [0, 5])
    row.drain()
    row.add(3)
    row.reset()
    assert row.snapshot() == ([0, 0], 0, None, None, 0.0)
    assert type(row.snapshot()[1]) is int
    fill(row, [2, 2])
    assert row.snapshot() == ([0, 2], 4, 2, 2, 0.0)


def test_a_deep_copy_is_a_folded_snapshot_that_shares_nothing() -> None:
    row = histogram([1], is_int=True)
    fill(row, [0, 5, 7])
    clone = copy.deepcopy(row)
    row.add(0)
    assert clone.buf == []
    assert clone.lock is not row.lock
    assert (clone.labels, clone.tags) == (("a",), ("a",))
    assert clone.snapshot() == ([1, 2], 12, 0, 7, pytest.approx(26.0))
    assert row.snapshot()[0] == [2, 2]


def test_the_small_and_sorted_folds_agree_on_every_value_at_and_around_the_bounds() -> None:
    bounds = (-1.0, 0.0, 0.5, 10.0)
    values = [b + d for b in bounds for d in (-1e-9, 0.0, 1e-9)]
    small, sorted_ = histogram(bounds), histogram(bounds)
    for v in values:  # one value per fold
        small.add(v)
        small.drain()
    fill(sorted_, values)  # one fold of all twelve
    assert small.snapshot()[0] == sorted_.snapshot()[0] == reference_counts(bounds, values)
    assert small.snapshot()[0] == [2, 3, 3, 3, 1]
