"""gotools_compat._oc.rows: count, sum and latest-value rows, their buffer and folds, directly.

No metric, no view: rows are made with a lock of their own and fed values as
the record path feeds them (``row.add``).
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import List, Sequence

import pytest
from opencensus.metrics.export import value as oc_value

from gotools_compat._oc import rows


def fill(row: rows.Row, values: Sequence[float]) -> None:
    for v in values:
        row.add(v)


# Buffering and folding.

def test_values_stay_buffered_until_drain_at_and_fold_on_the_one_that_fills_it() -> None:
    row = rows.CountRow(threading.Lock(), (), ())
    assert isinstance(row, rows.CountRow)
    fill(row, [1.0] * (rows.DRAIN_AT - 1))
    assert (len(row.buf), row.count) == (rows.DRAIN_AT - 1, 0)
    row.add(1.0)
    assert (len(row.buf), row.count) == (0, rows.DRAIN_AT)


def test_a_read_folds_the_buffer_first() -> None:
    row = rows.SumRow(threading.Lock(), (), (), True)
    fill(row, [1, 2, 3])
    assert len(row.buf) == 3
    assert row.value() == 6
    assert row.buf == []


def test_a_full_buffer_is_left_for_later_while_another_thread_holds_the_lock() -> None:
    lock = threading.Lock()
    row = rows.CountRow(lock, (), ())
    with lock:
        fill(row, [1.0] * (rows.DRAIN_AT + 5))
        assert len(row.buf) == rows.DRAIN_AT + 5
    assert row.value() == rows.DRAIN_AT + 5


def test_a_buffer_at_drain_limit_waits_for_the_lock_and_folds() -> None:
    lock = threading.Lock()
    row = rows.CountRow(lock, (), ())
    lock.acquire()
    threading.Timer(0.2, lock.release).start()
    fill(row, [1.0] * (rows.DRAIN_LIMIT - 1))
    assert (len(row.buf), row.count) == (rows.DRAIN_LIMIT - 1, 0)
    row.add(1.0)  # waits for the timer's release, then folds
    assert (len(row.buf), row.count) == (0, rows.DRAIN_LIMIT)


def test_int_sum_is_exact_past_2_to_the_53() -> None:
    row = rows.SumRow(threading.Lock(), (), (), True)
    fill(row, [2 ** 53, 1, 1])
    assert row.value() == 2 ** 53 + 2
    assert row.to_point(None).value.value == 2 ** 53 + 2


def test_int_sum_past_int64_is_exact_but_saturates_on_the_wire_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    row = rows.SumRow(threading.Lock(), ("big",), ("big",), True)
    fill(row, [rows.INT64_MAX, rows.INT64_MAX])
    with caplog.at_level(logging.WARNING, logger=rows.__name__):
        assert row.value() == 2 * rows.INT64_MAX
        assert row.wire_value() == rows.INT64_MAX
        assert row.to_point(None).value.value == rows.INT64_MAX
    assert len(caplog.records) == 1
    assert "past the int64 range" in caplog.records[0].getMessage()


def test_a_negative_int_sum_past_int64_saturates_at_int64_min() -> None:
    row = rows.SumRow(threading.Lock(), (), (), True)
    fill(row, [rows.INT64_MIN, -1])
    assert (row.value(), row.wire_value()) == (rows.INT64_MIN - 1, rows.INT64_MIN)


def test_count_row_counts_values_not_their_sum() -> None:
    row = rows.CountRow(threading.Lock(), (), ())
    fill(row, [5.0, -2.0, 0.0])
    point = row.to_point(None)
    assert isinstance(point.value, oc_value.ValueLong)
    assert point.value.value == 3


def test_float_sum_row_is_a_double_point() -> None:
    row = rows.SumRow(threading.Lock(), (), (), False)
    fill(row, [0.25, 0.5])
    point = row.to_point(None)
    assert isinstance(point.value, oc_value.ValueDouble)
    assert point.value.value == 0.75


def test_last_value_row_keeps_the_last_write_without_a_buffer() -> None:
    row = rows.LastValueRow(threading.Lock(), (), (), True)
    fill(row, [3, 9, 4])
    assert (row.buf, row.value()) == ([], 4)
    assert isinstance(row.to_point(None).value, oc_value.ValueLong)


@pytest.mark.parametrize("make, values, zero", [
    (lambda: rows.CountRow(threading.Lock(), (), ()), [1.0, 2.0], 0),
    (lambda: rows.SumRow(threading.Lock(), (), (), True), [1, 2], 0),
    (lambda: rows.SumRow(threading.Lock(), (), (), False), [1.5], 0.0),
    (lambda: rows.LastValueRow(threading.Lock(), (), (), False), [1.5], 0.0),
])
def test_reset_drops_buffered_and_folded_values(make: object, values: List[float],
                                                zero: float) -> None:
    row = make()  # type: ignore[operator]
    fill(row, values)
    row.drain()
    fill(row, values)
    row.reset()
    assert row.value() == zero
    assert type(row.value()) is type(zero)


@pytest.mark.parametrize("make", [
    lambda: rows.CountRow(threading.Lock(), ("x",), ("x",)),
    lambda: rows.SumRow(threading.Lock(), ("x",), ("x",), True),
    lambda: rows.LastValueRow(threading.Lock(), ("x",), ("x",), True),
])
def test_a_deep_copy_of_a_scalar_row_keeps_its_value(make: object) -> None:
    row = make()  # type: ignore[operator]
    fill(row, [2, 3])
    clone = copy.deepcopy(row)
    row.add(10)
    assert type(clone) is type(row)
    assert clone.value() == {rows.CountRow: 2, rows.SumRow: 5, rows.LastValueRow: 3}[type(row)]
