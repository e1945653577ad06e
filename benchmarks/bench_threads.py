"""Two threads doing the same total work as one: wall time <= 1.05x (core issue)."""

from __future__ import annotations

import statistics
import threading
import time

from _common import TUTORIAL

from gotools_compat import event, metric, stats, todo

TOTAL = 400_000


def run(threads: int, measure: stats.Float64, ctx: event.Context) -> float:
    share = TOTAL // threads
    record = measure.record

    def work() -> None:
        for i in range(share):
            record(ctx, float(i & 1023))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def main() -> None:
    key = event.new_string_key("k")
    m = stats.Float64("bench_threads", "d", "ms")
    metric.HistogramFloat64("bench_threads_h", "d", TUTORIAL, keys=[key]).record(m)
    ctx = event.label(todo(), key.of("v"))
    ratios = []
    for _ in range(7):
        one = run(1, m, ctx)
        two = run(2, m, ctx)
        ratios.append(two / one)
    ratio = statistics.median(ratios)
    print("%-58s ratio %7.3f  (target <= 1.05) %s"
          % ("2 threads / 1 thread, same total records (wall time)", ratio,
             "ok" if ratio <= 1.05 else "MISSED"))


if __name__ == "__main__":
    main()
