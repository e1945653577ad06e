"""Every ```python block of README.md runs as written (issue 14).

Each block runs unchanged in a fresh interpreter (``sys.executable``, the
checkout first on the path).  What a block talks to is real and started
here: the ocagent block names gotools-agent's default address, so a
:class:`gotools_compat.agent.Agent` is started on it (if that port is taken,
on a free one, with the block's address changed to it); the OpenTelemetry
block uses OpenTelemetry's standard ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT``, which
is pointed at a receiver on a free port.  A block that serves takes port 0.
Shell blocks are not run.
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat.agent import Agent

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")

# What identifies each block: every block has exactly one of these.
USE, SERVE, OPENCENSUS, SPANS, OTEL = ("ocagent.connect(", "prometheus.new(", "TagContext.set(",
                                       "event.start_span(", "otel.connect(")
MARKERS = (USE, SERVE, OPENCENSUS, SPANS, OTEL)


def python_blocks(text: str) -> List[Tuple[int, str]]:
    """(first line number, code) of each ```python block; list-indented ones dedented."""
    blocks: List[Tuple[int, str]] = []
    start: Optional[int] = None
    lines: List[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if start is None:
            if line.strip() == "```python":
                start, lines = number + 1, []
        elif line.strip() == "```":
            blocks.append((start, textwrap.dedent("\n".join(lines)) + "\n"))
            start = None
        else:
            lines.append(line)
    assert start is None, "README.md: the ```python block at line %d is not closed" % start
    return blocks


def block(marker: str) -> str:
    [code] = [code for _, code in python_blocks(README) if marker in code]
    return code


def run(code: str, tmp_path: Path, env: Optional[Dict[str, str]] = None
        ) -> Tuple[int, int, str, str]:
    """(pid, exit status, stdout, stderr) of ``code`` run as a script."""
    script = tmp_path / "readme_block.py"
    script.write_text(code, encoding="utf-8")
    environ = dict(os.environ, **(env or {}))
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + ([environ["PYTHONPATH"]] if environ.get("PYTHONPATH") else []))
    process = subprocess.Popen([sys.executable, str(script)], cwd=str(tmp_path), env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.pid, process.returncode, out, err


def test_every_python_block_is_one_that_this_module_runs() -> None:
    blocks = python_blocks(README)
    matched = {start: [m for m in MARKERS if m in code] for start, code in blocks}
    assert {start: len(found) for start, found in matched.items()} == {
        start: 1 for start, _ in blocks}, "give each new README block a test here"
    assert sorted(found[0] for found in matched.values()) == sorted(MARKERS)


def test_use_block_sends_its_histogram_and_count_to_a_running_agent(tmp_path: Path) -> None:
    code = block(USE)
    found = re.search(r'address="http://127\.0\.0\.1:(\d+)"', code)
    assert found, "the block names no 127.0.0.1 agent address"
    port = int(found.group(1))
    try:
        agent = Agent("127.0.0.1:%d" % port, "127.0.0.1:0").start()
    except OSError:
        # The port the block names is taken: by a gotools-agent the developer
        # runs, or as the ephemeral port of another test's client connection
        # (55678 is inside Linux's ephemeral range).  The block then runs
        # pointed at an agent on a free port instead; nothing else changes.
        agent = Agent("127.0.0.1:0", "127.0.0.1:0").start()
        code = code.replace(found.group(0), found.group(0).replace(
            ":%d" % port, ":%d" % agent.port))
    try:
        pid, status, out, err = run(code, tmp_path)
        assert agent.prometheus_port is not None
        url = "http://127.0.0.1:%d/metrics" % agent.prometheus_port
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        agent.stop()
    assert (status, out, err) == (0, "", "")
    sender = {"vendor": "otc", "job": "go-tools-test", "method": "hover",
              "instance": "%s:%d" % (socket.gethostname(), pid)}
    got: Dict[Tuple[str, Optional[float]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            bound = labels.pop("le", None)
            if sample.name.startswith("promdemo_latency") and labels == sender:
                got[sample.name, None if bound is None else float(bound)] = sample.value
    name = "promdemo_latencyDistribution"
    expected: Dict[Tuple[str, Optional[float]], float] = {
        (name + "_sum", None): 12.5, (name + "_count", None): 1,
        ("promdemo_latency_count_total", None): 1}
    for le in [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000, math.inf]:
        expected[name + "_bucket", le] = 0 if le < 12.5 else 1
    assert got == expected, text


SERVED = """\
# HELP myapp_requests_count_total requests served
# TYPE myapp_requests_count_total counter
myapp_requests_count_total 1
"""


def test_serve_block_prints_what_the_readme_says_it_prints(tmp_path: Path) -> None:
    assert "It prints:\n\n```\n" + SERVED + "```\n" in README
    assert run(block(SERVE), tmp_path)[1:] == (0, SERVED, "")


def test_opencensus_block_prints_one_row_holding_both_records(tmp_path: Path) -> None:
    # 7.0 through our record, 10.0 through MeasurementMap: both in le=10.
    assert run(block(OPENCENSUS), tmp_path)[1:] == (
        0, "latency_dist ['hover'] [0, 2, 0, 0]\n", "")


def test_spans_block_writes_its_events_the_way_go_does(tmp_path: Path) -> None:
    _, status, out, err = run(block(SPANS), tmp_path)
    assert (status, out) == (0, "")
    stamp = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d "
    ids = r"([0-9a-f]{32}:[0-9a-f]{16})"
    pattern = "\n".join([
        "start: textDocument/hover " + ids,
        stamp + "cache miss",
        "\tfile=/no/such/file.go",
        stamp + r"read failed: \[Errno 2\] No such file or directory: '/no/such/file\.go'",
        r"finish: textDocument/hover \1",
        "start: textDocument/definition " + ids,
        stamp + "found",
        "\tfile=main.go",
        r"finish: textDocument/definition \2",
    ]) + "\n"
    assert re.fullmatch(pattern, err), err


def test_otel_block_exports_its_count_to_the_otlp_endpoint(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http.metric_exporter")
    from tests.otlp_receiver import Receiver, find_metric

    receiver = Receiver().start()
    try:
        status, out, err = run(block(OTEL), tmp_path, {
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": receiver.endpoint})[1:]
        [request] = receiver.wait_for(1)
    finally:
        receiver.stop()
    assert (status, out, err) == (0, "", "")
    count = find_metric(request, "requests_count")[1]
    assert count.sum.is_monotonic and count.sum.data_points[0].as_int == 1
