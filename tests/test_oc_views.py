"""gotools_compat._oc.views: the row table, tag mapping and the opencensus view behind it.

A :class:`views.Recorder` is built directly (columns are plain label key
names); the tests of :func:`views.register` touch opencensus's process-wide
view manager, each with empty definitions swapped in for the test
(:func:`views.swap_definitions`, this layer's part of a fresh registry).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterator, Optional, Tuple

import pytest
from opencensus.stats import stats as oc_stats
from opencensus.tags import TagContext, TagMap

from gotools_compat._oc import aggregation as agg
from gotools_compat._oc import views


def recorder(columns: Tuple[str, ...] = ("method", "code"), max_rows: int = 100,
             aggregation: Optional[agg.Aggregation] = None,
             accept: Any = lambda value: value) -> views.Recorder:
    return views.Recorder("m", columns, aggregation or agg.Sum(is_int=True), accept, max_rows)


def tag_map(**tags: str) -> TagMap:
    tm = TagMap()
    for key, value in tags.items():
        tm.insert(key, value)
    return tm


@pytest.fixture
def ambient_tags() -> Iterator[None]:
    yield
    TagContext.set(None)


# Row lookup.

def test_the_same_labels_find_the_same_row() -> None:
    rec = recorder()
    row = rec.row(("GET", "200"), ("GET", "200"))
    assert rec.row(("GET", "200"), ("GET", "200")) is row
    assert rec.row(("GET", "500"), ("GET", "500")) is not row
    assert sorted(rec.rows) == [("GET", "200"), ("GET", "500")]


def test_a_new_row_has_its_labels_its_tags_and_the_recorders_lock() -> None:
    rec = recorder()
    row = rec.row(("GET", None), ("tag-GET", None))
    assert (row.labels, row.tags) == (("GET", None), ("tag-GET", None))
    assert row.lock is rec.lock
    assert isinstance(row, agg.SumRow)


def test_combinations_past_max_rows_go_to_one_overflow_row_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    rec = recorder(max_rows=2)
    rec.row(("a", "1"), ("a", "1")).add(1)
    rec.row(("b", "1"), ("b", "1")).add(1)
    with caplog.at_level(logging.WARNING, logger=views.__name__):
        third = rec.row(("c", "1"), ("c", "1"))
        fourth = rec.row(("d", "1"), ("d", "1"))
    assert third is fourth
    assert third.labels == third.tags == (views.OVERFLOW, views.OVERFLOW)
    third.add(5)
    fourth.add(7)
    assert {labels: row.value() for labels, row in rec.rows.items()} == {
        ("a", "1"): 1, ("b", "1"): 1, (views.OVERFLOW, views.OVERFLOW): 12}
    assert [r.getMessage() for r in caplog.records] == [
        "metric 'm' reached its limit of 2 rows; values of further tag combinations are "
        "counted in the row labelled '__overflow__'"]


def test_a_row_that_exists_is_found_past_max_rows() -> None:
    rec = recorder(max_rows=1)
    row = rec.row(("a", "1"), ("a", "1"))
    rec.row(("b", "1"), ("b", "1"))  # the overflow row
    assert rec.row(("a", "1"), ("a", "1")) is row


def test_record_nokey_makes_one_row_without_labels_and_adds_to_it() -> None:
    rec = recorder(columns=())
    rec.record_nokey(None, 2)
    rec.record_nokey(object(), 3)  # the context is not read
    assert list(rec.rows) == [()]
    assert rec.row0 is rec.rows[()]
    assert rec.row0.value() == 5


def test_snapshot_rows_lists_every_row_once() -> None:
    rec = recorder(columns=("k",))
    a = rec.row(("a",), ("a",))
    b = rec.row(("b",), ("b",))
    rows = rec.snapshot_rows()
    assert rows == [a, b]
    rows.clear()
    assert len(rec.rows) == 2


def test_reset_zeroes_every_row_and_restarts_the_series() -> None:
    rec = recorder(columns=("k",))
    rec.row(("a",), ("a",)).add(4)
    rec.row(("b",), ("b",)).add(6)
    with rec.lock:
        rec.reset("2030-01-02T03:04:05.000000Z")
    assert rec.start_time == "2030-01-02T03:04:05.000000Z"
    assert [row.value() for row in rec.rows.values()] == [0, 0]


# Tag mapping.

def test_tag_map_values_fill_the_columns_in_column_order() -> None:
    rec = recorder()
    row = rec.row_for_tag_map(tag_map(code="200", method="GET", other="x"))
    assert row.labels == ("GET", "200")


def test_a_column_the_tag_map_lacks_has_no_value() -> None:
    rec = recorder()
    assert rec.row_for_tag_map(tag_map(code="404")).labels == (None, "404")


def test_no_tag_map_is_the_row_of_no_values() -> None:
    rec = recorder()
    assert rec.row_for_tag_map(None).labels == (None, None)


def test_a_metric_without_columns_ignores_the_tags() -> None:
    rec = recorder(columns=())
    assert rec.row_for_tag_map(tag_map(code="200")).labels == ()


def test_the_ambient_row_is_the_row_of_the_current_opencensus_tags(
        ambient_tags: None) -> None:
    rec = recorder()
    TagContext.set(tag_map(method="PUT"))
    assert rec.ambient_row().labels == ("PUT", None)
    TagContext.set(None)
    assert rec.ambient_row().labels == (None, None)


# Start times and measures.

def test_iso_now_is_opencensus_start_time_format_in_utc() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", views.iso_now())


def test_a_new_measure_is_of_the_number_type_asked_for() -> None:
    from opencensus.stats import measure as oc_measure

    m = views.opencensus_measure("v_int", "d", "By", is_int=True)
    f = views.opencensus_measure("v_float", "d", "ms", is_int=False)
    assert type(m) is oc_measure.MeasureInt and type(f) is oc_measure.MeasureFloat
    assert (m.description, m.unit) == ("d", "By")


# The opencensus view.

@pytest.fixture
def fresh_views() -> Iterator[None]:
    """opencensus's view manager with nothing registered, for one test."""
    saved = views.swap_definitions(views.empty_definitions())
    try:
        yield
    finally:
        views.swap_definitions(saved)


