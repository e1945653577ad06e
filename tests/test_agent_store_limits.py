"""gotools_compat.agent._store bounds: max_series, per sender, per metric, max_senders.

New series past a bound are refused and counted by cause; stored series keep
updating; nothing stored is lost.  Also: the snapshot's sliced copies.
"""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace
from typing import Any, Dict, List, Sequence, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat.agent import _limits, _snapshot
from gotools_compat.agent._limits import QUIET
from gotools_compat.agent._model import Metric
from gotools_compat.agent._render import render
from gotools_compat.agent._store import Store

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402

GAUGE = 2  # MetricDescriptor.GAUGE_DOUBLE


def node(service: str) -> Any:
    return common_pb2.Node(identifier={"host_name": "h", "pid": 1},
                           service_info={"name": service})


def gauge(name: str, values: Dict[str, float]) -> Metric:
    """One gauge metric with a label ``k``, in the store's plain form."""
    return ((name, "", "", GAUGE, ("k",)), [([k], v) for k, v in values.items()])


def series(store: Store) -> Dict[Tuple[str, str, str], float]:
    """(metric, job, k) -> value of every rendered series."""
    out = {}
    for family in text_string_to_metric_families(render(store.snapshot()).decode()):
        for s in family.samples:
            out[(s.name, s.labels.get("job", ""), s.labels.get("k", ""))] = s.value
    return out


def refused(store: Store) -> Dict[str, int]:
    return {cause: n for cause, _, n in store.limit_counters()}


def new_store(max_series: int = 1_000_000, max_series_per_sender: int = 100_000,
              max_series_per_metric: int = 100_000, max_senders: int = 10_000) -> Store:
    return Store(namespace="", const_labels={}, max_series=max_series,
                 max_series_per_sender=max_series_per_sender,
                 max_series_per_metric=max_series_per_metric, max_senders=max_senders)


def test_max_series_refuses_new_series_and_keeps_updating_stored_ones() -> None:
    store = new_store(max_series=3)
    a = store.sender(node("a"))
    assert store.ingest(a, [gauge("g", {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5})]) == 3
    assert series(store) == {("g", "a", "1"): 1, ("g", "a", "2"): 2, ("g", "a", "3"): 3}
    assert refused(store) == {"max_series": 2, "max_series_per_sender": 0,
                              "max_series_per_metric": 0, "max_senders": 0}
    # An update of a stored series is taken, a new one still refused.
    assert store.ingest(a, [gauge("g", {"2": 20, "6": 6})]) == 1
    assert series(store) == {("g", "a", "1"): 1, ("g", "a", "2"): 20, ("g", "a", "3"): 3}
    assert refused(store)["max_series"] == 3
    # Another sender, another metric: still full.
    assert store.ingest(store.sender(node("b")), [gauge("h", {"1": 1})]) == 0
    assert refused(store)["max_series"] == 4
    assert len(series(store)) == 3


def test_max_series_per_sender_leaves_other_senders_alone() -> None:
    store = new_store(max_series_per_sender=2)
    a, b = store.sender(node("a")), store.sender(node("b"))
    assert store.ingest(a, [gauge("g", {"1": 1, "2": 2}), gauge("h", {"1": 1})]) == 2
    assert store.ingest(b, [gauge("g", {"1": 1}), gauge("h", {"1": 1})]) == 2
    assert store.ingest(a, [gauge("g", {"1": 10})]) == 1
    assert series(store) == {("g", "a", "1"): 10, ("g", "a", "2"): 2,
                             ("g", "b", "1"): 1, ("h", "b", "1"): 1}
    assert refused(store)["max_series_per_sender"] == 1


def test_max_series_per_metric_counts_all_senders_of_the_family() -> None:
    store = new_store(max_series_per_metric=3)
    a, b = store.sender(node("a")), store.sender(node("b"))
    assert store.ingest(a, [gauge("g", {"1": 1, "2": 2})]) == 2
    # b: one more fits in g, the second is refused; h is another family.
    assert store.ingest(b, [gauge("g", {"1": 1, "2": 2}), gauge("h", {"1": 7})]) == 2
    assert series(store) == {("g", "a", "1"): 1, ("g", "a", "2"): 2, ("g", "b", "1"): 1,
                             ("h", "b", "1"): 7}
    assert refused(store)["max_series_per_metric"] == 1
    assert store.ingest(b, [gauge("g", {"1": 5, "2": 5})]) == 1
    assert series(store)[("g", "b", "1")] == 5
    assert refused(store)["max_series_per_metric"] == 2


def test_a_mixed_export_at_the_bound_updates_all_and_adds_what_fits() -> None:
    store = new_store(max_series=3)
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", {"1": 1, "2": 2})])
    assert store.ingest(a, [gauge("g", {"1": 10, "3": 3, "4": 4, "2": 20})]) == 3
    assert series(store) == {("g", "a", "1"): 10, ("g", "a", "2"): 20, ("g", "a", "3"): 3}
    assert refused(store)["max_series"] == 1


