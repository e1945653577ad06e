"""Metrics kept in opencensus views (gotools_compat.metric)."""

from __future__ import annotations

import bisect
import random
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any, List

import pytest
from opencensus.metrics.export.metric_descriptor import MetricDescriptorType as T
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import TagContext, TagMap

from gotools_compat import event, metric, stats, todo, unit
from tests.helpers import buckets, data, entry, oc_metric, oc_points

# Each test defines its metrics in a fresh registry (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("registry")

TUTORIAL = [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]


def _lines_printed(script: str) -> List[str]:
    """What ``script`` prints, run in a fresh interpreter (which must exit 0)."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_the_issue_example_shows_up_in_opencensus_get_metrics() -> None:
    method = event.new_string_key("method", "RPC method")
    latency = stats.Float64("latency", "the latency in milliseconds", unit.MILLISECONDS)
    hist = metric.HistogramFloat64("latencyDistribution", "the various latencies",
                                   buckets=TUTORIAL, keys=[method]).record(latency)
    count = metric.Scalar("latency_count", "records", keys=[method]).count_float64(latency)
    ctx = event.label(todo(), method.of("hover"))
    latency.record(ctx, 12.5)

    m = oc_metric(hist)
    assert (m.descriptor.type, m.descriptor.unit, m.descriptor.description) == (
        T.CUMULATIVE_DISTRIBUTION, "ms", "the various latencies")
    assert [k.key for k in m.descriptor.label_keys] == ["method"]
    dist = oc_points(hist)[("hover",)]
    assert (dist.count, dist.sum) == (1, 12.5)
    assert buckets(dist) == [0, 0, 1] + [0] * 11
    assert dist.bucket_options.type_.bounds == [float(b) for b in TUTORIAL]
    assert oc_points(count)[("hover",)].value == 1
    assert oc_metric(count).descriptor.type == T.CUMULATIVE_INT64


@pytest.mark.parametrize("method, measure_type, descriptor_type, value_type", [
    ("count_int64", stats.Int64, T.CUMULATIVE_INT64, int),
    ("sum_int64", stats.Int64, T.CUMULATIVE_INT64, int),
    ("latest_int64", stats.Int64, T.GAUGE_INT64, int),
    ("count_float64", stats.Float64, T.CUMULATIVE_INT64, int),
    ("sum_float64", stats.Float64, T.CUMULATIVE_DOUBLE, float),
    ("latest_float64", stats.Float64, T.GAUGE_DOUBLE, float),
])
def test_scalars_have_the_descriptor_type_and_values_of_go(
        method: str, measure_type: Any, descriptor_type: int, value_type: type) -> None:
    m = measure_type("m", "d", unit.BYTES)
    name = getattr(metric.Scalar("s", "desc"), method)(m)
    for v in (5, 7, 3):
        m.record(None, v if measure_type is stats.Int64 else float(v))
    expected = {"count": 3, "sum": 15, "latest": 3}[method.split("_")[0]]
    om = oc_metric(name)
    assert (om.descriptor.type, om.descriptor.unit, om.descriptor.description) == (
        descriptor_type, "By", "desc")
    [value] = oc_points(name).values()
    assert value.value == expected and type(value.value) is value_type
    d = data(name)
    assert d.rows == [expected]
    assert d.is_gauge == method.startswith("latest")  # type: ignore[union-attr]


def test_gauges_go_below_zero_and_keep_the_last_value() -> None:
    m = stats.Int64("m")
    name = metric.Scalar("g").latest_int64(m)
    for v in (4, -7, -2):
        m.record(None, v)
    assert data(name).rows == [-2]


def test_histogram_counts_a_value_in_the_bucket_whose_bound_it_equals() -> None:
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", "", buckets=[0, 10, 50]).record(m)
    for v in (0.0, 10.0, 10.000001, 50.0, 50.5):
        m.record(None, v)
    [dist] = oc_points(name).values()
    assert buckets(dist) == [1, 1, 2, 1]
    [row] = data(name).rows
    assert row.values == [1, 2, 4]  # Go's cumulative form  # type: ignore[union-attr]


def test_histogram_keeps_zero_and_negative_bounds_and_negative_values() -> None:
    m = stats.Int64("m")
    name = metric.HistogramInt64("h", "", buckets=[-10, -1, 0, 5]).record(m)
    for v in (-20, -10, -5, -1, 0, 3, 9):
        m.record(None, v)
    [dist] = oc_points(name).values()
    assert dist.bucket_options.type_.bounds == [-10.0, -1.0, 0.0, 5.0]
    assert buckets(dist) == [2, 2, 1, 1, 1]
    assert (dist.count, dist.sum) == (7, -24)
    [row] = data(name).rows
    assert (row.min, row.max, row.sum) == (-20, 9, -24)  # type: ignore[union-attr]


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 1000, 5003])
def test_histogram_rows_match_a_reference_for_any_batch_size(n: int) -> None:
    rng = random.Random(n)
    values = [rng.choice([rng.uniform(-50, 20000), float(rng.choice(TUTORIAL))])
              for _ in range(n)]
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", "", buckets=TUTORIAL).record(m)
    for i, v in enumerate(values):
        m.record(None, v)
        if i % 97 == 0:
            data(name)  # reads in between fold partial buffers
    expected = [0] * (len(TUTORIAL) + 1)
    for v in values:
        expected[bisect.bisect_left(TUTORIAL, v)] += 1
    [row] = data(name).rows
    assert row.counts == expected  # type: ignore[union-attr]
    assert row.count == n  # type: ignore[union-attr]
    assert row.sum == pytest.approx(sum(values), rel=1e-12)  # type: ignore[union-attr]
    assert (row.min, row.max) == (min(values), max(values))  # type: ignore[union-attr]
    ssd = statistics.pvariance(values) * n
    assert row.sum_of_squared_deviation == pytest.approx(ssd, rel=1e-9, abs=1e-6)  # type: ignore[union-attr]
    [dist] = oc_points(name).values()
    assert dist.sum_of_squared_deviation == pytest.approx(ssd, rel=1e-9, abs=1e-6)


def test_int64_histogram_sum_is_exact_past_2_to_the_53() -> None:
    m = stats.Int64("m")
    name = metric.HistogramInt64("h", "", buckets=[1]).record(m)
    for _ in range(3):
        m.record(None, 2 ** 53 + 1)
    [row] = data(name).rows
    assert row.sum == 3 * (2 ** 53 + 1)  # type: ignore[union-attr]


def test_rows_are_keyed_by_context_values_and_a_missing_key_is_its_own_row() -> None:
    method = event.new_string_key("method")
    code = event.new_int_key("code")
    m = stats.Float64("m")
    name = metric.Scalar("c", keys=[method, code]).count_float64(m)
    hover = event.label(todo(), method.of("hover"), code.of(200))
    m.record(hover, 1.0)
    m.record(hover, 1.0)
    m.record(event.label(todo(), method.of("hover")), 1.0)
    m.record(event.label(todo(), code.of(404)), 1.0)
    m.record(todo(), 1.0)
    assert {k: v.value for k, v in oc_points(name).items()} == {
        ("hover", "200"): 2, ("hover", None): 1, (None, "404"): 1, (None, None): 1}
    groups = {tuple(t.value for t in g): n for g, n in zip(data(name).groups(), data(name).rows)}
    assert groups[("hover", 200)] == 2  # typed values in Go's Groups()


def test_contexts_made_per_request_land_in_their_rows() -> None:
    # event.label hands a reused context out again: its rows must stay its own.
    route = event.new_string_key("route")
    value = event.new_key("value")
    m = stats.Float64("m")
    hist = metric.HistogramFloat64("h", buckets=[1, 10], keys=[route]).record(m)
    count = metric.Scalar("c", keys=[value]).count_float64(m)
    for i in range(30):
        m.record(event.label(todo(), route.of("/r%d" % (i % 3))), float(i))
        m.record(event.label(todo(), value.of(i % 2 == 0)), 0.5)  # True, False: as 1, 0
        m.record(event.label(todo(), value.of(i % 2)), 0.5)
    assert {k: (v.count, v.sum) for k, v in oc_points(hist).items()} == {
        ("/r0",): (10, 135.0), ("/r1",): (10, 145.0), ("/r2",): (10, 155.0), (None,): (60, 30.0)}
    assert {k: v.value for k, v in oc_points(count).items()} == {
        ("True",): 15, ("False",): 15, ("0",): 15, ("1",): 15, (None,): 30}


def test_ambient_opencensus_tags_are_used_when_ctx_is_none() -> None:
    method = event.new_string_key("method")
    m = stats.Float64("m")
    name = metric.Scalar("c", keys=[method]).count_float64(m)
    tags = TagMap()
    tags.insert("method", "completion")
    tags.insert("unrelated", "x")
    token = TagContext.set(tags)
    try:
        m.record(None, 1.0)
    finally:
        TagContext.set(token if False else None)
    m.record(None, 1.0)
    assert {k: v.value for k, v in oc_points(name).items()} == {("completion",): 1, (None,): 1}


def test_measurement_map_records_land_in_the_same_rows_with_the_same_bucket_rule() -> None:
    method = event.new_string_key("method")
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", "", buckets=[10, 20], keys=[method]).record(m)
    m.record(event.label(todo(), method.of("a")), 10.0)
    tags = TagMap()
    tags.insert("method", "a")
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_float_put(metric.opencensus_measure(m), 10.0)  # == bound: bucket le=10
    mmap.record(tags)
    dist = oc_points(name)[("a",)]
    assert buckets(dist) == [2, 0, 0]


def test_plain_opencensus_views_keep_working_beside_ours() -> None:
    plain = oc_measure.MeasureInt("plain", "d", "1")
    view = oc_view.View("plain_view", "d", [], plain, oc_aggregation.SumAggregation())
    oc_stats.stats.view_manager.register_view(view)
    ours = stats.Int64("ours")
    our_name = metric.Scalar("ours_sum").sum_int64(ours)
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_int_put(plain, 4)
    mmap.record()
    ours.record(None, 6)
    assert [p.value for p in oc_points(view.name).values()] == [4]
    assert [p.value for p in oc_points(our_name).values()] == [6]


def test_an_opencensus_measure_the_app_already_registered_is_adopted() -> None:
    name = "shared"
    app_measure = oc_measure.MeasureFloat(name, "d", "ms")
    oc_stats.stats.view_manager.register_view(oc_view.View(
        "app_view", "d", [], app_measure, oc_aggregation.CountAggregation()))
    ours = stats.Float64(name, "d", "ms")
    metric_name = metric.Scalar("c").count_float64(ours)
    assert metric.opencensus_measure(ours) is app_measure
    mmap = oc_stats.stats.stats_recorder.new_measurement_map()
    mmap.measure_float_put(app_measure, 1.0)
    mmap.record()
    assert data(metric_name).rows == [1]


def test_same_definition_is_the_same_metric_and_another_is_an_error() -> None:
    key = event.new_string_key("k")
    m = stats.Float64("m")
    name = "c"
    assert metric.Scalar(name, "d", keys=[key]).count_float64(m) == name
    assert metric.Scalar(name, "d", keys=[key]).count_float64(m) == name
    m.record(None, 1.0)
    assert data(name).rows == [1]  # one view, not two
    with pytest.raises(ValueError, match="another definition"):
        metric.Scalar(name, "d", keys=[key]).sum_float64(m)
    with pytest.raises(ValueError, match="another definition"):
        metric.Scalar(name, "d", keys=[event.new_string_key("k")]).count_float64(m)
    with pytest.raises(ValueError, match="another definition"):
        metric.Scalar(name, "d", keys=[key]).count_float64(stats.Float64("other"))


def test_a_name_taken_by_a_plain_opencensus_view_is_an_error() -> None:
    name = "taken"
    plain = oc_measure.MeasureInt("p", "d", "1")
    oc_stats.stats.view_manager.register_view(
        oc_view.View(name, "d", [], plain, oc_aggregation.CountAggregation()))
    with pytest.raises(ValueError, match="already has a view"):
        metric.Scalar(name).count_int64(stats.Int64("m"))


@pytest.mark.parametrize("buckets_, error", [
    ([], ValueError), ([10, 5], ValueError), ([1, 1, 2], ValueError),
    ([1, float("nan")], ValueError), ([1, float("inf")], ValueError),
    ("10,20", TypeError), ([1, "2"], TypeError), ([True], TypeError),
])
def test_bad_buckets_are_rejected_at_definition(buckets_: Any, error: type) -> None:
    with pytest.raises(error):
        metric.HistogramFloat64("h", "", buckets=buckets_)


def test_int64_histograms_take_int_bounds_only() -> None:
    with pytest.raises(TypeError):
        metric.HistogramInt64("h", "", buckets=[1, 2.5])


@pytest.mark.parametrize("kwargs, error", [
    ({"name": ""}, ValueError), ({"name": "x" * 256}, ValueError),
    ({"name": "\u00e9t\u00e9"}, ValueError),
    ({"name": 5}, TypeError), ({"keys": ["method"]}, TypeError), ({"keys": "method"}, TypeError),
    ({"max_rows": 0}, ValueError), ({"description": None}, TypeError),
])
def test_bad_scalar_definitions_are_rejected(kwargs: Any, error: type) -> None:
    args = {"name": "s", "description": "", "keys": ()}
    args.update(kwargs)
    with pytest.raises(error):
        metric.Scalar(**args)


def test_two_keys_with_one_name_in_a_metric_are_rejected() -> None:
    with pytest.raises(ValueError, match="two keys named"):
        metric.Scalar("s", keys=[event.new_string_key("k"), event.new_int_key("k")])


def test_a_metric_on_the_wrong_measure_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        metric.Scalar("s").sum_int64(stats.Float64("m"))  # type: ignore[arg-type]


def test_non_ascii_tag_values_are_kept_and_long_ones_cut() -> None:
    key = event.new_string_key("file")
    m = stats.Float64("m")
    name = metric.Scalar("c", keys=[key]).count_float64(m)
    m.record(event.label(todo(), key.of("r\u00e9sum\u00e9.go")), 1.0)
    m.record(event.label(todo(), key.of("x" * 10000)), 1.0)
    assert set(oc_points(name)) == {("r\u00e9sum\u00e9.go",), ("x" * 255,)}


def test_cardinality_is_bounded_and_nothing_is_lost(caplog: pytest.LogCaptureFixture) -> None:
    key = event.new_string_key("user")
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", "", buckets=[1], keys=[key],
                                   max_rows=100).record(m)
    for i in range(12000):
        m.record(event.label(todo(), key.of("u%d" % i)), 1.0)
    points = oc_points(name)
    assert len(points) == 101
    assert points[("__overflow__",)].count == 12000 - 100
    assert sum(p.count for p in points.values()) == 12000
    assert len([r for r in caplog.records if "limit of 100 rows" in r.getMessage()]) == 1


def test_default_row_limit_is_documented_value() -> None:
    assert metric.MAX_ROWS == 10000
    assert metric.Scalar("s").max_rows == 10000


def _threads(target: Any, n: int) -> None:
    import threading
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_eight_threads_record_exact_totals() -> None:
    key = event.new_string_key("shard")
    m = stats.Float64("m")
    count = metric.Scalar("c", keys=[key]).count_float64(m)
    total = metric.Scalar("s").sum_float64(m)
    hist = metric.HistogramFloat64("h", "", buckets=[1, 2], keys=[key]).record(m)
    contexts = [event.label(todo(), key.of(str(i % 2))) for i in range(8)]

    def work(i: int) -> None:
        ctx = contexts[i]
        value = float(i % 4)
        for _ in range(100_000):
            m.record(ctx, value)

    _threads(work, 8)
    counts = {k[0]: p.value for k, p in oc_points(count).items()}
    assert counts == {"0": 400_000, "1": 400_000}
    assert data(total).rows == [100_000 * sum(float(i % 4) for i in range(8))]
    dists = oc_points(hist)
    assert buckets(dists[("0",)]) == [200_000, 200_000, 0]  # values 0, 2, 0, 2
    assert buckets(dists[("1",)]) == [200_000, 0, 200_000]  # values 1, 3, 1, 3


def test_get_metrics_never_raises_while_threads_add_rows() -> None:
    import threading
    key = event.new_string_key("k")
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", "", buckets=[1], keys=[key]).record(m)
    writers_done = threading.Event()
    errors: List[BaseException] = []
    reads = []

    def writer(i: int) -> None:
        for n in range(20_000):  # every record makes a new row
            m.record(event.label(todo(), key.of("%d-%d" % (i, n))), 1.0)

    def reader(_: int) -> None:
        try:
            while not writers_done.is_set() or len(reads) < 20:
                reads.append(len(list(oc_stats.stats.get_metrics())))
                metric.collect()
        except BaseException as e:  # noqa: B902 - recorded for the assertion
            errors.append(e)

    read_thread = threading.Thread(target=reader, args=(0,))
    read_thread.start()
    _threads(writer, 2)
    writers_done.set()
    read_thread.join()
    assert errors == []
    assert len(reads) >= 20
    assert sum(p.count for p in oc_points(name).values()) == 40_000


def test_get_metrics_never_raises_while_threads_define_metrics() -> None:
    import threading
    done = threading.Event()
    errors: List[BaseException] = []
    reads: List[int] = []

    def definer(i: int) -> None:
        for n in range(300):  # each a new measure: a new key in opencensus's map
            m = stats.Int64("d%d_m%d" % (i, n), "", "1")
            metric.Scalar("d%d_c%d" % (i, n)).count_int64(m)
            m.record(None, 1)

    def reader() -> None:
        try:
            while not done.is_set() or len(reads) < 20:
                reads.append(len(list(oc_stats.stats.get_metrics())))
        except BaseException as e:  # noqa: B902 - recorded for the assertion
            errors.append(e)

    read_thread = threading.Thread(target=reader)
    read_thread.start()
    _threads(definer, 2)
    done.set()
    read_thread.join()
    assert errors == []
    names = {m.descriptor.name for m in oc_stats.stats.get_metrics()}
    assert {"d%d_c%d" % (i, n) for i in range(2) for n in range(300)} <= names
    assert len(reads) >= 20


def test_a_forked_child_starts_from_zero_and_the_parent_keeps_its_rows() -> None:
    script = textwrap.dedent("""
        import os
        from gotools_compat import event, metric, stats, todo
        from opencensus.stats import stats as oc_stats
        key = event.new_string_key("k")
        m = stats.Int64("m", "d", "1")
        metric.Scalar("c", keys=[key]).sum_int64(m)
        metric.HistogramInt64("h", "", buckets=[10]).record(m)
        ctx = event.label(todo(), key.of("v"))
        m.record(ctx, 5)
        m.record(ctx, 20)
        [c] = [e for e in metric.registered() if e.name == "c"]
        start = c.start_time
        pid = os.fork()
        if pid == 0:
            m.record(ctx, 3)  # the cached row of ctx, reset in place
            rows = {d.handle(): d.rows for d in metric.collect()}
            h = rows["h"][0]
            later = c.start_time > start
            oc = {x.descriptor.name: x.time_series[0].start_timestamp
                  for x in oc_stats.stats.get_metrics()}
            print("child", rows["c"], h.counts, h.min, h.max, later, oc["c"] > start, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        rows = {d.handle(): d.rows for d in metric.collect()}
        print("parent", rows["c"], rows["h"][0].counts, flush=True)
    """)
    assert _lines_printed(script) == [
        "child [3] [1, 0] 3 3 True True",
        "parent [25] [1, 1]",
    ]


def test_records_wait_only_past_the_buffer_limit_while_another_thread_folds() -> None:
    import threading

    from gotools_compat._oc import aggregation as agg
    m = stats.Float64("m")
    name = metric.HistogramFloat64("h", "", buckets=[1]).record(m)
    m.record(None, 0.5)  # makes the row
    recorder = entry(name).recorder  # the rows' table, to hold its lock
    [row] = recorder.rows.values()
    done = threading.Event()

    def record_many() -> None:
        for _ in range(agg.DRAIN_LIMIT + 500):
            m.record(None, 2.0)
        done.set()

    with recorder.lock:  # as a reader or another thread's fold would
        writer = threading.Thread(target=record_many)
        writer.start()
        deadline = time.monotonic() + 30
        while len(row.buf) < agg.DRAIN_LIMIT and time.monotonic() < deadline:
            time.sleep(0.01)
        # Past the DRAIN_AT mark the writer kept going without the lock ...
        assert len(row.buf) >= agg.DRAIN_LIMIT
        time.sleep(0.05)
        # ... and at the limit it waits for the lock instead of growing the buffer.
        assert not done.is_set()
        assert len(row.buf) == agg.DRAIN_LIMIT
    writer.join(30)
    assert done.is_set()
    [hist] = data(name).rows
    assert hist.counts == [1, agg.DRAIN_LIMIT + 500]  # type: ignore[union-attr]


def test_importing_metric_loads_what_every_program_needs_and_the_rest_loads_on_first_use(
) -> None:
    # Histograms, Go's collect() data, opencensus's View and Point load when a
    # program first needs them; each step's answer would differ if they
    # loaded at import (or not at all).
    script = textwrap.dedent("""
        import sys
        LAZY = ["gotools_compat._oc.histogram", "bisect", "gotools_compat.metric.data",
                "opencensus.stats.view", "opencensus.metrics.export.point"]
        def loaded():
            return [name for name in LAZY if name in sys.modules]
        from gotools_compat import metric, stats
        print(loaded())
        m = stats.Float64("m")
        metric.Scalar("c").sum_float64(m)
        print(loaded())
        metric.HistogramFloat64("h", "", [1.0]).record(m)
        m.record(None, 0.5)
        print(loaded())
        [h] = [d for d in metric.collect() if d.handle() == "h"]
        print(loaded(), h.rows[0].counts, metric.HistogramRow is type(h.rows[0]))
        from opencensus.stats import stats as oc_stats
        [point] = [x for x in oc_stats.stats.get_metrics()
                   if x.descriptor.name == "h"][0].time_series[0].points
        print(loaded(), point.value.count)
    """)
    assert _lines_printed(script) == [
        "[]",
        "['opencensus.stats.view']",
        "['gotools_compat._oc.histogram', 'bisect', 'opencensus.stats.view']",
        "['gotools_compat._oc.histogram', 'bisect', 'gotools_compat.metric.data', "
        "'opencensus.stats.view'] [1, 0] True",
        "['gotools_compat._oc.histogram', 'bisect', 'gotools_compat.metric.data', "
        "'opencensus.stats.view', 'opencensus.metrics.export.point'] 1",
    ]
