"""gotools_compat._pages: /metrics.json and /debug/tracez.json shaped without sockets; assets."""

from __future__ import annotations

import json
import math
import re
from importlib import resources
from typing import Any, Dict, List

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gotools_compat import _pages
from gotools_compat._oc import proto
from gotools_compat._pages import assets
from gotools_compat._pages.metrics_json import sum_json
from gotools_compat._promtext import label_pair
from gotools_compat.agent._model import BadRequest
from gotools_compat.agent._page_data import PageData, tracez_json
from gotools_compat.agent._store import Store
from gotools_compat.agent._traces import TraceStore

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

BOUNDS = (0.0, 10.0, 50.0, 100.0, 1e6)


def store_with(*metrics: Any, target_labels: bool = True) -> Store:
    store = Store(namespace="demo", const_labels={"vendor": "otc"}, target_labels=target_labels)
    sender = store.sender(common_pb2.Node(identifier={"host_name": "vm", "pid": 7},
                                          service_info={"name": "svc"}))
    store.ingest(sender, list(metrics))
    return store


def families(store: Store) -> Dict[str, Any]:
    doc = json.loads(PageData(2.0).metrics_json(store.snapshot))
    assert doc["interval"] == 2 and doc["tracez"] is True
    assert doc["source"].startswith("gotools-agent ")
    return {f["name"]: f for f in doc["families"]}


# -- labels and numbers --------------------------------------------------------

def test_label_strings_parse_back_into_pairs() -> None:
    assert _pages.parse_labels(b"") == []
    assert _pages.parse_labels(b'vendor="otc",job="go-tools-test"') == [
        ("vendor", "otc"), ("job", "go-tools-test")]
    escaped = ",".join([label_pair("a", 'x",y="z'), label_pair("b", "back\\slash\nnew")])
    assert _pages.parse_labels(escaped.encode()) == [("a", 'x",y="z'), ("b", "back\\slash\nnew")]
    assert _pages.parse_labels('k="caf\u00e9 <script>"'.encode()) == [("k", "caf\u00e9 <script>")]


@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
                       max_size=5))
def test_any_label_string_the_agent_writes_parses_back(labels: Dict[str, str]) -> None:
    text = ",".join(label_pair(k, v) for k, v in labels.items()).encode("utf-8")
    assert dict(_pages.parse_labels(text)) == labels


def test_numbers_are_json_and_non_finite_ones_strings() -> None:
    assert [_pages.number_json(v) for v in (3, 2**64, 2.0, 0.25, -1e20, 1e-7)] == [
        b"3", b"18446744073709551616", b"2", b"0.25", b"-1e+20", b"1e-07"]
    assert [_pages.number_json(v) for v in (math.nan, math.inf, -math.inf)] == [
        b'"NaN"', b'"+Inf"', b'"-Inf"']
    assert [sum_json(t) for t in (b"21762", b"0.25", b"NaN", b"+Inf", b"-Inf", b"1e+16")] == [
        b"21762", b"0.25", b'"NaN"', b'"+Inf"', b'"-Inf"', b"1e+16"]