def test_max_senders_refuses_a_new_sender_until_one_expires() -> None:
    store = new_store(max_senders=1)
    store.expire_after = 10
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", {"1": 1})])
    b = store.sender(node("b"))
    assert store.ingest(b, [gauge("g", {"1": 2, "2": 2})]) == 0
    assert store.senders() == [("a", "h:1")]
    assert refused(store) == {"max_series": 0, "max_series_per_sender": 0,
                              "max_series_per_metric": 0, "max_senders": 2}  # b's two
    assert store.ingest(a, [gauge("g", {"1": 3})]) == 1  # a keeps updating
    assert series(store) == {("g", "a", "1"): 3}
    a.last_seen -= 11
    assert store.expire() == 1
    assert store.ingest(b, [gauge("g", {"1": 2})]) == 1  # room again: b is in
    assert store.senders() == [("b", "h:1")]
    assert series(store) == {("g", "b", "1"): 2}


def test_a_refused_senders_series_are_counted_once() -> None:
    store = new_store(max_series=1, max_senders=1)
    store.ingest(store.sender(node("a")), [gauge("g", {"1": 1})])
    # h would also be a family too many: counted once, under max_senders.
    assert store.ingest(store.sender(node("b")), [gauge("h", {"1": 1}), gauge("g", {"2": 1})]) == 0
    assert refused(store) == {"max_series": 0, "max_series_per_sender": 0,
                              "max_series_per_metric": 0, "max_senders": 2}


def test_an_expired_sender_frees_its_room_and_returns_empty() -> None:
    store = new_store(max_series=2)
    store.expire_after = 10
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", {"1": 1, "2": 2})])
    a.last_seen -= 11
    b = store.sender(node("b"))
    assert store.expire() == 1
    assert store.ingest(b, [gauge("g", {"1": 5, "2": 6})]) == 2
    assert series(store) == {("g", "b", "1"): 5, ("g", "b", "2"): 6}
    # a's stream sends again (the same object): none of its old series come back.
    store.ingest(b, [gauge("g", {"1": 7})])
    b.last_seen -= 11
    store.expire()
    assert store.ingest(a, [gauge("g", {"3": 3})]) == 1
    assert series(store) == {("g", "a", "3"): 3}


def test_new_families_are_refused_when_there_are_max_series_of_them() -> None:
    store = new_store(max_series=2)
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", {"1": 1}), gauge("h", {"1": 1})])
    assert store.ingest(a, [gauge("i", {"1": 1, "2": 2}), gauge("g", {"1": 4})]) == 1
    assert refused(store)["max_series"] == 2
    assert sorted(name for name, _, _ in series(store)) == ["g", "h"]


def test_one_warning_per_cause_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    store = new_store(max_series=1, max_series_per_metric=1)
    a = store.sender(node("a"))
    with caplog.at_level(logging.WARNING, logger="gotools_compat.agent"):
        for i in range(5):
            store.ingest(a, [gauge("g", {str(i): 1}), gauge("h", {"1": 1})])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == [
        "the agent holds max_series=1 series"]
    assert warnings[0].exc_info is None
    assert 'gotools_agent_refused_series_total{cause="max_series"}' in warnings[0].getMessage()
    assert refused(store)["max_series"] == 9  # h every time, g from the second on


def test_a_cause_warns_again_after_a_quiet_hour(caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]  # the limits' clock, moved by hand
    monkeypatch.setattr(_limits, "time", SimpleNamespace(monotonic=lambda: now[0]))
    store = new_store(max_series=1)
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", {"1": 1})])
    with caplog.at_level(logging.WARNING, logger="gotools_compat.agent"):
        store.ingest(a, [gauge("g", {"2": 1})])
        now[0] += QUIET - 1  # refused again within the hour: no second warning
        store.ingest(a, [gauge("g", {"2b": 1})])
        now[0] += QUIET + 1  # an hour without a refusal
        store.ingest(a, [gauge("g", {"3": 1})])
        store.ingest(a, [gauge("g", {"4": 1})])
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_own_families_render_as_prometheus_text() -> None:
    store = new_store(max_series=2, max_senders=1)
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", {"1": 1, "2": 2, "3": 3})])
    store.ingest(store.sender(node("b")), [gauge("g", {"1": 1})])
    text = render(store.own_families()).decode()
    values = {(s.name, s.labels.get("cause", "")): s.value
              for f in text_string_to_metric_families(text) for s in f.samples}
    assert values == {
        ("gotools_agent_refused_series_total", "max_series"): 1,
        ("gotools_agent_refused_series_total", "max_series_per_sender"): 0,
        ("gotools_agent_refused_series_total", "max_series_per_metric"): 0,
        ("gotools_agent_refused_series_total", "max_senders"): 1,
        ("gotools_agent_rejected_series_total", ""): 0,
        ("gotools_agent_series", ""): 2,
        ("gotools_agent_senders", ""): 1,
    }
    assert "# TYPE gotools_agent_refused_series_total counter\n" in text


