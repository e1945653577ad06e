"""The opencensus traps the core closes: E13 (utcnow warnings), E14 (threads), no network."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, List

import pytest
from opencensus.common.runtime_context import RuntimeContext
from opencensus.tags import TagContext, TagMap

from gotools_compat import event, metric, stats, todo
from tests.helpers import oc_points


def test_record_and_get_metrics_raise_no_deprecation_warning_under_w_error() -> None:
    # A fresh interpreter with warnings as errors: importing opencensus
    # through us, registering, recording (both paths) and collecting.
    script = textwrap.dedent("""
        from gotools_compat import metric, stats
        from opencensus.stats import stats as oc_stats
        m = stats.Float64("latency", "d", "ms")
        metric.HistogramFloat64("h", "d", buckets=[0, 10]).record(m)
        m.record(None, 3.0)
        mm = oc_stats.stats.stats_recorder.new_measurement_map()
        mm.measure_float_put(metric.opencensus_measure(m), 4.0)
        mm.record()
        [h] = oc_stats.stats.get_metrics()
        print(h.time_series[0].points[0].value.count)
    """)
    out = subprocess.run([sys.executable, "-W", "error", "-c", script],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


@pytest.mark.usefixtures("registry")
def test_with_current_context_carries_ambient_tags_into_an_executor() -> None:
    key = event.new_string_key("tenant")
    m = stats.Float64("m")
    name = metric.Scalar("c", keys=[key]).count_float64(m)
    tags = TagMap()
    tags.insert("tenant", "acme")
    TagContext.set(tags)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            pool.submit(RuntimeContext.with_current_context(lambda: m.record(None, 1.0))).result()
            pool.submit(lambda: m.record(None, 1.0)).result()  # plain: sees no tags (E14)
    finally:
        TagContext.set(None)
    assert {k: p.value for k, p in oc_points(name).items()} == {("acme",): 1, (None,): 1}


@pytest.mark.usefixtures("registry")
def test_an_explicit_context_works_the_same_in_any_thread() -> None:
    key = event.new_string_key("tenant")
    m = stats.Float64("m")
    name = metric.Scalar("c", keys=[key]).count_float64(m)
    ctx = event.label(todo(), key.of("acme"))
    thread = threading.Thread(target=m.record, args=(ctx, 1.0))
    thread.start()
    thread.join()
    assert {k: p.value for k, p in oc_points(name).items()} == {("acme",): 1}


@pytest.mark.usefixtures("registry")
def test_the_core_opens_no_socket_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: List[Any] = []
    real_init = socket.socket.__init__

    def counting_init(self: socket.socket, *args: Any, **kwargs: Any) -> None:
        opened.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "__init__", counting_init)
    key = event.new_string_key("k")
    m = stats.Float64("m")
    metric.HistogramFloat64("h", "", buckets=[1], keys=[key]).record(m)
    metric.Scalar("s").latest_float64(m)
    m.record(event.label(todo(), key.of("v")), 1.0)
    m.record(None, 2.0)
    metric.collect()
    from opencensus.stats import stats as oc_stats
    list(oc_stats.stats.get_metrics())
    assert opened == []


def test_the_suite_refuses_non_loopback_connections() -> None:
    # The guard in conftest.py: what E2's metadata probe would hit.
    conftest = sys.modules["conftest"]
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("169.254.169.254", 80), timeout=0.5)
        with pytest.raises(socket.gaierror):
            socket.getaddrinfo("metadata.google.internal", 80)
        assert len(conftest._violations) == 2
    finally:
        del conftest._violations[:]  # this test provoked them on purpose


def test_the_suite_allows_loopback() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(2)
    try:
        client = socket.create_connection(server.getsockname(), timeout=2)
        accepted, peer = server.accept()
        try:
            client.sendall(b"ping")
            assert accepted.recv(4) == b"ping"
            assert peer == client.getsockname()
        finally:
            accepted.close()
            client.close()
    finally:
        server.close()
    assert sys.modules["conftest"]._violations == []
