"""The live pages' figures (issue 15), in one run.

    python benchmarks/bench_pages.py [--repeat 5] [--only json|render|ingest|assets]

- ``/metrics.json`` of 10,000 series (13-bucket histograms; and counters),
  built from the agent's store, and from the in-process exporter's rows;
  beside it, rendering /metrics of the same store (the reference).
  Target: <= 100 ms.
- The page with 200 histogram cards in headless Chromium: from navigation
  start to the first render done and the page idle (requestIdleCallback).
  Target: <= 1 s.
- gRPC ingest of a 10,000-series store re-sent by a client process, with
  and without one page open on ``/`` (polling at the agent's interval).
  Target: the page costs <= 2% (ratio >= 0.98).
- Every page asset together.  Target: <= 100 KB.

Medians of --repeat runs (a noisy 2-core machine).
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, List

from bench_agent import BATCH, batch

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.metrics.v1 import metrics_service_pb2_grpc  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

from gotools_compat._pages import Texts  # noqa: E402
from gotools_compat.agent import Agent, _protorequest  # noqa: E402
from gotools_compat.agent._render import render_parts  # noqa: E402

SERIES = 10_000
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def fill(agent: Agent, requests: List[Any]) -> None:
    store = agent._store
    for request in requests:
        export = _protorequest.export(_protorequest.parse(request.SerializeToString()))
        store.ingest(store.sender(_protorequest.node_of(export.node)), export.metrics)


def counters(b: int) -> Any:
    request = batch(0)
    metric = request.metrics[0]
    metric.metric_descriptor.name = "requests"
    metric.metric_descriptor.type = metrics_pb2.MetricDescriptor.CUMULATIVE_INT64
    for i, series in enumerate(metric.timeseries):
        series.label_values[0].value = "m%d" % (b * BATCH + i)
        series.points[0].int64_value = 1000 + i
    return request


def agent_json(kind: str, make: Callable[[int], Any], repeat: int) -> None:
    agent = Agent("127.0.0.1:0", None)
    fill(agent, [make(b) for b in range(SERIES // BATCH)])
    snapshot = agent._snapshot
    data = agent._pages

    def cold() -> bytes:  # every series changed since the last answer
        data.texts = Texts()
        return data.build(snapshot(), 2.0)

    body = cold()
    ours = median_ms(cold, repeat)
    warm = median_ms(lambda: data.build(snapshot(), 2.0), repeat)
    text = median_ms(lambda: render_parts(snapshot()), repeat)
    print("/metrics.json, agent, %d %s series: %6.1f ms, unchanged since the last answer %5.1f"
          " ms (%4.2f MB)   /metrics text: %5.1f ms   (target <= 100 ms) %s"
          % (SERIES, kind, ours, warm, len(body) / 1e6, text, "ok" if ours <= 100 else "MISSED"))


def figure_json(repeat: int) -> None:
    agent_json("histogram", batch, repeat)
    agent_json("counter", counters, repeat)
    # The in-process exporter: rows of one histogram metric.
    from gotools_compat import event, metric, stats
    from gotools_compat.export import prometheus
    from gotools_compat.export._prometheus_pages import PageData

    key = event.new_string_key("method")
    latency = stats.Float64("bench_pages_ms", "", "ms")
    metric.HistogramFloat64("bench_pages", "", [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000,
                                                5000, 10000, 15000], keys=[key],
                            max_rows=SERIES + 1).record(latency)
    for i in range(SERIES):
        latency.record(event.label(None, key.of("m%d" % i)), float(i % 3000))
    exporter = prometheus.new()
    pages = PageData(exporter, 2.0)

    def cold() -> bytes:
        pages.texts = Texts()
        return pages.build(2.0)

    ours = median_ms(cold, repeat)
    warm = median_ms(lambda: pages.build(2.0), repeat)
    text = median_ms(exporter.render, repeat)
    print("/metrics.json, serve(), %d histogram rows: %6.1f ms, unchanged since the last answer"
          " %5.1f ms   /metrics text: %5.1f ms   (target <= 100 ms) %s"
          % (SERIES, ours, warm, text, "ok" if ours <= 100 else "MISSED"))


def histogram_families(n: int) -> Any:
    request = batch(0)
    template = request.metrics[0]
    del request.metrics[:]
    for i in range(n):
        metric = request.metrics.add()
        metric.CopyFrom(template)
        metric.metric_descriptor.name = "latency_%03d" % i
        del metric.timeseries[1:]
    return request


def figure_render(repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    with Agent("127.0.0.1:0", "127.0.0.1:0") as agent:
        fill(agent, [histogram_families(200)])
        url = "http://127.0.0.1:%d/#q=latency_" % agent.prometheus_port
        runs = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for _ in range(repeat + 1):  # the first warms the browser's caches
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.wait_for_function("() => document.body.dataset.cards === '200'")
                runs.append(page.evaluate(
                    "() => new Promise(r => requestIdleCallback(() => r(performance.now())))"))
                bars = page.evaluate("() => document.querySelectorAll('rect[data-le]').length")
                assert bars == 200 * 14, bars
                page.close()
            browser.close()
    ms = statistics.median(runs[1:])
    print("page with 200 histogram cards, navigation to rendered and idle: %6.0f ms"
          "   (target <= 1000 ms) %s" % (ms, "ok" if ms <= 1000 else "MISSED"))


def client(port: int, rounds: int) -> None:
    """Runs in the child process: re-send the same 10,000 series ``rounds`` times."""
    import grpc

    requests = [batch(b) for b in range(SERIES // BATCH)]
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        list(stub.Export(iter(requests), timeout=60))  # the store, and a warm connection
        start = time.perf_counter()
        list(stub.Export(iter(requests * rounds), timeout=600))
    print(time.perf_counter() - start)


def ingest_rate(agent: Agent, rounds: int) -> float:
    proc = subprocess.run([sys.executable, __file__, "--client", str(agent.port), str(rounds)],
                          stdout=subprocess.PIPE, text=True, check=True)
    return rounds * SERIES / float(proc.stdout.strip().splitlines()[-1])


def figure_ingest(repeat: int, rounds: int) -> None:
    from playwright.sync_api import sync_playwright

    with Agent("127.0.0.1:0", "127.0.0.1:0") as agent, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ingest_rate(agent, 2)  # warm up
        without, with_page, polls, paces = [], [], [], []
        for _ in range(repeat):
            without.append(ingest_rate(agent, rounds))
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto("http://127.0.0.1:%d/" % agent.prometheus_port)
            page.wait_for_selector("[data-metric]")
            with_page.append(ingest_rate(agent, rounds))
            polls.append(int(page.get_attribute("body", "data-polls") or 0))
            status = page.text_content("#status") or ""
            paces.append(status.rsplit("every ", 1)[-1].rstrip(" s"))
            page.close()
        browser.close()
    a, b = statistics.median(without), statistics.median(with_page)
    print("gRPC ingest, 10,000-series store: without a page %8.0f series/s, with one page %8.0f"
          " series/s (%s polls a run, every %s s): ratio %.3f   (target >= 0.98) %s"
          % (a, b, "/".join(map(str, polls)), "/".join(paces), b / a,
             "ok" if b / a >= 0.98 else "MISSED"))


def figure_assets() -> None:
    from gotools_compat._pages import assets

    names = ["index.html", "tracez.html"] + list(assets.ASSETS)
    total = assets.total_bytes()
    zipped = sum(len(gzip.compress(assets.asset_bytes(n))) for n in names)
    print("page assets (%d files): %d bytes (%.1f KB; %.1f KB gzipped)   (target <= 100 KB) %s"
          % (len(names), total, total / 1024, zipped / 1024, "ok" if total <= 102400
             else "MISSED"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=40, help="ingest: store re-sends per run")
    parser.add_argument("--only", choices=("json", "render", "ingest", "assets"))
    parser.add_argument("--client", nargs=2, type=int)
    args = parser.parse_args()
    if args.client:
        client(*args.client)
        return
    if args.only in (None, "json"):
        figure_json(args.repeat)
    if args.only in (None, "render"):
        figure_render(args.repeat)
    if args.only in (None, "ingest"):
        figure_ingest(args.repeat, args.rounds)
    if args.only in (None, "assets"):
        figure_assets()


if __name__ == "__main__":
    main()
