"""gotools_compat.agent._traces bounds: strings cut, spans too large, bytes kept, tracez limit."""

from __future__ import annotations

from typing import Any, Dict, List

from prometheus_client.parser import text_string_to_metric_families

from gotools_compat._oc import proto
from gotools_compat.agent._render import render
from gotools_compat.agent._traces import MAX_STRING, TraceStore, record_size, span_record

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

NODE = common_pb2.Node(service_info={"name": "svc"})


def span(name: str, attributes: Dict[str, str] = {}, note: str = "") -> Any:  # noqa: B006
    events = [{"annotation": {"description": {"value": note}}}] if note else []
    return trace_pb2.Span(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), name={"value": name},
        start_time={"seconds": 100}, end_time={"seconds": 100, "nanos": 5_000},
        attributes={"attribute_map": {k: {"string_value": {"value": v}}
                                      for k, v in attributes.items()}},
        time_events={"time_event": events})


def own(traces: TraceStore) -> Dict[str, float]:
    text = render(traces.own_families()).decode()
    return {s.name + ("{%s}" % s.labels["cause"] if s.labels else ""): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_long_strings_are_cut_to_4096_characters_and_counted() -> None:
    traces = TraceStore()
    traces.add(NODE, [span("n" * 5000, {"k": "v" * 10_000, "short": "s"}, note="a" * 4097)])
    record = traces.recent()[0]
    assert (len(record["name"]), len(record["attributes"]["k"]),
            record["attributes"]["short"], len(record["annotations"][0]["value"])) == (
        MAX_STRING, MAX_STRING, "s", MAX_STRING)
    assert own(traces)["gotools_agent_span_strings_truncated_total"] == 3


def test_a_span_over_max_bytes_per_span_is_counted_not_kept_nor_forwarded() -> None:
    forwarded: List[List[Dict[str, Any]]] = []
    traces = TraceStore(on_spans=forwarded.append, max_bytes_per_span=20_000)
    big = span("big", {"k%d" % i: "x" * 4096 for i in range(5)})
    assert record_size(span_record("svc", big)) > 20_000
    assert traces.add(NODE, [span("small"), big]) == 2
    assert [s["name"] for s in traces.recent()] == ["small"]
    assert [[s["name"] for s in batch] for batch in forwarded] == [["small"]]
    assert [(row["name"], row["count"]) for row in traces.summary()] == [("big", 1),
                                                                         ("small", 1)]
    counts = own(traces)
    assert counts["gotools_agent_spans_dropped_total{max_bytes_per_span}"] == 1
    assert counts["gotools_agent_spans_received_total"] == 2
    assert counts["gotools_agent_spans_kept"] == 1


def test_the_oldest_spans_go_when_the_bytes_kept_pass_max_span_bytes() -> None:
    one = record_size(span_record("svc", span("s0", {"k": "x" * 1000})))
    traces = TraceStore(max_span_bytes=3 * one + one // 2)
    for i in range(6):
        traces.add(NODE, [span("s%d" % i, {"k": "x" * 1000})])
    assert [s["name"] for s in traces.recent()] == ["s3", "s4", "s5"]
    counts = own(traces)
    assert counts["gotools_agent_spans_evicted_total{max_span_bytes}"] == 3
    assert counts["gotools_agent_spans_evicted_total{max_spans}"] == 0
    assert counts["gotools_agent_span_bytes"] == 3 * one


def test_the_oldest_spans_go_past_max_spans_and_are_counted() -> None:
    traces = TraceStore(max_spans=2)
    traces.add(NODE, [span("a"), span("b"), span("c")])
    assert [s["name"] for s in traces.recent()] == ["b", "c"]
    assert own(traces)["gotools_agent_spans_evicted_total{max_spans}"] == 1


def test_tracez_lists_at_most_max_tracez_spans_whatever_the_limit() -> None:
    traces = TraceStore(max_tracez_spans=5)
    traces.add(NODE, [span("s%d" % i) for i in range(20)])
    assert [s["name"] for s in traces.recent(10 ** 9)] == ["s%d" % i for i in range(15, 20)]
    assert traces.json(10 ** 9).count(b'"spanId"') == 5
    assert traces.html(10 ** 9).count(b" ms</td></tr>") == 5
    assert traces.recent(2) == traces.recent(10 ** 9)[-2:] and traces.recent(0) == []


def test_defaults() -> None:
    traces = TraceStore()
    assert (traces.max_spans, traces.max_span_bytes, traces.max_bytes_per_span,
            traces.max_tracez_spans) == (10_000, 64 * 1024 * 1024, 64 * 1024, 1_000)
