"""Does a scrape stall ingest, and does its time follow the series present? (issue 13)

    python benchmarks/bench_agent_scrape_stall.py [--series 1000000] [--repeat 5]
        [--senders 10000] [--names 1000]

- Stall: a Store holding --series series (20 senders x 20 metrics, one in
  five a 13-bucket histogram) is rendered (snapshot + render_parts, the
  pieces GET /metrics writes; and snapshot + render, one bytes) again and
  again in the main thread, while another thread ingests small exports (10
  gauge series, read from protobuf as the gRPC receiver does) every 2 ms
  and times each ingest call.  Printed: the longest and the 99th-percentile
  ingest call while a scrape runs, the same with no scrape (the floor), and
  the scrape time; medians over --repeat scrapes.  The target is <= 50 ms
  longest wait at 1,000,000 series.
- Sparse: --senders senders over --names metric names, each sender with 1 or
  2 of them; then 10 times the names (same series: same time expected), then
  twice the senders (twice the series: twice the time).  The loop of the old
  snapshot (every name x every sender) over the same store is timed for
  comparison, and one family of one sender with the same number of series.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any, List, Tuple

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

from gotools_compat.agent import _protorequest  # noqa: E402
from gotools_compat.agent._render import render, render_parts  # noqa: E402
from gotools_compat.agent._store import Store  # noqa: E402

BOUNDS = (0.0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000)
SENDERS = 20
METRICS = 20  # one in five a histogram; 50,000 series a metric at 1,000,000
GAUGE, CUMULATIVE, HISTOGRAM = 2, 5, 6  # MetricDescriptor.Type


def node(service: str, pid: int = 1) -> Any:
    return common_pb2.Node(identifier={"host_name": "bench", "pid": pid},
                           service_info={"name": service})


def fill(store: Store, series: int) -> None:
    per = series // (SENDERS * METRICS)
    for s in range(SENDERS):
        sender = store.sender(node("svc%d" % s))
        for m in range(METRICS):
            kind = HISTOGRAM if m % 5 == 4 else (GAUGE if m % 2 else CUMULATIVE)
            desc = ("metric%d" % m, "help", "ms", kind, ("method", "code"))
            rows: List[Tuple[List[str], Any]]
            if kind == HISTOGRAM:
                rows = [(["m%d" % i, "200"], (140, 1.5 * i, BOUNDS, [10] * 14))
                        for i in range(per)]
            else:
                rows = [(["m%d" % i, "200"], i * 1.5) for i in range(per)]
            for start in range(0, per, 10_000):
                store.ingest(sender, [(desc, rows[start:start + 10_000])])


def small_export() -> bytes:
    series = [metrics_pb2.TimeSeries(label_values=[{"value": "k%d" % i, "has_value": True}],
                                     points=[{"double_value": 1.0 + i}]) for i in range(10)]
    metric = metrics_pb2.Metric(metric_descriptor={"name": "live", "type": GAUGE,
                                                   "label_keys": [{"key": "k"}]},
                                timeseries=series)
    raw: bytes = metrics_service_pb2.ExportMetricsServiceRequest(
        node=node("live"), metrics=[metric]).SerializeToString()
    return raw


class Ingester(threading.Thread):
    """Ingests a small export every 2 ms; keeps (start, seconds) of each call."""

    def __init__(self, store: Store) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.body = small_export()
        self.calls: List[Tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        store, body = self.store, self.body
        while not self.stop.is_set():
            start = time.perf_counter()
            export = _protorequest.export(_protorequest.parse(body))
            assert export.node is not None
            store.ingest(store.sender(_protorequest.node_of(export.node)), export.metrics)
            self.calls.append((start, time.perf_counter() - start))
            time.sleep(0.002)


def waits(calls: List[Tuple[float, float]], begin: float, end: float) -> List[float]:
    """Durations of the calls that overlapped [begin, end]."""
    return [d for s, d in calls if s <= end and s + d >= begin]


def p99(values: List[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def stall(series: int, repeat: int) -> None:
    store = Store(namespace="", max_series=series + 1_000)  # room for the live sender
    start = time.perf_counter()
    fill(store, series)
    print("stall: %d series stored in %.1f s" % (sum(len(i) for _, i in store.snapshot()),
                                               time.perf_counter() - start))
    ingester = Ingester(store)
    ingester.start()
    time.sleep(1.0)
    quiet_end = time.perf_counter()
    idle = [d for s, d in ingester.calls if s < quiet_end]
    print("  no scrape: ingest call longest %.1f ms, p99 %.2f ms (%d calls)"
          % (max(idle) * 1e3, p99(idle) * 1e3, len(idle)))
    def in_parts() -> int:  # the pieces a server writes one by one
        return sum(map(len, render_parts(store.snapshot())))

    def in_one() -> int:
        return len(render(store.snapshot()))

    for label, scrape in (("render_parts", in_parts), ("render", in_one)):
        rows = []
        for _ in range(repeat):
            begin = time.perf_counter()
            size = scrape()  # the text is freed before the clock stops, as after a GET
            end = time.perf_counter()
            during = waits(ingester.calls, begin, end)
            rows.append((end - begin, max(during), p99(during), len(during)))
            time.sleep(0.2)
        print("  scrape with %s (%.0f MB): ingest call longest %.1f ms, p99 %.2f ms "
              "(%d calls a scrape); scrape %.2f s; medians of %d; longest of all %.1f ms "
              "(target: <= 50 ms)"
              % (label, size / 1e6, statistics.median(r[1] for r in rows) * 1e3,
                 statistics.median(r[2] for r in rows) * 1e3,
                 statistics.median(r[3] for r in rows), statistics.median(r[0] for r in rows),
                 repeat, max(r[1] for r in rows) * 1e3))
    ingester.stop.set()
    ingester.join()


def scrape_time(store: Store, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        render(store.snapshot())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sparse_store(senders: int, names: int) -> Tuple[Store, int]:
    """``senders`` senders over ``names`` metric names, 1 or 2 names each."""
    store = Store(namespace="", max_senders=max(senders, 10_000))
    count = 0
    for s in range(senders):
        sender = store.sender(node("svc", s + 1))
        for k in range(1 + s % 2):
            name = "metric%d" % ((s * 7 + k * 13) % names)
            store.ingest(sender, [((name, "", "", GAUGE, ()), [([], float(s))])])
            count += 1
    return store, count


def sparse(senders: int, names: int, repeat: int) -> None:
    print("sparse: each sender has 1 or 2 of the names (scrape: snapshot + render)")
    for n_senders, n_names in ((senders, names), (senders, names * 10), (senders * 2, names)):
        store, count = sparse_store(n_senders, n_names)
        took = scrape_time(store, repeat)
        # The old snapshot visited every family x every sender, under the lock.
        all_senders = list(store._senders.values())
        families = list(store._families)
        start = time.perf_counter()
        sum(1 for n in families for s in all_senders if n in s.series)
        old_loop = time.perf_counter() - start
        print("  %6d senders x %6d names, %6d series: scrape %6.1f ms (%.2f us a series); "
              "the old snapshot's names x senders loop alone: %6.0f ms"
              % (n_senders, n_names, count, took * 1e3, took / count * 1e6, old_loop * 1e3))
    dense = Store(namespace="")
    dense.ingest(dense.sender(node("svc")), [(("metric", "", "", GAUGE, ("i",)),
                                              [(["%d" % i], float(i)) for i in range(count)])])
    took = scrape_time(dense, repeat)
    print("  the same %d series in one family of one sender: %.1f ms (%.2f us a series)"
          % (count, took * 1e3, took / count * 1e6))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--senders", type=int, default=10_000)
    parser.add_argument("--names", type=int, default=1_000)
    parser.add_argument("--only", choices=("stall", "sparse"), help="run one case only")
    args = parser.parse_args()
    if args.only in (None, "stall"):
        stall(args.series, args.repeat)
    if args.only in (None, "sparse"):
        sparse(args.senders, args.names, args.repeat)


if __name__ == "__main__":
    main()
