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
import statistics
import time
import urllib.request
from typing import Callable, Tuple

import prometheus_client
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from _common import LATENCY_BUCKETS, latency_workload, record_latency

from gotools_compat.export import prometheus



def build(series: int, per_series: int) -> Tuple[prometheus.Exporter, CollectorRegistry]:
    workload = latency_workload(series, per_series, seed=6)
    record_latency("bench_latency_seconds", workload)

    prometheus_client.disable_created_metrics()
    peer_registry = CollectorRegistry()
    peer = Histogram("bench_latency_seconds", "Request latency.", ["method", "route"],
                     registry=peer_registry, buckets=LATENCY_BUCKETS)
    for (meth, rt), vals in workload:
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
    print("series=%d buckets=%d labels=2 repeat=%d"
          % (args.series, len(LATENCY_BUCKETS), args.repeat))
    for name in runs:
        print("  %-9s median %8.1f ms  (%d bytes)" % (name, med[name] * 1e3, sizes[name]))
    print("ratio endpoint/peer   %.3fx  (issue: <= 0.1x)" % (med["endpoint"] / med["peer"]))
    print("ratio collector/peer  %.3fx  (issue: <= 1.0x)" % (med["collector"] / med["peer"]))


if __name__ == "__main__":
    main()
