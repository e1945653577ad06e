"""record(ctx, v) against prometheus_client and opencensus, in one process.

Figures of the core issue:
- no keys, 13 buckets: <= 0.6x prometheus_client Histogram.observe
- two keys in the context: <= 0.4x prometheus_client labels(a, b).observe
- >= 60x faster than opencensus MeasurementMap.record on one series
- flat from 1 to 10,000 series (<= 1.2x)
"""

from __future__ import annotations

import itertools

from _common import TUTORIAL, per_call, report
from opencensus.stats import aggregation as oc_aggregation
from opencensus.stats import measure as oc_measure
from opencensus.stats import stats as oc_stats
from opencensus.stats import view as oc_view
from opencensus.tags import TagMap
from prometheus_client import CollectorRegistry, Histogram

from gotools_compat import event, metric, stats, todo

N = 200_000


def main() -> None:
    registry = CollectorRegistry()
    peer = Histogram("peer", "d", buckets=TUTORIAL, registry=registry)
    peer_labelled = Histogram("peer_l", "d", ["a", "b"], buckets=TUTORIAL, registry=registry)

    plain = stats.Float64("bench_plain", "d", "ms")
    metric.HistogramFloat64("bench_plain_h", "d", TUTORIAL).record(plain)
    a, b = event.new_string_key("a"), event.new_string_key("b")
    keyed = stats.Float64("bench_keyed", "d", "ms")
    metric.HistogramFloat64("bench_keyed_h", "d", TUTORIAL, keys=[a, b]).record(keyed)
    ctx = event.label(todo(), a.of("x"), b.of("y"))

    values = itertools.cycle([3.0, 75.0, 1200.0, 12000.0, 420.0])
    nxt = values.__next__

    ours = per_call(lambda: plain.record(ctx, nxt()), N)
    theirs = per_call(lambda: peer.observe(nxt()), N)
    report("record, no keys, vs prometheus_client observe", ours, theirs, 0.6)

    ours = per_call(lambda: keyed.record(ctx, nxt()), N)
    theirs = per_call(lambda: peer_labelled.labels("x", "y").observe(nxt()), N)
    report("record, two keys, vs prometheus_client labels().observe", ours, theirs, 0.4)

    # opencensus on one series: its own view with the same (positive) bounds.
    oc_m = oc_measure.MeasureFloat("bench_oc", "d", "ms")
    oc_stats.stats.view_manager.register_view(oc_view.View(
        "bench_oc_h", "d", ["a", "b"], oc_m,
        oc_aggregation.DistributionAggregation([float(x) for x in TUTORIAL[1:]])))
    tags = TagMap()
    tags.insert("a", "x")
    tags.insert("b", "y")
    recorder = oc_stats.stats.stats_recorder

    def oc_record() -> None:
        mmap = recorder.new_measurement_map()
        mmap.measure_float_put(oc_m, nxt())
        mmap.record(tags)

    theirs = per_call(oc_record, 5_000)
    ours = per_call(lambda: keyed.record(ctx, nxt()), N)
    speedup = theirs / ours
    print("%-58s ours %10.1f ns  peer %10.1f ns  speedup %6.1fx (target >= 60x) %s"
          % ("record vs opencensus MeasurementMap.record, one series", ours * 1e9,
             theirs * 1e9, speedup, "ok" if speedup >= 60 else "MISSED"))

    # Flat in the number of series: 10,000 rows (9,999 more contexts), in turn.
    many = [event.label(todo(), a.of("x%d" % i), b.of("y")) for i in range(9_999)]
    for c in many:
        keyed.record(c, 1.0)
    cycle = itertools.cycle(many).__next__
    one = per_call(lambda: keyed.record(ctx, nxt()), N)
    ten_k = per_call(lambda: keyed.record(cycle(), nxt()), N)
    report("record with 10,000 series / with 1 series", ten_k, one, 1.2)


if __name__ == "__main__":
    main()
