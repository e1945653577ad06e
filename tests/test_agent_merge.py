"""--merge-instances (gotools_compat.agent._merge): the rules, the store, the agent over gRPC."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from typing import Any, List, Sequence

import grpc
import pytest

from gotools_compat.agent import Agent
from gotools_compat.agent.__main__ import settings
from gotools_compat.agent._kinds import COUNTER, GAUGE, GAUGE_HISTOGRAM, HISTOGRAM, SUMMARY, Family
from gotools_compat.agent._protorequest import from_proto
from gotools_compat.agent._merge import Merger, combiner, dropped
from gotools_compat.agent._model import Metric
from gotools_compat.agent._render import render
from gotools_compat.agent._store import Sender, Store
from tests.agent_requests import MD, Request, dist, metric
from tests.helpers import Samples, samples

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402  (agent_requests installs)
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2_grpc  # noqa: E402



def node(job: str, pid: int, start: int = 1_700_000_000) -> Any:
    return common_pb2.Node(
        identifier=common_pb2.ProcessIdentifier(host_name="h", pid=pid,
                                                start_timestamp={"seconds": start}),
        service_info=common_pb2.ServiceInfo(name=job))


def counter(value: int, route: str = "/") -> Any:
    return metric("requests", MD.CUMULATIVE_INT64, ["route"], [([route], value)])


def gauge(value: float) -> Any:
    return metric("inflight", MD.GAUGE_DOUBLE, [], [([], value)])


def histogram(counts: Sequence[int], total: float) -> Any:
    return metric("latency", MD.CUMULATIVE_DISTRIBUTION, [], [([], dist([1.0, 2.0], counts,
                                                                         total))])


def read(*metrics: Any) -> List[Metric]:
    return from_proto(Request(metrics=metrics)).metrics


def merged_store(rule: str = "last", **bounds: int) -> Store:
    return Store(namespace="", const_labels={}, expire_after=10,
                 merge=Merger(rule, **bounds), **bounds)


def send(store: Store, job: str, pid: int, *metrics: Any, start: int = 1_700_000_000) -> Sender:
    sender = store.sender(node(job, pid, start))
    store.ingest(sender, read(*metrics))
    return sender


def text(store: Store) -> str:
    return render(store.snapshot()).decode()


# -- the rules, at their own level ---------------------------------------------------


def test_totals_add_and_gauges_follow_the_rule() -> None:
    assert combiner(COUNTER, "last")(3, 4) == 7
    assert combiner(HISTOGRAM, "max")(((1.0,), (1, 2), b"1.5"), ((1.0,), (3, 4), b"2")) \
        == ((1.0,), (4, 6), b"3.5")
    # Histograms of other bounds cannot be added: the newer one is kept.
    assert combiner(HISTOGRAM, "sum")(((1.0,), (1, 2), b"1"), ((2.0,), (5, 0), b"4")) \
        == ((2.0,), (5, 0), b"4")
    assert combiner(SUMMARY, "last")((2, 1.5, ((0.5, 1.0),)), (3, 2.0, ((0.5, 7.0),))) \
        == (5, 3.5, ((0.5, 7.0),))
    rules = {rule: combiner(GAUGE, rule)(5.0, 2.0) for rule in ("last", "sum", "min", "max")}
    assert rules == {"last": 2.0, "sum": 7.0, "min": 2.0, "max": 5.0}
    assert combiner(GAUGE_HISTOGRAM, "sum")(((1.0,), (1, 1), b"1"), ((1.0,), (2, 0), b"1")) \
        == ((1.0,), (3, 1), b"2")
    assert combiner(GAUGE_HISTOGRAM, "max")(((1.0,), (1, 1), b"1"), ((1.0,), (2, 0), b"1")) \
        == ((1.0,), (2, 0), b"1")
    with pytest.raises(ValueError, match="gauge rule 'avg'"):
        Merger("avg")


def test_a_reset_is_any_fall_of_a_series_that_only_grows() -> None:
    assert dropped(COUNTER, 5, 4) and not dropped(COUNTER, 5, 5)
    # One bucket lower is a reset even though the count grew.
    assert dropped(HISTOGRAM, ((1.0,), (3, 0), b"0"), ((1.0,), (2, 9), b"0"))
    assert not dropped(HISTOGRAM, ((1.0,), (3, 0), b"0"), ((1.0,), (3, 1), b"0"))
    assert dropped(HISTOGRAM, ((1.0,), (3, 1), b"0"), ((2.0,), (1, 2), b"0"))  # other bounds
    assert dropped(SUMMARY, (4, 1.0, ()), (3, 9.0, ()))
    assert not dropped(GAUGE, 9.0, 1.0)


def test_folded_totals_are_bounded_and_the_rest_counted() -> None:
    merger = Merger("last", max_series=3, max_series_per_metric=2)
    family = Family("c", COUNTER, "", "")
    merger.fold(family, {b'a="1"': 1, b'a="2"': 2, b'a="3"': 3})
    merger.fold(family, {b'a="1"': 10})
    assert merger.gone == {"c": {b'a="1"': 11, b'a="2"': 2}}
    assert (merger.count, merger.refused) == (2, 1)
    merger.fold(Family("d", COUNTER, "", ""), {b"": 1, b'x="y"': 1})  # max_series: 3 in all
    assert merger.gone["d"] == {b"": 1} and (merger.count, merger.refused) == (3, 2)
    merger.fold(Family("g", GAUGE, "", ""), {b"": 5.0})  # a gone gauge is no total
    assert "g" not in merger.gone


# -- the store ---------------------------------------------------------------------------


def test_one_series_per_job_summed_over_its_instances() -> None:
    store = merged_store()
    for pid, value in ((1, 3), (2, 4), (3, 5)):
        send(store, "web", pid, counter(value), histogram([pid, 0, 1], 0.5 * pid))
    send(store, "api", 9, counter(100))
    assert text(store) == (
        "# HELP latency \n# TYPE latency histogram\n"
        'latency_bucket{job="web",le="1.0"} 6\n'
        'latency_bucket{job="web",le="2.0"} 6\n'
        'latency_bucket{job="web",le="+Inf"} 9\n'
        'latency_sum{job="web"} 3\n'
        'latency_count{job="web"} 9\n'
        "# HELP requests_total \n# TYPE requests_total counter\n"
        'requests_total{job="web",route="/"} 12\n'
        'requests_total{job="api",route="/"} 100\n')
    assert len(store.senders()) == 4


def test_an_expired_instance_leaves_its_totals_and_its_gauges_go() -> None:
    store = merged_store("sum")
    old = send(store, "web", 1, counter(7), gauge(2.0))
    send(store, "web", 2, counter(5), gauge(3.0))
    assert samples(text(store))[("requests_total", (("job", "web"), ("route", "/")))] == 12
    old.last_seen -= 11
    assert store.expire() == 1
    found = samples(text(store))
    assert found[("requests_total", (("job", "web"), ("route", "/")))] == 12
    assert found[("inflight", (("job", "web"),))] == 3.0
    send(store, "web", 2, counter(6), gauge(3.0))
    assert samples(text(store))[("requests_total", (("job", "web"), ("route", "/")))] == 13
    # Every instance gone: the total stays, the gauge goes.
    assert store.expire(time.monotonic() + 11) == 1
    assert text(store) == ('# HELP requests_total \n# TYPE requests_total counter\n'
                           'requests_total{job="web",route="/"} 13\n')
    assert store.merge is not None and store.merge.instances == 2


def test_a_restart_with_a_new_start_time_is_folded_not_a_drop() -> None:
    store = merged_store()
    send(store, "web", 1, counter(40), histogram([4, 0, 0], 2.0))
    send(store, "web", 2, counter(10))
    # pid 1 again, started anew: it has already counted 50 since (more than before).
    send(store, "web", 1, counter(50), histogram([1, 0, 0], 0.5), start=1_700_000_100)
    found = samples(text(store))
    assert found[("requests_total", (("job", "web"), ("route", "/")))] == 100
    assert found[("latency_count", (("job", "web"),))] == 5
    assert found[("latency_sum", (("job", "web"),))] == 2.5
    # The same start again is the same run: replaced, not added.
    send(store, "web", 1, counter(51), start=1_700_000_100)
    assert samples(text(store))[("requests_total", (("job", "web"), ("route", "/")))] == 101


def test_a_reset_under_the_same_identity_is_folded_not_a_drop() -> None:
    store = merged_store()
    send(store, "web", 1, counter(40), histogram([4, 1, 0], 2.0))
    send(store, "web", 1, counter(3), histogram([1, 0, 0], 0.25))  # same start: values fell
    found = samples(text(store))
    assert found[("requests_total", (("job", "web"), ("route", "/")))] == 43
    assert found[("latency_count", (("job", "web"),))] == 6
    assert found[("latency_bucket", (("job", "web"), ("le", "1.0")))] == 5
    send(store, "web", 1, counter(4))
    assert samples(text(store))[("requests_total", (("job", "web"), ("route", "/")))] == 44


@pytest.mark.parametrize("rule, expected", [("last", 1.0), ("sum", 9.0), ("min", 1.0),
                                            ("max", 5.0)])
def test_gauge_rules(rule: str, expected: float) -> None:
    store = merged_store(rule)
    now = time.monotonic()
    for pid, value in ((3, 1.0), (1, 3.0), (2, 5.0)):  # pid 3 is heard from last
        sender = send(store, "web", pid, gauge(value))
        sender.last_seen = now - 5 + pid
    assert samples(text(store)) == {("inflight", (("job", "web"),)): expected}


def test_memory_stays_one_total_per_series_after_many_instances() -> None:
    store = merged_store()
    routes = ["/a", "/b", "/c"]
    for pid in range(1, 101):
        sender = send(store, "web", pid, *[counter(pid, r) for r in routes], gauge(1.0))
        sender.last_seen -= 11
        store.expire()
    merge = store.merge
    assert merge is not None
    assert (merge.count, merge.instances, len(store.senders())) == (3, 100, 0)
    assert merge.gone["requests"] == {
        b'job="web",route="%s"' % r.encode(): sum(range(1, 101)) for r in routes}
    own = {family.name: rows for family, rows in store.own_families()}
    assert own["gotools_agent_series"] == [(b"", 0)]
    assert own["gotools_agent_merge_gone_series"] == [(b"", 3)]
    assert own["gotools_agent_merge_gone_instances"] == [(b"", 100)]


def test_without_the_option_each_instance_keeps_its_series() -> None:
    store = Store(namespace="", const_labels={})
    send(store, "web", 1, counter(1))
    send(store, "web", 2, counter(2))
    assert samples(text(store)) == {
        ("requests_total", (("instance", "h:1"), ("job", "web"), ("route", "/"))): 1,
        ("requests_total", (("instance", "h:2"), ("job", "web"), ("route", "/"))): 2}


# -- the agent, over gRPC, and its settings ----------------------------------------------


def export(port: int, requests: Sequence[Any]) -> None:
    with grpc.insecure_channel("127.0.0.1:%d" % port) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        list(stub.Export(iter(requests), timeout=10))


def scrape(port: int) -> Samples:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        return samples(response.read().decode())
    finally:
        conn.close()


def poll(port: int, name: str, want: float, deadline: float = 10.0) -> Samples:
    end = time.monotonic() + deadline
    while True:
        found = scrape(port)
        if found.get((name, ())) == want or time.monotonic() > end:
            return found
        time.sleep(0.05)


def test_agent_merges_senders_over_grpc_through_restarts_and_expiry() -> None:
    key = ("promdemo_requests_total", (("job", "web"), ("route", "/"), ("vendor", "otc")))
    with Agent("127.0.0.1:0", "127.0.0.1:0", merge_instances=True, gauge_merge="max",
               expire_after=1.0) as agent:
        for pid in range(1, 5):
            export(agent.port, [Request(node=node("web", pid), metrics=[counter(10 * pid),
                                                                         gauge(float(pid))])])
        found = scrape(agent.prometheus_port or 0)
        assert found[key] == 100
        assert found[("promdemo_inflight", (("job", "web"), ("vendor", "otc")))] == 4.0
        assert found[("gotools_agent_senders", ())] == 4
        # pid 4 restarts (a new start time, a smaller count); pid 3 resets in place.
        export(agent.port, [Request(node=node("web", 4, start=1_800_000_000),
                                    metrics=[counter(1)])])
        export(agent.port, [Request(node=node("web", 3), metrics=[counter(2)])])
        assert scrape(agent.prometheus_port or 0)[key] == 103
        # All of them fall silent: they expire and the total stays.
        found = poll(agent.prometheus_port or 0, "gotools_agent_senders", 0)
        assert found[("gotools_agent_senders", ())] == 0
        assert found[key] == 103
        assert found[("gotools_agent_merge_gone_series", ())] == 1
        assert ("promdemo_inflight", (("job", "web"), ("vendor", "otc"))) not in found


def test_settings_take_the_option_from_flag_env_and_config(tmp_path: Path) -> None:
    assert settings([], {})["merge_instances"] is False
    assert settings([], {})["gauge_merge"] == "last"
    s = settings(["--merge-instances", "--gauge-merge", "max"], {})
    assert (s["merge_instances"], s["gauge_merge"]) == (True, "max")
    s = settings([], {"GOTOOLS_AGENT_MERGE_INSTANCES": "1", "GOTOOLS_AGENT_GAUGE_MERGE": "Sum"})
    assert (s["merge_instances"], s["gauge_merge"]) == (True, "sum")
    config = tmp_path / "agent.toml"
    config.write_text('merge_instances = true\ngauge_merge = "min"\n')
    s = settings(["--config", str(config)], {})
    assert (s["merge_instances"], s["gauge_merge"]) == (True, "min")
    with pytest.raises(ValueError, match="gauge_merge: 'avg'"):
        settings([], {"GOTOOLS_AGENT_GAUGE_MERGE": "avg"})
    with pytest.raises(SystemExit):
        settings(["--gauge-merge", "avg"], {})