def test_a_document_of_every_kind_reads_back() -> None:
    doc = _pages.Doc()
    doc.family("h", "histogram", 'say "hi" </script>', "ms")
    doc.histogram(_pages.labels_json([("k", "<b>v</b>")]), _pages.le_json((0, 10.5, 1e6)),
                  [1, 2, 0, 4], sum_json(b"NaN"))
    doc.family("empty", "gauge", "", "")
    doc.family("c", "counter", "", "1")
    doc.scalar(b"{}", 5)
    doc.scalar(_pages.labels_json([("x", "\ud800")]), math.inf)
    doc.family("s", "summary", "", "")
    doc.summary(b"{}", 3, 1.5, [(0.5, 0.25), (0.99, math.nan)])
    text = _pages.document(doc.families(), source="t", interval=0.5, changes=_pages.Changes(),
                           tracez=False)
    assert text.isascii()
    out = json.loads(text)
    assert out["families"] == [
        {"name": "h", "type": "histogram", "help": 'say "hi" </script>', "unit": "ms",
         "series": [{"labels": {"k": "<b>v</b>"}, "le": ["0.0", "10.5", "1e+06", "+Inf"],
                     "buckets": [1, 2, 0, 4], "count": 7, "sum": "NaN"}]},
        {"name": "empty", "type": "gauge", "help": "", "unit": "", "series": []},
        {"name": "c", "type": "counter", "help": "", "unit": "1",
         "series": [{"labels": {}, "value": 5}, {"labels": {"x": "\ud800"}, "value": "+Inf"}]},
        {"name": "s", "type": "summary", "help": "", "unit": "",
         "series": [{"labels": {}, "count": 3, "sum": 1.5,
                     "quantiles": [[0.5, 0.25], [0.99, "NaN"]]}]}]
    assert (out["source"], out["interval"], out["tracez"]) == ("t", 0.5, False)
    assert out["changed"] == out["now"]  # the first answer is a change


def test_changed_moves_only_when_the_families_differ() -> None:
    changes = _pages.Changes()
    assert changes.seen(b"[1]", 100.0) == 100.0
    assert changes.seen(b"[1]", 105.0) == 100.0
    assert changes.seen(b"[2]", 110.0) == 110.0
    assert changes.seen(b"[1]", 111.0) == 111.0


# -- the agent's /metrics.json -------------------------------------------------

def test_the_agents_histograms_are_per_bucket_with_the_labels_of_metrics() -> None:
    store = store_with(
        (("lat", "latencies", "ms", 6, ("method",)),
         [(["hover"], (9, 1234.5, BOUNDS, [1, 2, 3, 0, 2, 1])),
          (['a"b\\c'], (1, 5.0, BOUNDS, [0, 1, 0, 0, 0, 0]))]),
        (("requests", "", "1", 4, ()), [([], 42)]),
        (("temp", "", "", 2, ("room",)), [(["<script>x</script>"], -1.5)]))
    out = families(store)
    lat = out["demo_lat"]
    assert (lat["type"], lat["help"], lat["unit"]) == ("histogram", "latencies", "ms")
    base = {"vendor": "otc", "job": "svc", "instance": "vm:7"}
    assert lat["series"] == [
        {"labels": dict(base, method="hover"), "le": ["0.0", "10.0", "50.0", "100.0", "1e+06",
                                                      "+Inf"],
         "buckets": [1, 2, 3, 0, 2, 1], "count": 9, "sum": 1234.5},
        {"labels": dict(base, method='a"b\\c'), "le": lat["series"][0]["le"],
         "buckets": [0, 1, 0, 0, 0, 0], "count": 1, "sum": 5}]
    assert out["demo_requests"]["type"] == "counter"
    assert out["demo_requests"]["series"] == [{"labels": base, "value": 42}]
    assert out["demo_temp"]["series"] == [{"labels": dict(base, room="<script>x</script>"),
                                           "value": -1.5}]


def test_go_cumulative_buckets_show_per_bucket_as_on_metrics() -> None:
    # Go x/tools sends one cumulative count per bound and no overflow bucket.
    store = store_with((("go", "", "", 6, ()), [([], (7, 70.0, (1.0, 2.0), [3, 5]))]),
                       target_labels=False)
    series = families(store)["demo_go"]["series"]
    assert series == [{"labels": {"vendor": "otc"}, "le": ["1.0", "2.0", "+Inf"],
                       "buckets": [3, 2, 2], "count": 7, "sum": 70}]


# -- the agent's /debug/tracez.json --------------------------------------------