def test_bounds_must_be_ints_of_zero_or_more() -> None:
    with pytest.raises(ValueError, match="max_series_per_sender"):
        Store(max_series_per_sender=-1)
    empty = new_store(max_series=0)
    assert empty.ingest(empty.sender(None), [gauge("g", {"1": 1})]) == 0
    assert refused(empty)["max_series"] == 1


def _many(n: int) -> Dict[str, float]:
    return {"%03d" % i: float(i) for i in range(n)}


@pytest.mark.parametrize("target_labels", [True, False])
def test_sliced_copies_render_what_whole_copies_render(
        monkeypatch: pytest.MonkeyPatch, target_labels: bool) -> None:
    def build() -> Store:
        store = Store(namespace="", const_labels={}, target_labels=target_labels)
        for name, count in (("a", 3), ("b", 35), ("c", 12)):
            for svc in ("x", "y"):
                store.ingest(store.sender(node(svc)), [gauge(name, _many(count))])
        return store

    whole = render(build().snapshot())
    monkeypatch.setattr(_snapshot, "_COPY_SLICE", 10)  # dicts of 12 and 35: in slices
    monkeypatch.setattr(_snapshot, "_PAIR_COST", 1)
    sliced = render(build().snapshot())
    assert sliced == whole
    lines = [line for line in sliced.decode().splitlines() if line.startswith("b{")]
    assert len(lines) == (70 if target_labels else 35)


def test_ingest_between_slices_lands_in_the_store(monkeypatch: pytest.MonkeyPatch) -> None:
    # The snapshot lets ingest in between slices: a sender added during a
    # scrape is in the next one, and the scrape itself is one consistent view
    # of each dict it copied.
    monkeypatch.setattr(_snapshot, "_COPY_SLICE", 4)
    store = new_store()
    a = store.sender(node("a"))
    store.ingest(a, [gauge("g", _many(10)), gauge("h", _many(10))])
    snapshot = store.snapshot()
    store.ingest(store.sender(node("b")), [gauge("g", {"1": 1})])
    assert [(f.name, len(items)) for f, items in snapshot] == [("g", 10), ("h", 10)]
    assert [(f.name, len(items)) for f, items in store.snapshot()] == [("g", 11), ("h", 10)]


def test_snapshot_visits_only_the_families_a_sender_has() -> None:
    # 300 senders over 300 names, one each: 300 series, and expiry keeps the
    # per-family index in step (the families of expired senders go).
    store = new_store()
    store.expire_after = 10
    senders: List[Any] = []
    for i in range(300):
        sender = store.sender(common_pb2.Node(identifier={"host_name": "h", "pid": i + 1},
                                              service_info={"name": "s"}))
        store.ingest(sender, [gauge("m%d" % i, {"1": float(i)})])
        senders.append(sender)
    snapshot = store.snapshot()
    assert len(snapshot) == 300 and all(len(items) == 1 for _, items in snapshot)
    for sender in senders[:200]:
        sender.last_seen = time.monotonic() - 11
    assert store.expire() == 200
    names: Sequence[str] = [f.name for f, _ in store.snapshot()]
    assert names == sorted("m%d" % i for i in range(200, 300))
    assert {f.name: items[0][1] for f, items in store.own_families()[2:]} == {
        "gotools_agent_series": 100, "gotools_agent_senders": 100}


def test_concurrent_ingest_and_scrapes_keep_the_counts_exact(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Four senders add 300 series each, 10 at a time, against max_series=1000,
    # while scrapes copy in slices of 16: 1000 stored, 200 refused, and the
    # gauges say so.
    monkeypatch.setattr(_snapshot, "_COPY_SLICE", 16)
    store = new_store(max_series=1000)
    done = threading.Event()
    seen: List[int] = []

    def scrape() -> None:
        while not done.is_set():
            seen.append(sum(len(items) for _, items in store.snapshot()))

    def send(service: str) -> None:
        sender = store.sender(node(service))
        for start in range(0, 300, 10):
            store.ingest(sender, [gauge("g", {"%d" % i: 1.0 for i in range(start, start + 10)})])

    scraper = threading.Thread(target=scrape)
    scraper.start()
    senders = [threading.Thread(target=send, args=("s%d" % i,)) for i in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    done.set()
    scraper.join()
    assert len(series(store)) == 1000
    assert refused(store)["max_series"] == 200
    assert {f.name: items[0][1] for f, items in store.own_families()[2:]} == {
        "gotools_agent_series": 1000, "gotools_agent_senders": 4}
    assert all(0 <= n <= 1000 for n in seen) and seen == sorted(seen)
