"""The tutorial end to end: examples/demo.py -> agent -> real Prometheus (issue 7)."""

from __future__ import annotations

import bisect
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Callable, Dict, Iterator, List, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.prometheus_server import PrometheusServer, binary, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "examples", "demo.py")
EXAMPLE_CONFIG = os.path.join(ROOT, "examples", "prometheus.yml")
BUCKETS = [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]
DEMO_ARGS = ["--count", "200", "--no-sleep", "--seed", "1", "--rate", "0.5"]

needs_prometheus = pytest.mark.skipif(
    binary() is None and not os.environ.get("CI"),
    reason="Debian's prometheus package is not installed (CI installs it)")


class TutorialPrometheus(PrometheusServer):
    """Prometheus with examples/prometheus.yml, pointed at the test's agent port."""

    def __init__(self, agent_metrics: str) -> None:
        super().__init__([agent_metrics])

    def _write_config(self) -> str:
        with open(EXAMPLE_CONFIG) as f:
            config = f.read()
        assert "127.0.0.1:8844" in config and "scrape_interval: 5s" in config
        config = config.replace("127.0.0.1:8844", self.targets[0])
        config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
        path = os.path.join(self.dir, "prometheus.yml")
        with open(path, "w") as f:
            f.write(config)
        return path


def scrape(port: int) -> str:
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return str(r.read().decode("utf-8"))


def wait_for(check: Callable[[], object], what: str, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def latencies(stdout: str) -> List[int]:
    return [int(v) for v in re.findall(r"^Latency:  (\d+)$", stdout, re.M)]


def expected_histogram(values: List[int]) -> Dict[str, float]:
    per_bucket = [0] * (len(BUCKETS) + 1)
    for v in values:
        per_bucket[bisect.bisect_left(BUCKETS, v)] += 1
    cumulative, running = {}, 0
    for bound, count in zip([str(b) for b in BUCKETS] + ["+Inf"], per_bucket):
        running += count
        cumulative[bound] = float(running)
    return cumulative


def agent_histogram(text: str) -> Tuple[Dict[str, float], float, float]:
    buckets: Dict[str, float] = {}
    count = total = -1.0
    for family in text_string_to_metric_families(text):
        if family.name != "promdemo_latencyDistribution":
            continue
        for sample in family.samples:
            assert sample.labels.get("job") == "go-tools-test"
            assert sample.labels.get("vendor") == "otc"
            if sample.name.endswith("_bucket"):
                le = sample.labels["le"]
                buckets[le if le == "+Inf" else str(int(float(le)))] = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
    return buckets, count, total


def check_pipeline(prometheus_port: int, values: List[int], prom: PrometheusServer) -> None:
    assert len(values) == 200
    buckets, count, total = agent_histogram(scrape(prometheus_port))
    assert count == 200
    assert total == sum(values)
    assert buckets == expected_histogram(values)
    result = prom.wait_for(
        'promdemo_latencyDistribution_count{job="go-tools-test"}',
        lambda r: len(r) == 1 and float(r[0]["value"][1]) == 200)
    assert result[0]["metric"]["vendor"] == "otc"


@pytest.fixture
def agent() -> Iterator[Tuple[int, int]]:
    listen, prom_port = free_port(), free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gotools_compat.agent", "--listen", "127.0.0.1:%d" % listen,
         "--prometheus", "127.0.0.1:%d" % prom_port],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: scrape(prom_port) is not None, "the agent")
        yield listen, prom_port
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
        assert process.returncode == 0, err
        assert b"Traceback" not in err


@needs_prometheus
def test_demo_to_a_running_agent_to_prometheus(agent: Tuple[int, int]) -> None:
    listen, prom_port = agent
    with TutorialPrometheus("127.0.0.1:%d" % prom_port) as prom:
        out = subprocess.run(
            [sys.executable, DEMO, "--agent", "http://127.0.0.1:%d" % listen] + DEMO_ARGS,
            capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr
        check_pipeline(prom_port, latencies(out.stdout), prom)


@needs_prometheus
def test_demo_in_its_default_embedded_mode() -> None:
    listen, prom_port = free_port(), free_port()
    with TutorialPrometheus("127.0.0.1:%d" % prom_port) as prom:
        process = subprocess.Popen(
            [sys.executable, DEMO, "--listen", "127.0.0.1:%d" % listen,
             "--prometheus", "127.0.0.1:%d" % prom_port] + DEMO_ARGS,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            lines = []
            for line in process.stdout:
                lines.append(line)
                if line.startswith("Sent "):
                    break
            assert lines[0] == "Agent running in this process; metrics at " \
                "http://127.0.0.1:%d/metrics\n" % prom_port
            check_pipeline(prom_port, latencies("".join(lines)), prom)
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl+C
            _, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "Traceback" not in err


def test_two_demos_at_once_give_a_clear_message() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        out = subprocess.run(
            [sys.executable, DEMO, "--listen", "127.0.0.1:%d" % port,
             "--prometheus", "127.0.0.1:%d" % free_port(), "--count", "1", "--no-sleep"],
            capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    assert "cannot listen on 127.0.0.1:%d" % port in out.stderr
    assert "is another demo or gotools-agent running?" in out.stderr


def test_seeded_runs_repeat_exactly() -> None:
    runs = [subprocess.run(
        [sys.executable, DEMO, "--agent", "off", "--count", "50", "--no-sleep", "--seed", "7"],
        capture_output=True, text=True, timeout=60) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert latencies(runs[0].stdout) == latencies(runs[1].stdout)
    assert len(latencies(runs[0].stdout)) == 50
