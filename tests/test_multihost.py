"""Beyond one machine: three hosts, their totals through Prometheus federation and OTLP.

Three hosts are played on the loopback addresses 127.0.0.2 to 127.0.0.4 (the
whole of 127/8 is loopback on Linux).  Each has an app (a subprocess that
exports through ``gotools_compat.export.ocagent`` as its own host) and a
``gotools-agent`` bound to that host's address.  A real Prometheus scrapes
the three agents; a second one federates from it through ``/federate``, as a
global Prometheus does; its query API must give exactly what the apps
recorded.  The same agents forward with ``--otlp`` to one OTLP receiver, whose
totals must be the same.  See README "Scaling out".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from gotools_compat.agent import Agent
from tests.otlp_receiver import Receiver, attrs, spans_of
from tests.prometheus_server import PrometheusServer, binary
from tests.test_agent_otlp import poll

HOSTS = {  # address -> (host name, what its app records: method -> latencies in ms)
    "127.0.0.2": ("host-2", {"get": [5.0, 50.0, 500.0], "put": [2.5]}),
    "127.0.0.3": ("host-3", {"get": [5.0, 5.0, 5.0, 5.0]}),
    "127.0.0.4": ("host-4", {"get": [50.0], "put": [500.0, 500.0]}),
}
BOUNDS = [10.0, 100.0]

APP = """
import json, sys
from gotools_compat import event, export, metric, stats
from gotools_compat.export import ocagent

host, address, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
method = event.new_string_key("method")
requests = stats.Int64("requests", "requests served", "1")
latency = stats.Float64("latency", "request latency", "ms")
metric.Scalar("requests_count", "requests served", keys=[method]).count_int64(requests)
metric.HistogramFloat64("latency_ms", "request latency", %r, keys=[method]).record(latency)
exporter = ocagent.connect(ocagent.Config(address=address, service="shop", host=host,
                                          rate=3600.0))
export.set_exporter(exporter)
with event.span(event.background(), "batch") as ctx:
    for name, values in plan.items():
        labelled = event.label(ctx, method.of(name))
        for value in values:
            requests.record(labelled, 1)
            latency.record(labelled, value)
    with event.span(ctx, "commit"):
        pass
