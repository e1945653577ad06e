"""gotools-agent speed and memory figures (issue 5), against the peers, in one run.

    python benchmarks/bench_agent.py [--series 50000] [--repeat 5]

- gRPC ingest: a client process streams batches of 1,000 13-bucket histogram
  series; the agent runs here.  Rate per wall second and per CPU second of
  the agent process (all its threads: the one-core figure).
- HTTP/JSON ingest: the same series as JSON bodies over keep-alive HTTP/1.1;
  the peer is json_format.Parse of the same bodies.
- Scrape of every stored series: our renderer and a full GET /metrics, against
  prometheus_client's generate_latest over the same families.
- Memory per stored series (tracemalloc, store only).

Medians of --repeat runs (a noisy 2-core machine).
"""

from __future__ import annotations

import argparse
import gc
import http.client
import statistics
import subprocess
import sys
import time
import tracemalloc
from itertools import accumulate
from typing import Any, Callable, Tuple

from google.protobuf import json_format

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import (  # noqa: E402
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

from gotools_compat.agent import Agent  # noqa: E402
from gotools_compat.agent import _protorequest  # noqa: E402
from gotools_compat.agent._store import Store  # noqa: E402

BOUNDS = [0.0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]
BATCH = 1000


def batch(b: int, with_node: bool = True) -> Any:
    series = []
    for i in range(BATCH):
        n = b * BATCH + i
        counts = [(n + k) % 7 + k * 300 for k in range(len(BOUNDS) + 1)]
        series.append(metrics_pb2.TimeSeries(
            start_timestamp={"seconds": 1_700_000_000},
            label_values=[{"value": "m%d" % n, "has_value": True},
                          {"value": "200", "has_value": True}],
            points=[{"timestamp": {"seconds": 1_700_000_100}, "distribution_value": {
                "count": sum(counts), "sum": 1234.5 + n,
                "bucket_options": {"explicit": {"bounds": BOUNDS}},
                "buckets": [{"count": c} for c in counts]}}]))
    metric = metrics_pb2.Metric(
        metric_descriptor={"name": "latency", "description": "rpc latency", "unit": "ms",
                           "type": metrics_pb2.MetricDescriptor.CUMULATIVE_DISTRIBUTION,
                           "label_keys": [{"key": "method"}, {"key": "code"}]},
        timeseries=series)
    request = metrics_service_pb2.ExportMetricsServiceRequest(metrics=[metric])
    if with_node:
        request.node.CopyFrom(common_pb2.Node(identifier={"host_name": "bench", "pid": 1},
                                              service_info={"name": "bench"}))
    return request


def client(kind: str, port: int, batches: int) -> None:
    """Runs in the child process: send, then print the wall time taken."""
    import grpc

    requests = [batch(b) for b in range(batches)]
    if kind == "grpc":
        with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
            stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            list(stub.Export(iter(requests[:1]), timeout=60))  # warm the connection
            start = time.perf_counter()
            list(stub.Export(iter(requests), timeout=600))
    else:
        bodies = [json_format.MessageToJson(r).encode() for r in requests]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        start = time.perf_counter()
        for body in bodies:
            conn.request("POST", "/v1/metrics", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200
        conn.close()
    print(time.perf_counter() - start)


def ingest(kind: str, batches: int) -> Tuple[float, float, Agent]:
    """(series per wall second, series per agent CPU second, the agent)."""
    agent = Agent("127.0.0.1:0", "127.0.0.1:0").start()
    proc = subprocess.Popen([sys.executable, __file__, "--client", kind, str(agent.port),
                             str(batches)], stdout=subprocess.PIPE, text=True)
    # The client builds its messages first; measure the agent's CPU only while
    # the client sends (it prints when done), minus idle time before.
    cpu0 = time.process_time()
    out, _ = proc.communicate()
    cpu = time.process_time() - cpu0
    wall = float(out.strip().splitlines()[-1])
    n = batches * BATCH
    return n / wall, n / cpu, agent


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prometheus_client_peer(agent: Agent) -> Callable[[], bytes]:
    from prometheus_client.core import HistogramMetricFamily
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    families = []
    for family, items in agent._store.snapshot():
        if family.kind != "histogram":
            continue
        f = HistogramMetricFamily(family.name, family.help,
                                  labels=["vendor", "job", "instance", "method", "code"])
        for lbl, (bounds, counts, total) in items:
            values = [v.split("=", 1)[1].strip('"') for v in lbl.decode().split(",")]
            les = [str(b) for b in bounds] + ["+Inf"]
            f.add_metric(values, list(zip(les, accumulate(counts))), float(total))
        families.append(f)

    class Collector:
        def collect(self) -> Any:
            return families

    registry = CollectorRegistry()
    registry.register(Collector())  # type: ignore[arg-type]
    return lambda: generate_latest(registry)


def scrape_http(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    conn.close()
    return body


def memory_per_series(batches: int) -> float:
    payloads = [batch(b).SerializeToString() for b in range(batches)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    store = Store()
    for payload in payloads:
        export = _protorequest.export(_protorequest.parse(payload))  # what the gRPC receiver does
        store.ingest(store.sender(_protorequest.node_of(export.node)), export.metrics)
        del export
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store.snapshot()[0][1]) == batches * BATCH
    return used / (batches * BATCH)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--client", nargs=3)
    parser.add_argument("--only", choices=("grpc", "http", "scrape", "memory"),
                        help="run one figure only")
    args = parser.parse_args()
    if args.client:
        client(args.client[0], int(args.client[1]), int(args.client[2]))
        return
    batches = args.series // BATCH

    # The peer, and this machine's speed: the issue measured about 9,000
    # series/s for json_format.Parse alone; a slower figure here means every
    # rate below is proportionally lower than on the machine.
    body = json_format.MessageToJson(batch(0)).encode()
    peer = median_time(lambda: json_format.Parse(body, metrics_service_pb2.
                                                 ExportMetricsServiceRequest()), args.repeat)
    print("peer json_format.Parse alone: %8.0f series/s (the issue's machine: about 9,000)"
          % (BATCH / peer))

    for kind, floor in (("grpc", 100_000), ("http", 30_000)):
        if args.only not in (None, kind):
            continue
        runs = []
        for _ in range(args.repeat):
            wall, cpu, agent = ingest(kind, batches)
            agent.stop()
            runs.append((wall, cpu))
        print("%-4s ingest: %8.0f series/s wall, %8.0f series per agent CPU-second "
              "(target >= %d)" % (kind, statistics.median(r[0] for r in runs),
                                  statistics.median(r[1] for r in runs), floor))

    if args.only in ("grpc", "http"):
        return
    if args.only == "memory":
        print("memory: %.0f bytes per stored 13-bucket series (target <= 1200)"
              % statistics.median(memory_per_series(batches) for _ in range(3)))
        return
    _, _, agent = ingest("grpc", batches)
    try:
        ours = median_time(agent.metrics_text, args.repeat)
        full = median_time(lambda: scrape_http(agent.prometheus_port or 0), args.repeat)
        peer_render = prometheus_client_peer(agent)
        theirs = median_time(peer_render, max(1, min(3, args.repeat)))
        size = len(agent.metrics_text())
    finally:
        agent.stop()
    print("scrape of %d histogram series (%.1f MB): render %.3f s, GET /metrics %.3f s "
          "(target <= 0.5 s)" % (args.series, size / 1e6, ours, full))
    print("prometheus_client generate_latest, same families: %.3f s; ratio ours/theirs "
          "render %.3f, full GET %.3f (target <= 0.05)" % (theirs, ours / theirs, full / theirs))
    print("memory: %.0f bytes per stored 13-bucket series (target <= 1200)"
          % statistics.median(memory_per_series(batches) for _ in range(3)))


if __name__ == "__main__":
    main()
