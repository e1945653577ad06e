"""Timing helpers shared by the benchmark scripts (medians of repeats)."""

from __future__ import annotations

import random
import statistics
import time
from typing import Callable, List, Tuple

TUTORIAL = [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]


def per_call(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    runs: List[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number)
    return statistics.median(runs)


def median_of(fn: Callable[[], float], repeat: int = 7) -> float:
    return statistics.median(fn() for _ in range(repeat))


def report(label: str, ours: float, peer: float, limit: float, unit: str = "ns",
           scale: float = 1e9) -> None:
    """Print ours/peer and whether it is within ``limit`` (ours/peer <= limit)."""
    ratio = ours / peer
    print("%-58s ours %10.1f %s  peer %10.1f %s  ratio %7.3f  (target <= %g) %s"
          % (label, ours * scale, unit, peer * scale, unit, ratio, limit,
             "ok" if ratio <= limit else "MISSED"))


# The labelled latency histogram that the exporter benchmarks use.
LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0]
Workload = List[Tuple[Tuple[str, str], List[float]]]


def latency_workload(series: int, per_series: int, seed: int) -> Workload:
    """``series`` (method, route) pairs, each with ``per_series`` log-normal latencies."""
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "LINK", "X"]
    rnd = random.Random(seed)
    return [((methods[i % 10], "/api/v1/items/%d" % (i // 10)),
             [rnd.lognormvariate(-1.5, 1.5) for _ in range(per_series)])
            for i in range(series)]


def record_latency(name: str, workload: Workload) -> None:
    """Record ``workload`` into our histogram ``name`` keyed by method and route."""
    from gotools_compat import event, metric, stats

    method = event.new_string_key("method")
    route = event.new_string_key("route")
    m = stats.Float64("bench_latency", "latency", "s")
    metric.HistogramFloat64(name, "Request latency.", LATENCY_BUCKETS, keys=[method, route],
                            max_rows=len(workload) + 1).record(m)
    for (meth, rt), vals in workload:
        ctx = event.label(None, method.of(meth), route.of(rt))
        for v in vals:
            m.record(ctx, v)
