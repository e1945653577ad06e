"""Recording while a scrape runs: does the exporter hold what recording needs?

Under the GIL any CPU-bound second thread roughly halves the speed of
recording.  This measures the time of a fixed batch of ``record`` calls on a
metric of 10,000 histogram series (13 buckets, 2 labels):

- alone;
- beside a lock-free busy thread (a pure-Python loop);
- beside a thread that scrapes all 10,000 series over and over
  (``Exporter.render``, what ``serve()`` runs per request).

slowdown = time / time alone.  Issue 6 asks that the scrape's slowdown be at
most 1.1x the busy thread's: the scrape may take the GIL like any thread, but
holds the metric's lock for one series at a time only.

    python benchmarks/bench_prometheus_contention.py [--records 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Callable, List, Optional

from _common import LATENCY_BUCKETS, latency_workload

from gotools_compat import event, metric, stats
from gotools_compat.export import prometheus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    method = event.new_string_key("method")
    route = event.new_string_key("route")
    m = stats.Float64("contention_latency", "latency", "s")
    metric.HistogramFloat64("contention_latency_seconds", "latency", LATENCY_BUCKETS,
                            keys=[method, route], max_rows=args.series + 1).record(m)
    pairs = [labels for labels, _ in latency_workload(args.series, 0, 1)]
    contexts = [event.label(None, method.of(a), route.of(b)) for a, b in pairs]
    for ctx in contexts:
        m.record(ctx, 0.1)
    exp = prometheus.new()
    exp.render()  # build the label caches once
    n = len(contexts)
    values = [0.001 * (i % 997) for i in range(args.records)]

    def record_batch() -> float:
        record = m.record
        start = time.perf_counter()
        for i, v in enumerate(values):
            record(contexts[i % n], v)
        return time.perf_counter() - start

    def busy(stop: threading.Event) -> None:
        x = 0
        while not stop.is_set():
            for _ in range(1000):
                x += 1

    scrapes = [0]

    def scrape(stop: threading.Event) -> None:
        while not stop.is_set():
            exp.render()
            scrapes[0] += 1

    def with_thread(target: Optional[Callable[[threading.Event], None]]) -> float:
        if target is None:
            return record_batch()
        stop = threading.Event()
        thread = threading.Thread(target=target, args=(stop,))
        thread.start()
        time.sleep(0.05)  # let it get going
        try:
            return record_batch()
        finally:
            stop.set()
            thread.join()

    results: dict[str, List[float]] = {"alone": [], "busy": [], "scrape": []}
    for _ in range(args.repeat):
        results["alone"].append(with_thread(None))
        results["busy"].append(with_thread(busy))
        results["scrape"].append(with_thread(scrape))
    med = {k: statistics.median(v) for k, v in results.items()}
    slow_busy = med["busy"] / med["alone"]
    slow_scrape = med["scrape"] / med["alone"]
    print("series=%d records=%d repeat=%d scrapes during runs=%d"
          % (args.series, args.records, args.repeat, scrapes[0]))
    for k in results:
        print("  %-6s median %7.1f ms  (%.2f us/record)" % (k, med[k] * 1e3,
                                                           med[k] / args.records * 1e6))
    print("slowdown busy thread   %.2fx" % slow_busy)
    print("slowdown scrape thread %.2fx" % slow_scrape)
    print("ratio scrape/busy      %.3fx  (issue: <= 1.1x)" % (slow_scrape / slow_busy))


if __name__ == "__main__":
    main()
