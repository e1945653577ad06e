"""Collecting 10,000 histogram series with opencensus get_metrics(): <= 5 us per series."""

from __future__ import annotations

import statistics
import time

from _common import TUTORIAL
from opencensus.stats import stats as oc_stats

from gotools_compat import event, metric, stats, todo

SERIES = 10_000


def main() -> None:
    a, b = event.new_string_key("a"), event.new_string_key("b")
    m = stats.Float64("bench_collect", "d", "ms")
    metric.HistogramFloat64("bench_collect_h", "d", TUTORIAL, keys=[a, b]).record(m)
    for i in range(SERIES):
        ctx = event.label(todo(), a.of("a%d" % i), b.of("b%d" % (i % 7)))
        for v in (5.0, 120.0, 3000.0):
            m.record(ctx, v)
    runs = []
    for _ in range(9):
        start = time.perf_counter()
        [collected] = list(oc_stats.stats.get_metrics())
        runs.append((time.perf_counter() - start) / SERIES)
        assert len(collected.time_series) == SERIES
        del collected
    us = statistics.median(runs) * 1e6
    print("%-58s %7.2f us/series  (target <= 5) %s"
          % ("get_metrics(), 10,000 13-bucket histogram series", us,
             "ok" if us <= 5 else "MISSED"))
    runs = []
    for _ in range(9):
        start = time.perf_counter()
        metric.collect()
        runs.append((time.perf_counter() - start) / SERIES)
    print("%-58s %7.2f us/series  (no target; Go-style snapshots)"
          % ("metric.collect(), same series", statistics.median(runs) * 1e6))


if __name__ == "__main__":
    main()
