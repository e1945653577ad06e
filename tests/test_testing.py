"""gotools_compat.testing: fresh_registry() swaps every registry for empty ones and back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any, Dict, List, Set

import pytest

from gotools_compat import metric, stats  # first: E13's clock patch (3.12+ warns without it)
from gotools_compat.export import prometheus
from gotools_compat.testing import fresh_registry
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view

# The tests open registries inside the test's own fresh one, so whatever they
# leave behind by mistake does not reach other tests.
pytestmark = pytest.mark.usefixtures("registry")


def names() -> List[str]:
    return [entry.name for entry in metric.registered()]


def oc_names() -> List[str]:
    return sorted(m.descriptor.name for m in oc_stats.stats.get_metrics())


def view(name: str) -> Any:
    return oc_stats.stats.view_manager.get_view(name)


def rows(name: str) -> List[object]:
    [data] = [d for d in metric.collect() if d.handle() == name]
    return list(data.rows)


def test_inside_every_name_is_free_and_outside_everything_is_as_it_was() -> None:
    outer = stats.Int64("requests", "", "1")
    metric.Scalar("requests_count").count_int64(outer)
    outer.record(None, 1)
    with fresh_registry():
        assert names() == [] and oc_names() == []
        inner = stats.Float64("requests", "another definition", "ms")  # no ValueError
        metric.HistogramFloat64("requests_count", "", [1.0]).record(inner)
        inner.record(None, 0.5)
        outer.record(None, 1)  # a measure made outside still records into its metrics
        assert names() == oc_names() == ["requests_count"]
        [hist] = rows("requests_count")
        assert hist.counts == [1, 0]  # type: ignore[attr-defined]
    assert names() == oc_names() == ["requests_count"]
    assert rows("requests_count") == [2]
    assert stats.Int64("requests", "", "1") is outer


def test_a_measure_from_outside_stops_feeding_the_metrics_of_a_closed_registry() -> None:
    outer = stats.Int64("requests", "", "1")
    metric.Scalar("requests_count").count_int64(outer)
    with fresh_registry():
        metric.Scalar("requests_sum").sum_int64(outer)  # on the outer measure
        outer.record(None, 5)
        [inner] = metric.registered()
    outer.record(None, 7)
    assert list(inner.rows()) == [((), 5)]  # only what was recorded while it was open
    assert rows("requests_count") == [2]


def test_opencensus_views_registered_inside_are_gone_after() -> None:
    measure = oc_measure.MeasureInt("plain", "d", "1")
    with fresh_registry():
        oc_stats.stats.view_manager.register_view(
            oc_view.View("plain_view", "d", [], measure, oc_aggregation.CountAggregation()))
        mmap = oc_stats.stats.stats_recorder.new_measurement_map()
        mmap.measure_int_put(measure, 3)
        mmap.record()
        assert oc_names() == ["plain_view"]
    assert oc_names() == [] and oc_stats.stats.view_manager.get_view("plain_view") is None
    # The measure is free for another number type again.
    ours = stats.Float64("plain", "d", "1")
    metric.Scalar("plain_count").count_float64(ours)
    assert metric.opencensus_measure(ours) is not measure


def test_a_running_exporter_shows_the_current_registry_at_each_collection() -> None:
    exporter = prometheus.new()
    hits = stats.Int64("hits", "", "1")
    metric.Scalar("hits_count", "outer").count_int64(hits)
    hits.record(None, 1)
    assert b"\nhits_count_total 1\n" in exporter.render()
    with fresh_registry():
        inner = stats.Int64("hits", "", "1")
        metric.Scalar("hits_count", "inner").count_int64(inner)
        for _ in range(3):
            inner.record(None, 1)
        text = exporter.render()
        assert b"# HELP hits_count_total inner\n" in text and b"\nhits_count_total 3\n" in text
    text = exporter.render()
    assert b"# HELP hits_count_total outer\n" in text and b"\nhits_count_total 1\n" in text


def counted(name: str) -> None:
    m = stats.Int64("m")
    metric.Scalar(name).count_int64(m)
    m.record(None, 1)  # opencensus lists a view once it has a row


def test_exporters_let_go_of_the_metrics_of_a_closed_registry() -> None:
    import gc
    import weakref

    from gotools_compat.export import otel

    with fresh_registry():
        m = stats.Int64("gone", "", "1")
        metric.Scalar("gone_count").count_int64(m)
        m.record(None, 1)
        [entry] = metric.registered()
        recorder = weakref.ref(entry.recorder)
        [found] = [x for scope in otel.collect().resource_metrics[0].scope_metrics
                   for x in scope.metrics]
        assert found.name == "gone_count"
        del m, entry
    assert [x for r in otel.collect().resource_metrics for s in r.scope_metrics
            for x in s.metrics] == []
    gc.collect()
    assert recorder() is None  # no exporter cache keeps the closed registry's rows


def test_blocks_nest_and_one_left_out_of_order_leaves_the_newest_open_one_current() -> None:
    counted("base")
    first, second = fresh_registry(), fresh_registry()
    first.__enter__()
    counted("first")
    second.__enter__()
    counted("second")
    first.__exit__(None, None, None)  # as another thread would: not the current one
    assert names() == oc_names() == ["second"]
    second.__exit__(None, None, None)
    assert names() == oc_names() == ["base"]


def test_definitions_from_other_threads_land_whole_in_one_registry() -> None:
    # Threads define metrics while registries are opened and closed under
    # them: a metric listed has its opencensus view in the same registry, and
    # a view opencensus lists is one of the registry's metrics.
    stop = threading.Event()
    errors: List[BaseException] = []

    def define(thread: int) -> None:
        try:
            n = 0
            while not stop.is_set():
                m = stats.Int64("t%d_m%d" % (thread, n), "", "1")
                metric.Scalar("t%d_c%d" % (thread, n)).count_int64(m)
                m.record(None, 1)
                n += 1
            for k in range(50):  # after the registries closed: all in the test's own
                m = stats.Int64("t%d_late_m%d" % (thread, k), "", "1")
                metric.Scalar("t%d_late_c%d" % (thread, k)).count_int64(m)
                m.record(None, 1)
        except BaseException as exc:  # pragma: no cover - the failure reported below
            errors.append(exc)

    seen: List[Dict[str, Set[str]]] = []

    def look() -> None:
        ours = set(names())
        oc = set(oc_names())  # more may be defined meanwhile: read ours again after
        seen.append({"ours": ours, "views": {n for n in ours if view(n)}, "oc": oc,
                     "after": set(names())})

    threads = [threading.Thread(target=define, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        for _ in range(30):
            with fresh_registry():
                with fresh_registry():
                    look()
                look()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    look()
    assert all(s["views"] == s["ours"] and s["oc"] <= s["after"] for s in seen)
    assert seen[-1]["ours"] == seen[-1]["oc"]  # all quiet now
    # What was defined after the registries closed is all in the test's own one.
    assert {"t%d_late_c%d" % (t, k) for t in range(3) for k in range(50)} <= seen[-1]["ours"]


def test_a_forked_child_starts_the_rows_of_every_open_registry_from_zero() -> None:
    script = textwrap.dedent("""
        import os
        from gotools_compat import metric, stats
        from gotools_compat.testing import fresh_registry
        outer = stats.Int64("m", "", "1")
        metric.Scalar("c").sum_int64(outer)
        outer.record(None, 5)
        with fresh_registry():
            inner = stats.Int64("m", "", "1")
            metric.Scalar("c").sum_int64(inner)
            inner.record(None, 7)
            pid = os.fork()
            if pid == 0:
                outer.record(None, 1)
                inner.record(None, 2)
                print("child inner", metric.collect()[0].rows, flush=True)
        if pid == 0:
            print("child outer", metric.collect()[0].rows, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        print("parent outer", metric.collect()[0].rows, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["child inner [2]", "child outer [1]", "parent outer [5]"]


def test_the_module_docs_first_example_runs_as_written() -> None:
    import gotools_compat.testing as testing_module

    doc = testing_module.__doc__ or ""
    example = doc.split("::\n\n", 1)[1].split("\n\nor, with pytest", 1)[0]
    code = textwrap.dedent(example)
    namespace: Dict[str, Any] = {}
    exec(compile(code, "testing.__doc__", "exec"), namespace)
    namespace["test_requests_are_counted"]()
    namespace["test_requests_are_counted"]()  # again: the names are free each time
