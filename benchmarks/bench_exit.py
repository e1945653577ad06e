"""Exit delay after connect() with no agent (issue 13): ours vs the OpenTelemetry SDK's.

Each case is a fresh child process running the same script: import, define a
metric, connect (or not: the baseline), record one value, end.  The figure is
the time from the script's last line to the end of the process, the median
of REPEAT runs: what a command-line tool that exports pauses at every exit.

"Nothing listening": every exporter points at a closed port of 127.0.0.1
(connections are refused), with its default timeouts.  The peers are the
SDK's own pipeline, a ``MeterProvider`` with a ``PeriodicExportingMetricReader``
and the OTLP/HTTP or OTLP/gRPC exporter, shut down at exit as the SDK does.
"Hung": the port accepts and never answers; every exporter gets a 1 s timeout
(the SDK exporters their ``timeout=1``), which bounds the exit.

Target: the delay attributable to us (ours minus the baseline) <= 0.2 s with
nothing listening.  Run: ``.venv/bin/python benchmarks/bench_exit.py``.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional

REPEAT = 5
HUNG_TIMEOUT = 1.0
TARGET = 0.2

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OTEL = all(importlib.util.find_spec(name) is not None for name in (
    "opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.grpc"))

# The same script for every case; only the connect differs.
CHILD = """
import sys, time
from gotools_compat import metric, stats
from gotools_compat.export import ocagent
case, port, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3]
timeout = None if timeout == "default" else float(timeout)
if sys.argv[4] == "otel":
    from gotools_compat.export import otel
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
        OTLPMetricExporter as GrpcExporter)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    url, target = "http://127.0.0.1:%d/v1/metrics" % port, "127.0.0.1:%d" % port
    sdk = {} if timeout is None else {"timeout": timeout}
m = stats.Float64("bench_exit_latency", "", "ms")
metric.Scalar("bench_exit_count").count_float64(m)
if case == "ocagent":
    config = ocagent.Config(address="http://127.0.0.1:%d" % port)
    if timeout is not None:
        config.timeout = timeout
    ocagent.connect(config)
elif case == "otel-http":
    otel.connect(HttpExporter(endpoint=url, **sdk), timeout=timeout)
elif case == "otel-grpc":
    otel.connect(GrpcExporter(endpoint=target, insecure=True, **sdk), timeout=timeout)
elif case.startswith("sdk-"):
    exporter = (HttpExporter(endpoint=url, **sdk) if case == "sdk-http"
                else GrpcExporter(endpoint=target, insecure=True, **sdk))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader])  # shut down at exit
    provider.get_meter("bench").create_counter("bench_exit_sdk_count").add(1)
m.record(None, 1.0)
print(time.time(), flush=True)
"""

LABELS = {
    "baseline": "baseline: the same script, no exporter",
    "ocagent": "ours: export.ocagent",
    "otel-http": "ours: export.otel + OTLP/HTTP exporter",
    "otel-grpc": "ours: export.otel + OTLP/gRPC exporter",
    "sdk-http": "peer: SDK MeterProvider + OTLP/HTTP exporter",
    "sdk-grpc": "peer: SDK MeterProvider + OTLP/gRPC exporter",
}


def exit_delay(case: str, port: int, timeout: str) -> float:
    """Seconds from the child's last line to its end."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, case, str(port), timeout, "otel" if OTEL else "-"],
        capture_output=True, text=True, timeout=120, env=ENV)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit("case %s failed:\n%s" % (case, done.stderr))
    return ended - float(done.stdout.split()[-1])


def median_delays(cases: List[str], port: int, timeout: str) -> Dict[str, float]:
    """Each case's median; the runs take turns, so that a busy moment hits every case."""
    runs: Dict[str, List[float]] = {case: [] for case in cases}
    for _ in range(REPEAT):
        for case in cases:
            runs[case].append(exit_delay(case, port, timeout))
    return {case: statistics.median(delays) for case, delays in runs.items()}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Hung:
    """A port that accepts every connection and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self.listener.getsockname()[1]
        self.held: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


def table(title: str, delays: Dict[str, float], baseline: float,
          target: Optional[float]) -> None:
    print(title)
    for case, delay in delays.items():
        over = delay - baseline
        verdict = ""
        if target is not None and not case.startswith(("sdk-", "baseline")):
            verdict = "  (target <= %g s) %s" % (target, "ok" if over <= target else "MISSED")
        print("  %-48s exit %7.3f s  over baseline %+7.3f s%s"
              % (LABELS[case], delay, over, verdict))


def ratios(delays: Dict[str, float]) -> None:
    pairs = [("ocagent", "sdk-http"), ("ocagent", "sdk-grpc"), ("otel-http", "sdk-http"),
             ("otel-grpc", "sdk-grpc")]
    for ours, peer in pairs:
        if ours in delays and peer in delays:
            print("  %-30s / %-24s ratio %7.3f" % (ours, peer, delays[ours] / delays[peer]))


def main() -> None:
    cases = ["ocagent"] + (["otel-http", "otel-grpc", "sdk-http", "sdk-grpc"] if OTEL else [])
    port = closed_port()
    exit_delay("baseline", port, "default")  # warm the bytecode cache
    refused = median_delays(["baseline"] + cases, port, "default")
    baseline = refused["baseline"]
    print("exit delay, median of %d child processes (%s)" % (REPEAT, sys.version.split()[0]))
    table("nothing listening on 127.0.0.1:%d (default timeouts):" % port, refused, baseline,
          TARGET)
    ratios(refused)
    hung = Hung()
    try:
        stalled = median_delays(cases, hung.port, str(HUNG_TIMEOUT))
    finally:
        hung.close()
    table("a hung agent (accepts, never answers), timeout %g s:" % HUNG_TIMEOUT, stalled,
          baseline, None)
    for case, delay in stalled.items():
        if not case.startswith("sdk-"):
            print("  %-48s within timeout + 0.5 s: %s" % (
                LABELS[case], "ok" if delay <= HUNG_TIMEOUT + 0.5 else "MISSED"))
    if not OTEL:
        print("(the otel extra and opentelemetry-exporter-otlp-proto-grpc are not installed:"
              " export.otel and the SDK peers were skipped)")


if __name__ == "__main__":
    main()
