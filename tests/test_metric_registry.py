"""gotools_compat.metric._registry: registries opened, current and closed, directly (no sockets)."""

from __future__ import annotations

from typing import Any, List

import pytest

from gotools_compat import event, metric, stats
from gotools_compat.metric import _registry
from gotools_compat.testing import fresh_registry

# Each test starts in a registry of its own, so what it opens sits on top of that.
pytestmark = pytest.mark.usefixtures("registry")


def names() -> List[str]:
    return [entry.name for entry in metric.registered()]


def collected() -> List[Any]:
    return [(data.handle(), list(data.rows)) for data in metric.collect()]


def summed(name: str, measure_name: str = "m") -> stats.Int64:
    measure = stats.Int64(measure_name, "", "1")
    metric.Scalar(name).sum_int64(measure)
    return measure


def test_a_fresh_registry_is_current_and_empty() -> None:
    summed("outer_sum").record(None, 4)
    token = _registry.open_fresh()
    try:
        assert isinstance(token, _registry.Registry)
        with _registry.lock:
            assert _registry.current() is token.metrics
            assert _registry.current() == {}
        assert names() == [] and collected() == []
    finally:
        _registry.close(token)
    assert collected() == [("outer_sum", [4])]


def test_metrics_defined_while_open_are_the_tokens_in_definition_order() -> None:
    token = _registry.open_fresh()
    try:
        summed("b_sum", "mb")
        summed("a_sum", "ma").record(None, 2)
        assert list(token.metrics) == ["b_sum", "a_sum"] == names()
        assert [entry.name for entry in token.metrics.values()] == ["b_sum", "a_sum"]
        assert collected() == [("b_sum", []), ("a_sum", [2])]
    finally:
        _registry.close(token)
    assert names() == []


def test_closing_a_registry_twice_or_one_never_opened_is_an_error() -> None:
    token = _registry.open_fresh()
    _registry.close(token)
    with pytest.raises(RuntimeError, match="already closed"):
        _registry.close(token)
    with pytest.raises(RuntimeError, match="already closed"):
        _registry.close(_registry.Registry())


def test_closing_one_that_is_not_current_leaves_the_newest_current() -> None:
    summed("base_sum")
    first = _registry.open_fresh()
    summed("first_sum")
    second = _registry.open_fresh()
    summed("second_sum")
    _registry.close(first)
    with _registry.lock:
        assert _registry.current() is second.metrics
    assert names() == ["second_sum"]
    _registry.close(second)
    assert names() == ["base_sum"]


def test_the_metrics_of_a_registry_closed_out_of_order_stop_being_fed() -> None:
    outer = summed("outer_sum")
    first = _registry.open_fresh()
    metric.Scalar("first_count").count_int64(outer)
    second = _registry.open_fresh()
    outer.record(None, 3)
    [entry] = first.metrics.values()
    _registry.close(first)
    outer.record(None, 5)
    assert list(entry.rows()) == [((), 1)]  # the first record only
    _registry.close(second)
    assert collected() == [("outer_sum", [8])]  # outside, every record counted


def test_the_same_definition_inside_is_a_second_metric_with_its_own_rows() -> None:
    outer = summed("total")
    outer.record(None, 1)
    [outside] = metric.registered()
    with fresh_registry():
        metric.Scalar("total").sum_int64(outer)  # same name, measure and definition
        [inside] = metric.registered()
        assert inside is not outside
        outer.record(None, 10)
        assert collected() == [("total", [10])]
    assert metric.registered() == [outside]
    assert collected() == [("total", [11])]


def test_measure_names_made_inside_are_forgotten_after() -> None:
    outer = stats.Int64("latency", "outer", "ms")
    with fresh_registry():
        inner = stats.Float64("latency", "inner", "s")  # free again: no ValueError
        assert stats.Float64("latency", "inner", "s") is inner
        only_inside = stats.Int64("only_inside", "", "1")
    assert stats.Int64("latency", "outer", "ms") is outer
    with pytest.raises(ValueError, match="already exists"):
        stats.Float64("latency", "inner", "s")
    assert stats.Int64("only_inside", "", "1") is not only_inside


def test_fresh_registry_closes_its_registry_when_the_block_raises() -> None:
    summed("kept_sum")
    with pytest.raises(LookupError, match="inside"):
        with fresh_registry():
            summed("lost_sum", "lost")
            raise LookupError("inside")
    assert names() == ["kept_sum"]
    with fresh_registry():
        assert names() == []
        summed("lost_sum", "lost")  # the name is free in the next one too
        assert names() == ["lost_sum"]


def test_opening_and_closing_leave_the_lock_free() -> None:
    token = _registry.open_fresh()
    assert _registry.lock.acquire(blocking=False)
    _registry.lock.release()
    _registry.close(token)
    assert _registry.lock.acquire(blocking=False)
    _registry.lock.release()


def test_subscriber_is_the_recorders_keyed_or_keyless_record_for_the_metrics_life() -> None:
    route = event.new_string_key("route")
    measure = stats.Int64("hits", "", "1")
    metric.Scalar("plain_sum").sum_int64(measure)
    metric.Scalar("by_route_sum", keys=[route]).sum_int64(measure)
    plain, by_route = metric.registered()
    assert _registry.subscriber(plain.recorder) == plain.recorder.record_nokey
    assert _registry.subscriber(by_route.recorder) == by_route.recorder.record
    assert _registry.subscriber(plain.recorder) == _registry.subscriber(plain.recorder)
    # What the subscriber is handed lands in the metric's rows.
    _registry.subscriber(by_route.recorder)(event.label(None, route.of("/a")), 6)
    _registry.subscriber(plain.recorder)(None, 2)
    assert list(by_route.rows()) == [(("/a",), 6)]
    assert list(plain.rows()) == [((), 2)]
