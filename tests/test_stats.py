"""Measures and the record-time contract (gotools_compat.stats)."""

from __future__ import annotations

import math
from typing import Any, List

import pytest

from gotools_compat import event, metric, stats, todo

# Each test defines its measures in a fresh registry (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("registry")


def sum_of(measure: Any) -> Any:
    if isinstance(measure, stats.Float64):
        return metric.Scalar("sum").sum_float64(measure)
    return metric.Scalar("sum").sum_int64(measure)


def values_of(name: str) -> List[Any]:
    for data in metric.collect():
        if data.handle() == name:
            return list(data.rows)  # type: ignore[arg-type]
    raise AssertionError("no metric %r" % name)


def test_a_measure_keeps_its_definition() -> None:
    m = stats.Float64("latency", "the latency", "ms")
    assert (m.description, m.unit) == ("the latency", "ms")


def test_same_name_and_definition_gives_the_same_measure() -> None:
    name = "m"
    assert stats.Float64(name, "d", "ms") is stats.Float64(name, "d", "ms")


@pytest.mark.parametrize("other", [
    lambda n: stats.Float64(n, "other description", "ms"),
    lambda n: stats.Float64(n, "d", "By"),
    lambda n: stats.Int64(n, "d", "ms"),
])
def test_same_name_with_another_definition_is_a_value_error(other: Any) -> None:
    name = "m"
    stats.Float64(name, "d", "ms")
    with pytest.raises(ValueError, match="already exists"):
        other(name)


@pytest.mark.parametrize("value, reason", [
    (math.nan, "non-finite"),
    (math.inf, "non-finite"),
    (-math.inf, "non-finite"),
    (None, "not a number"),
    ("12", "not a number"),
    (True, "not a number"),
    (10 ** 400, "out of float range"),
])
def test_float64_drops_and_counts_what_it_cannot_record(value: Any, reason: str) -> None:
    m = stats.Float64("f")
    name = sum_of(m)
    m.record(None, 1.5)
    m.record(None, value)
    m.record(None, 2)
    assert values_of(name) == [3.5]
    assert m.dropped == {reason: 1}


@pytest.mark.parametrize("value, reason", [
    (2 ** 63, "out of int64 range"),
    (-(2 ** 63) - 1, "out of int64 range"),
    (1.0, "float on Int64"),
    (math.nan, "float on Int64"),
    (False, "not a number"),
    ("3", "not a number"),
])
def test_int64_drops_and_counts_what_it_cannot_record(value: Any, reason: str) -> None:
    m = stats.Int64("i")
    name = sum_of(m)
    m.record(None, 2 ** 62)
    m.record(None, value)
    m.record(None, 2 ** 62)
    assert values_of(name) == [2 ** 63]  # exact, past 2**53 and past int64 in the sum
    assert m.dropped == {reason: 1}


def test_int64_limits_are_recorded_exactly() -> None:
    m = stats.Int64("i")
    name = sum_of(m)
    m.record(None, 2 ** 63 - 1)
    m.record(None, -(2 ** 63))
    assert values_of(name) == [-1]
    assert m.dropped == {}


def test_a_drop_is_logged_once_per_reason(caplog: pytest.LogCaptureFixture) -> None:
    m = stats.Float64("f")
    for _ in range(5):
        m.record(None, math.nan)
    m.record(None, "x")  # type: ignore[arg-type]
    logged = [r for r in caplog.records if r.name == "gotools_compat.stats"]
    assert len(logged) == 2
    assert all(r.levelname == "WARNING" for r in logged)
    assert m.dropped == {"non-finite": 5, "not a number": 1}


def test_go_style_subscribers_see_every_value_and_cannot_break_recording(
        caplog: pytest.LogCaptureFixture) -> None:
    m = stats.Float64("f")
    seen: List[Any] = []
    m.subscribe(lambda ctx, measure, value, at: seen.append((ctx, measure, value)))
    m.subscribe(lambda ctx, measure, value, at: 1 / 0)
    name = sum_of(m)
    ctx = event.label(todo())
    m.record(ctx, 1.0)
    m.record(ctx, 2.0)
    assert seen == [(ctx, m, 1.0), (ctx, m, 2.0)]
    assert values_of(name) == [3.0]
    assert len([r for r in caplog.records if "subscriber" in r.getMessage()]) == 1


def test_a_context_of_the_wrong_type_falls_back_to_the_ambient_tags(
        caplog: pytest.LogCaptureFixture) -> None:
    key = event.new_string_key("k")
    m = stats.Float64("f")
    name = metric.Scalar("c", keys=[key]).count_float64(m)
    m.record({"k": "v"}, 1.0)  # type: ignore[arg-type]
    m.record("nonsense", 1.0)  # type: ignore[arg-type]
    [data] = [d for d in metric.collect() if d.handle() == name]
    assert data.rows == [2]
    assert [[t.value for t in g] for g in data.groups()] == [[None]]
    assert len([r for r in caplog.records if "instead of a Context" in r.getMessage()]) == 1
