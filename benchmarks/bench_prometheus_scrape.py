"""Scrape cost: 10,000 histogram series (13 buckets, 2 labels), ours against prometheus_client.

Three timings in one process, over the same data:

- ours through ``serve()``'s endpoint (an HTTP GET of the whole text, urllib);
- ours as a collector in a user's registry (``generate_latest(registry)``);
- the peer: prometheus_client's ``generate_latest`` over its own ``Histogram``
  with the same label values and observations (``_created`` samples disabled,
  which makes the peer faster and our ratio harder).

Each is repeated; the medians and their ratios are printed.  Issue 6 asks for
at most 0.1x (endpoint) and at most 1.0x (collector).

    python benchmarks/bench_prometheus_scrape.py [--series 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import urllib.request
from typing import Callable, List, Tuple

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from gotools_compat import event, metric, stats
from gotools_compat.export import prometheus

BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0]


def label_pairs(series: int) -> List[Tuple[str, str]]:
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "LINK", "X"]
    return [(methods[i % 10], "/api/v1/items/%d" % (i // 10)) for i in range(series)]


def build(series: int, per_series: int) -> Tuple[prometheus.Exporter, CollectorRegistry]:
    rnd = random.Random(6)
    pairs = label_pairs(series)
    values = [[rnd.lognormvariate(-1.5, 1.5) for _ in range(per_series)] for _ in pairs]

    method = event.new_string_key("method")
    route = event.new_string_key("route")
    m = stats.Float64("bench_latency", "latency", "s")
    metric.HistogramFloat64("bench_latency_seconds", "Request latency.", BUCKETS,
                            keys=[method, route], max_rows=series + 1).record(m)
    for (meth, rt), vals in zip(pairs, values):
        ctx = event.label(None, method.of(meth), route.of(rt))
        for v in vals:
            m.record(ctx, v)

    prometheus_client.disable_created_metrics()
    peer_registry = CollectorRegistry()
    peer = Histogram("bench_latency_seconds", "Request latency.", ["method", "route"],
                     registry=peer_registry, buckets=BUCKETS)
    for (meth, rt), vals in zip(pairs, values):
        child = peer.labels(meth, rt)
        for v in vals:
            child.observe(v)
    return prometheus.new(), peer_registry


def timed(fn: Callable[[], int]) -> Tuple[float, int]:
    start = time.perf_counter()
    size = fn()
    return time.perf_counter() - start, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--per-series", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    exp, peer_registry = build(args.series, args.per_series)
    user_registry = CollectorRegistry()
    user_registry.register(exp)
    server = exp.serve(port=0)

    def endpoint() -> int:
        with urllib.request.urlopen(server.url, timeout=60) as response:
            return len(response.read())

    def collector() -> int:
        return len(generate_latest(user_registry))

    def peer() -> int:
        return len(generate_latest(peer_registry))

    runs = {"endpoint": endpoint, "collector": collector, "peer": peer}
    times = {name: [] for name in runs}  # type: dict[str, list[float]]
    sizes = {}
    try:
        for fn in runs.values():  # warm the caches (first scrape builds label strings)
            fn()
        for _ in range(args.repeat):
            for name, fn in runs.items():
                elapsed, sizes[name] = timed(fn)
                times[name].append(elapsed)
    finally:
        server.stop()

    med = {name: statistics.median(values) for name, values in times.items()}
    print("series=%d buckets=%d labels=2 repeat=%d" % (args.series, len(BUCKETS), args.repeat))
    for name in runs:
        print("  %-9s median %8.1f ms  (%d bytes)" % (name, med[name] * 1e3, sizes[name]))
    print("ratio endpoint/peer   %.3fx  (issue: <= 0.1x)" % (med["endpoint"] / med["peer"]))
    print("ratio collector/peer  %.3fx  (issue: <= 1.0x)" % (med["collector"] / med["peer"]))


if __name__ == "__main__":
    main()