def span(name: str, trace: int, span_id: int, parent: int, start_ns: int, duration_ns: int,
         code: int = 0) -> Any:
    return trace_pb2.Span(
        trace_id=trace.to_bytes(16, "big"), span_id=span_id.to_bytes(8, "big"),
        parent_span_id=parent.to_bytes(8, "big") if parent else b"", name={"value": name},
        start_time={"seconds": start_ns // 10**9, "nanos": start_ns % 10**9},
        end_time={"seconds": (start_ns + duration_ns) // 10**9,
                  "nanos": (start_ns + duration_ns) % 10**9},
        status={"code": code}, attributes={"attribute_map": {
            "file": {"string_value": {"value": "<img src=x onerror=alert(1)>"}}}})


T0 = 1_795_676_143_570_932_696  # past 2**53: a browser could not tell these nanoseconds apart


@pytest.fixture
def traces() -> TraceStore:
    store = TraceStore()
    node = common_pb2.Node(service_info={"name": "gopls"})
    store.add(node, [span("root", 1, 1, 0, T0, 5_000_000),
                     span("child", 1, 2, 1, T0 + 1_001, 2_000_000),
                     span("child", 1, 3, 1, T0 + 3, 20_000, code=2),
                     span("root", 2, 4, 0, T0 + 7, 50_000_000),
                     span("child", 2, 5, 4, T0 + 9, 1_500_000)])
    return store


def ask(traces: TraceStore, **query: str) -> Dict[str, Any]:
    answer: Dict[str, Any] = json.loads(tracez_json(traces, lambda k, d: query.get(k, d), 1.5))
    return answer


def test_tracez_json_without_a_query_is_the_answer_it_always_was(traces: TraceStore) -> None:
    doc = ask(traces, limit="2")
    assert sorted(doc) == ["interval", "kept", "recent", "spanNames"]
    assert [s["spanId"] for s in doc["recent"]] == ["0000000000000004", "0000000000000005"]
    names = {r["name"]: r for r in doc["spanNames"]}
    assert names["child"]["latency"]["1ms"] == 2 and names["child"]["latency"]["10us"] == 1
    assert names["child"]["errors"] == 1 and doc["kept"] == 5 and doc["interval"] == 1.5


def test_tracez_json_lists_a_buckets_spans_newest_first(traces: TraceStore) -> None:
    doc = ask(traces, name="child", latency="1ms")
    assert "recent" not in doc
    assert [s["spanId"] for s in doc["spans"]] == ["0000000000000005", "0000000000000002"]
    assert doc["matched"] == 2 and doc["kept"] == 5
    assert [s["spanId"] for s in ask(traces, name="child", errors="1")["spans"]] == [
        "0000000000000003"]
    assert ask(traces, name="child", latency="1ms", limit="1")["matched"] == 2
    assert len(ask(traces, name="child", latency="1ms", limit="1")["spans"]) == 1
    assert ask(traces, name="root", latency="10us")["spans"] == []


def test_tracez_json_gives_a_whole_trace_with_exact_offsets(traces: TraceStore) -> None:
    doc = ask(traces, trace="00000000000000000000000000000001")
    spans: List[Dict[str, Any]] = doc["trace"]
    assert [(s["spanId"][-1], s["parentSpanId"][-1:], s["offsetNano"]) for s in spans] == [
        ("1", "", 0), ("3", "1", 3), ("2", "1", 1001)]
    assert spans[0]["attributes"] == {"file": "<img src=x onerror=alert(1)>"}
    assert spans[1]["status"]["code"] == 2 and doc["matched"] == 3
    assert ask(traces, trace="0" * 31 + "9")["trace"] == []


@pytest.mark.parametrize("query", [{"name": "x", "latency": "2ms"}, {"trace": "xyz"},
                                   {"trace": "0" * 33}])
def test_tracez_json_refuses_bad_parameters(traces: TraceStore, query: Dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        ask(traces, **query)


# -- the assets ----------------------------------------------------------------

def test_every_asset_ships_as_package_data_and_is_small() -> None:
    static = resources.files("gotools_compat._pages") / "static"
    names = sorted(p.name for p in static.iterdir())
    assert names == sorted(["index.html", "tracez.html"] + list(assets.ASSETS))
    total = assets.total_bytes()
    assert total == sum(len((static / name).read_bytes()) for name in names)
    assert total <= 100 * 1024


def test_the_assets_load_nothing_from_elsewhere_and_never_parse_data_as_html() -> None:
    for name in ["index.html", "tracez.html"] + list(assets.ASSETS):
        text = assets.asset_bytes(name).decode("utf-8")
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text)
        assert all(u == "http://www.w3.org/2000/svg" for u in urls), (name, urls)
        for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                       "eval(", "new Function", "style=", "<script>", "@import", "url(\""):
            assert banned not in text, (name, banned)