assert exporter.flush()
exporter.close()
""" % (BOUNDS,)

pytestmark = pytest.mark.skipif(binary() is None, reason="the prometheus binary is not installed")


def expected() -> Dict[str, Any]:
    """What the apps recorded: per (host, method), and the totals."""
    per: Dict[Tuple[str, str], List[float]] = {}
    for host, plan in HOSTS.values():
        for name, values in plan.items():
            per[(host, name)] = values
    every = [v for values in per.values() for v in values]
    return {
        "requests": {key: len(values) for key, values in per.items()},
        "total": len(every),
        "sum": sum(every),
        "buckets": dict([(bound, sum(1 for v in every if v <= bound)) for bound in BOUNDS]
                        + [(float("inf"), len(every))]),
    }


@pytest.fixture(scope="module")
def hosts() -> Iterator[Dict[str, Any]]:
    """Three agents (with --otlp to one receiver), their apps run; then both Prometheus."""
    receiver = Receiver().start()
    agents = []
    servers: List[PrometheusServer] = []
    try:
        for address in HOSTS:
            agents.append(Agent("%s:0" % address, "%s:0" % address,
                                otlp="http://127.0.0.1:%d" % receiver.port).start())
        apps = [subprocess.Popen(
            [sys.executable, "-c", APP, host, "http://%s:%d" % (address, agent.port),
             json.dumps(plan)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONWARNINGS="error"))
            for (address, (host, plan)), agent in zip(HOSTS.items(), agents)]
        for app in apps:
            out, _ = app.communicate(timeout=60)
            assert app.returncode == 0, out.decode("utf-8", "replace")
        local = PrometheusServer(["%s:%d" % (address, agent.prometheus_port or 0)
                                  for address, agent in zip(HOSTS, agents)],
                                 "agents", interval="500ms", honor_labels=True).start()
        servers.append(local)
        top = PrometheusServer(["127.0.0.1:%d" % local.port], "federate", interval="500ms",
                               honor_labels=True, metrics_path="/federate",
                               params={"match[]": ['{__name__=~"promdemo_.*"}']}).start()
        servers.append(top)
        yield {"agents": agents, "receiver": receiver, "local": local, "top": top}
    finally:
        for server in servers:
            server.stop()
        for agent in agents:
            agent.stop()
        receiver.stop()


def _by(result: List[Any], *labels: str) -> Dict[Tuple[str, ...], float]:
    return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1])
            for r in result}


def _host_of(instance: str) -> str:
    return instance.rsplit(":", 1)[0]  # instance is the app's host:pid


def test_the_federating_prometheus_has_exactly_what_the_apps_recorded(
        hosts: Dict[str, Any]) -> None:
    top: PrometheusServer = hosts["top"]
    want = expected()
    per_host = {k: float(v) for k, v in want["requests"].items()}

    def requests(result: List[Any]) -> Dict[Tuple[str, str], float]:
        return {(_host_of(i), m): v for (i, m), v in _by(result, "instance", "method").items()}

    got = top.wait_for("sum by (instance, method) (promdemo_requests_count_total)",
                       lambda r: requests(r) == per_host)
    assert requests(got) == per_host
    # Every series kept the app's own job and instance through both Prometheus.
    jobs = top.query("count by (job) (promdemo_requests_count_total)")
    assert _by(jobs, "job") == {("shop",): 5.0}
    total = top.wait_for("sum(promdemo_requests_count_total)",
                         lambda r: _by(r) == {(): float(want["total"])})
    assert _by(total) == {(): 11.0}
    latency_sum = top.wait_for("sum(promdemo_latency_ms_sum)",
                               lambda r: _by(r) == {(): want["sum"]})
    assert _by(latency_sum) == {(): 1627.5}

    def buckets(result: List[Any]) -> Dict[float, float]:
        return {float(le): v for (le,), v in _by(result, "le").items()}

    got_buckets = top.wait_for("sum by (le) (promdemo_latency_ms_bucket)",
                               lambda r: buckets(r) == want["buckets"])
    assert buckets(got_buckets) == {10.0: 6.0, 100.0: 8.0, float("inf"): 11.0}


def test_the_otlp_receiver_has_exactly_what_the_apps_recorded(hosts: Dict[str, Any]) -> None:
    receiver: Receiver = hosts["receiver"]
    want = expected()

    def latest() -> Dict[Tuple[str, str, str], Any]:
        """(host, metric, method) -> its latest point, over every request so far."""
        points: Dict[Tuple[str, str, str], Any] = {}
        for request in list(receiver.requests):
            for rm in request.resource_metrics:
                host = attrs(rm.resource.attributes)["host.name"]
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        data = getattr(m, m.WhichOneof("data"))
                        for p in data.data_points:
                            points[(host, m.name, attrs(p.attributes)["method"])] = p
        return points

    def counts() -> Dict[Tuple[str, str], int]:
        return {(h, method): p.as_int for (h, name, method), p in latest().items()
                if name == "requests_count"}

    deadline = 20.0
    receiver.wait_for(3, deadline)
    poll(lambda: counts() == want["requests"], deadline)
    assert counts() == want["requests"]
    histograms = [p for (_, name, _), p in latest().items() if name == "latency_ms"]
    assert sum(p.count for p in histograms) == 11
    assert sum(p.sum for p in histograms) == 1627.5
    assert [sum(c) for c in zip(*(p.bucket_counts for p in histograms))] == [6, 2, 3]
    # The spans too: each host's two, one tree per host.
    found = poll(lambda: (lambda s: s if len(s) >= 6 else None)(
        spans_of(receiver.traces.requests)), deadline)
    trees: Dict[str, Dict[str, Any]] = {}
    for resource, span in found:
        trees.setdefault(attrs(resource.attributes)["host.name"], {})[span.name] = span
    assert sorted(trees) == ["host-2", "host-3", "host-4"]
    for tree in trees.values():
        assert sorted(tree) == ["batch", "commit"]
        assert tree["commit"].parent_span_id == tree["batch"].span_id
        assert tree["commit"].trace_id == tree["batch"].trace_id
    assert len({tree["batch"].trace_id for tree in trees.values()}) == 3