def registered(is_int: bool = True, accept: Any = lambda value: value,
               columns: Tuple[str, ...] = ("k",)) -> Tuple[Any, views.Recorder, Any]:
    name = "views_test"
    measure = views.opencensus_measure(name + "_measure", "", "1", is_int)
    rec = views.Recorder(name, columns, agg.Sum(is_int), accept, 100)
    data = views.register(name, "help", measure, rec)
    return measure, rec, data


@pytest.mark.usefixtures("fresh_views")
def test_register_puts_our_view_data_over_the_recorders_rows() -> None:
    measure, rec, data = registered()
    mtvm = oc_stats.stats.view_manager.measure_to_view_map
    assert isinstance(data, views.CompatViewData)
    assert mtvm._measure_to_view_data_list_map[measure.name] == [data]
    rec.row(("a",), ("a",)).add(3)
    assert {k: row.value() for k, row in data.tag_value_aggregation_data_map.items()} == {
        ("a",): 3}


@pytest.mark.usefixtures("fresh_views")
def test_the_view_datas_row_map_is_a_copy() -> None:
    _, rec, data = registered()
    rows = data.tag_value_aggregation_data_map
    rec.row(("late",), ("late",))
    assert rows == {}
    assert list(data.tag_value_aggregation_data_map) == [("late",)]


@pytest.mark.usefixtures("fresh_views")
def test_the_view_datas_start_time_follows_the_recorder() -> None:
    _, rec, data = registered()
    with rec.lock:
        rec.reset("2031-01-01T00:00:00.000000Z")
    assert data.start_time == "2031-01-01T00:00:00.000000Z"