def test_pages_and_assets_carry_the_security_headers() -> None:
    for path in ["/", "/debug/tracez", "/_pages/metrics.js", "/_pages/pages.css"]:
        answer = assets.asset(path)
        assert answer is not None
        status, headers, body = answer
        got = dict(headers)
        assert status == 200 and body
        assert got["Content-Security-Policy"].startswith("default-src 'self'; ")
        assert "unsafe-inline" not in got["Content-Security-Policy"]
        assert got["X-Content-Type-Options"] == "nosniff"
    assert dict(assets.asset("/_pages/tracez.js")[1])["Content-Type"].startswith(  # type: ignore
        "text/javascript")
    assert assets.asset("/debug/tracez", tracez=False) is None
    assert assets.asset("/_pages/../assets.py") is None and assets.asset("/metrics") is None


def test_paced_answers_are_shared_and_slow_ones_ask_for_a_longer_interval() -> None:
    paced = _pages.Paced(interval=600.0, share=0.02)
    built: List[float] = []

    def build(interval: float) -> bytes:
        built.append(interval)
        return b"%d" % len(built)

    assert paced.answer(build) == b"1" and paced.answer(build) == b"1"  # shared
    assert built == [600.0]
    fast = _pages.Paced(interval=2.0, share=0.02)
    fast.cost = 0.010  # 10 ms: 0.5 s would do, the server's 2 s stands
    assert fast.interval() == 2.0
    fast.cost = 0.130  # 130 ms: 6.5 s at 2% of a core
    assert fast.interval() == 6.5
    fast.cost = 0.131
    assert fast.interval() == 7.0  # rounded up to half seconds


def test_unchanged_series_are_reused_and_changed_ones_written_anew() -> None:
    store = Store(namespace="", const_labels={})
    sender = store.sender(common_pb2.Node(service_info={"name": "s"}))
    desc = ("h", "", "", 6, ("k",))
    store.ingest(sender, [(desc, [(["a"], (1, 1.0, BOUNDS, [1, 0, 0, 0, 0, 0])),
                                  (["b"], (2, 2.0, BOUNDS, [0, 2, 0, 0, 0, 0]))])])
    data = PageData(2.0)
    first = json.loads(data.build(store.snapshot(), 2.0))["families"][0]["series"]
    store.ingest(sender, [(desc, [(["b"], (3, 9.5, BOUNDS, [0, 2, 0, 1, 0, 0]))])])
    kept = data.texts.new[b'job="s",k="a"']
    second = json.loads(data.build(store.snapshot(), 2.0))["families"][0]["series"]
    assert data.texts.new[b'job="s",k="a"'] is kept  # the same text, not formatted again
    assert second[0] == first[0]
    assert second[1] == {"labels": {"job": "s", "k": "b"}, "le": first[1]["le"],
                         "buckets": [0, 2, 0, 1, 0, 0], "count": 3, "sum": 9.5}
    store.ingest(sender, [(desc, [(["a"], (1, 7.0, BOUNDS, [1, 0, 0, 0, 0, 0]))])])
    third = json.loads(data.build(store.snapshot(), 2.0))["families"][0]["series"]
    assert third[0]["sum"] == 7  # the same counts, another sum: written anew