@pytest.mark.usefixtures("fresh_views")
def test_a_second_view_of_one_name_is_refused() -> None:
    measure, rec, _ = registered()
    with pytest.raises(ValueError, match="already has a view named %r" % rec.name):
        views.register(rec.name, "", measure, views.Recorder(rec.name, (), agg.Count(),
                                                             lambda v: v, 10))


@pytest.mark.usefixtures("fresh_views")
def test_an_opencensus_measure_already_registered_is_adopted() -> None:
    measure, _, _ = registered(is_int=True)
    assert views.opencensus_measure(measure.name, "other", "s", is_int=True) is measure


@pytest.mark.usefixtures("fresh_views")
def test_a_registered_measure_of_the_other_number_type_is_refused() -> None:
    measure, _, _ = registered(is_int=True)
    with pytest.raises(ValueError, match="already has a measure named .* of type MeasureInt"):
        views.opencensus_measure(measure.name, "", "1", is_int=False)


@pytest.mark.usefixtures("fresh_views")
def test_a_measurement_map_records_into_the_row_of_its_tags_through_accept() -> None:
    seen = []

    def accept(value: Any) -> Any:
        seen.append(value)
        return value * 10

    measure, rec, _ = registered(accept=accept)
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_int_put(measure, 4)
    mmap.record(tag_map(k="x"))
    assert seen == [4]
    assert rec.rows[("x",)].value() == 40


@pytest.mark.usefixtures("fresh_views")
def test_a_value_accept_refuses_is_not_recorded() -> None:
    measure, rec, _ = registered(accept=lambda value: None)
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_int_put(measure, 4)
    mmap.record(tag_map(k="x"))
    assert rec.rows == {}


@pytest.mark.usefixtures("fresh_views")
def test_get_metrics_reads_the_recorders_rows() -> None:
    _, rec, _ = registered()
    rec.row(("a",), ("a",)).add(2 ** 53 + 1)
    [found] = [m for m in oc_stats.stats.get_metrics() if m.descriptor.name == rec.name]
    assert [(tuple(v.value for v in ts.label_values), ts.points[0].value.value)
            for ts in found.time_series] == [(("a",), 2 ** 53 + 1)]


def test_swapped_definitions_hide_the_views_registered_before_and_come_back_whole() -> None:
    outer_measure = views.opencensus_measure("swap_outer", "", "1", True)
    outer = views.Recorder("swap_outer_view", (), agg.Count(), lambda value: value, 10)
    saved = views.swap_definitions(views.empty_definitions())
    try:
        views.register("swap_outer_view", "", outer_measure, outer)
        outer.record_nokey(None, 1)
        outer.record_nokey(None, 1)
        first = views.swap_definitions(views.empty_definitions())
        try:
            assert list(oc_stats.stats.get_metrics()) == []
            # The name is free here; a measure of another type is not refused.
            inner_measure = views.opencensus_measure("swap_outer", "", "1", False)
            inner = views.Recorder("swap_outer_view", (), agg.Count(), lambda value: value, 10)
            views.register("swap_outer_view", "", inner_measure, inner)
            inner.record_nokey(None, 1.0)
            assert [m.time_series[0].points[0].value.value
                    for m in oc_stats.stats.get_metrics()] == [1]
        finally:
            back = views.swap_definitions(first)
        assert list(back[1]) == ["swap_outer_view"]  # the inner definitions, as they were
        [found] = oc_stats.stats.get_metrics()
        assert (found.descriptor.name, found.time_series[0].points[0].value.value) == (
            "swap_outer_view", 2)
        assert views.opencensus_measure("swap_outer", "", "1", True) is outer_measure
    finally:
        views.swap_definitions(saved)
    assert oc_stats.stats.view_manager.get_view("swap_outer_view") is None
