"""gotools_compat._pages.tracez_json: /debug/tracez.json built from span records, directly
(no sockets)."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

from gotools_compat._pages.tracez_json import (
    LATENCY_LABELS,
    MAX_NAMES,
    MAX_STRING,
    OTHER_NAMES,
    BadQuery,
    Cut,
    KeptSpans,
    SpanNames,
    json_default,
    latency_bucket,
    record_size,
    tracez_json,
    tracez_table,
)

T0 = 1_795_676_143_570_932_696  # past 2**53 ns: a double cannot hold it exactly


def record(name: str, span: int, trace: int = 1, start: int = T0, duration: int = 5_000,
           code: int = 0, parent: int = 0, message: str = "", service: str = "svc",
           attributes: Optional[Dict[str, Any]] = None,
           annotations: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """A span record as the module docstring describes it."""
    return {"traceId": "%032x" % trace, "spanId": "%016x" % span,
            "parentSpanId": "%016x" % parent if parent else "", "name": name,
            "kind": "SERVER", "service": service, "startUnixNano": start,
            "durationNano": duration, "status": {"code": code, "message": message},
            "attributes": attributes or {}, "annotations": annotations or []}


class Store:
    """A span store (the Spans protocol) over KeptSpans, as both servers build theirs."""

    def __init__(self, records: List[Dict[str, Any]], max_tracez_spans: int = 1_000) -> None:
        self.max_tracez_spans = max_tracez_spans
        self.spans = KeptSpans(max_spans=10_000, max_span_bytes=10**9)
        for one in records:
            self.spans.count(one)
            self.spans.keep(one, record_size(one))
        self.spans.evict()

    def summary(self) -> List[Dict[str, Any]]:
        return self.spans.names.summary()

    def recent(self, limit: int = 100) -> List[Dict[str, Any]]:
        return self.spans.recent(limit)

    def kept(self) -> List[Dict[str, Any]]:
        return self.spans.kept()


def ask(store: Store, *, extra: Optional[Dict[str, Any]] = None, **query: str
        ) -> Dict[str, Any]:
    body = tracez_json(store, lambda key, default: query.get(key, default), 2.5, extra)
    assert isinstance(body, bytes) and body.isascii()
    doc: Dict[str, Any] = json.loads(body)
    return doc


def zero_latency(**counts: int) -> Dict[str, int]:
    return {label: counts.get("_" + label, 0) for label in LATENCY_LABELS}


# -- the pieces ------------------------------------------------------------------

def test_a_duration_falls_in_the_bucket_that_starts_at_or_below_it() -> None:
    durations = [0, 9_999, 10_000, 99_999, 100_000, 999_999, 1_000_000, 99_999_999,
                 100_000_000, 999_999_999, 1_000_000_000, 10**10, 10**11 - 1, 10**11, 10**15]
    assert [LATENCY_LABELS[latency_bucket(d)] for d in durations] == [
        "0s", "0s", "10us", "10us", "100us", "100us", "1ms", "10ms", "100ms", "100ms", "1s",
        "10s", "10s", "100s", "100s"]


def test_cut_keeps_strings_up_to_the_limit_and_counts_only_those_it_cut() -> None:
    cut = Cut(3)
    assert [cut(""), cut("abc"), cut("abcd"), cut("abcdefgh"), cut("ab")] == [
        "", "abc", "abc", "abc", "ab"]
    assert cut.count == 2
    default = Cut()
    assert default.limit == MAX_STRING == 4096
    assert default("x" * 4096) == "x" * 4096 and default.count == 0
    assert default("y" * 4097) == "y" * 4096 and default.count == 1


def test_record_size_is_the_strings_plus_a_fixed_cost_per_part() -> None:
    one = record("rpc", 1, service="gopls", message="bad",
                 attributes={"method": "hover", "n": 7, "ok": True},
                 annotations=[{"timeUnixNano": T0, "value": "hello"}])
    # 2000 + name 3 + service 5 + message 3; attributes 150 + key (+ a string's length):
    # method=hover 150+6+5, n 150+1, ok 150+2; the annotation 300 + 5.
    assert record_size(one) == 2011 + 161 + 151 + 152 + 305
    assert record_size(record("", 1, service="")) == 2000


def test_span_names_count_spans_errors_and_buckets_by_name() -> None:
    names = SpanNames()
    names.add("b", 0, 5_000)
    names.add("a", 2, 10_000)
    names.add("a", 0, 2_000_000)
    names.add("a", 13, 2_500_000)
    rows = names.summary()
    assert rows == [
        {"name": "a", "count": 3, "errors": 2, "latency": zero_latency(_10us=1, _1ms=2)},
        {"name": "b", "count": 1, "errors": 0, "latency": zero_latency(_0s=1)}]
    assert list(rows[0]["latency"]) == list(LATENCY_LABELS)
    assert SpanNames().summary() == []


def test_names_past_max_names_are_counted_together_and_known_ones_apart() -> None:
    names = SpanNames()
    for i in range(MAX_NAMES):
        names.add("n%05d" % i, 0, 0)
    names.add("late", 2, 20_000)
    names.add("later", 0, 2_000_000)
    names.add("n00000", 1, 0)  # known before the limit: still its own row
    rows = {row["name"]: row for row in names.summary()}
    assert len(rows) == MAX_NAMES + 1 and "late" not in rows and "later" not in rows
    assert rows[OTHER_NAMES] == {"name": OTHER_NAMES, "count": 2, "errors": 1,
                                 "latency": zero_latency(_10us=1, _1ms=1)}
    assert (rows["n00000"]["count"], rows["n00000"]["errors"]) == (2, 1)


def test_kept_spans_evict_past_max_spans_then_past_max_bytes_oldest_first() -> None:
    kept = KeptSpans(max_spans=3, max_span_bytes=250)
    records = [record("s%d" % i, i + 1) for i in range(4)]
    for one in records:
        kept.count(one)
        kept.keep(one, 100)
    assert len(kept.kept()) == 4 and kept.bytes == 400  # nothing goes before evict()
    kept.evict()
    # Four past max_spans=3: s0 goes; 300 bytes past 250: s1 goes.
    assert [r["name"] for r in kept.kept()] == ["s2", "s3"]
    assert kept.evicted == {"max_spans": 1, "max_span_bytes": 1} and kept.bytes == 200
    assert kept.kept()[0] is records[2]  # references, not copies
    assert [row["name"] for row in kept.names.summary()] == ["s0", "s1", "s2", "s3"]
    assert [r["name"] for r in kept.recent(1)] == ["s3"]
    assert [r["name"] for r in kept.recent(10)] == ["s2", "s3"]
    assert kept.recent(0) == [] and kept.recent(-5) == []


def test_json_default_writes_bytes_as_base64_and_anything_else_as_its_text() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    assert json_default(b"\x00\xff\xfe") == "AP/+"
    assert json_default(b"") == ""
    assert json_default(Odd()) == "odd!"
    assert json_default(("a", 1)) == "('a', 1)"


# -- the document ----------------------------------------------------------------

def test_an_empty_store_answers_empty_lists() -> None:
    store = Store([])
    assert ask(store) == {"spanNames": [], "interval": 2.5, "kept": 0, "recent": []}
    assert ask(store, trace="f" * 32) == {"spanNames": [], "interval": 2.5, "kept": 0,
                                          "matched": 0, "trace": []}
    assert ask(store, name="x", errors="1") == {"spanNames": [], "interval": 2.5, "kept": 0,
                                                "matched": 0, "spans": []}


def test_without_a_query_the_latest_spans_come_oldest_first_with_extra_fields() -> None:
    store = Store([record("s%d" % i, i + 1, attributes={"raw": b"\x01\x02"})
                   for i in range(120)])
    doc = ask(store, extra={"dropped": {"unread": 3}})
    assert sorted(doc) == ["dropped", "interval", "kept", "recent", "spanNames"]
    assert doc["dropped"] == {"unread": 3} and doc["kept"] == 120
    assert [s["name"] for s in doc["recent"]] == ["s%d" % i for i in range(20, 120)]  # 100
    assert doc["recent"][0]["attributes"] == {"raw": "AQI="}  # bytes: base64
    assert [s["name"] for s in ask(store, limit="3")["recent"]] == ["s117", "s118", "s119"]
    assert len(ask(store, limit="many")["recent"]) == 100  # not a number: the default
    assert ask(store, limit="0")["recent"] == []
    assert len(doc["spanNames"]) == 120 and doc["spanNames"][0]["name"] == "s0"


def test_a_bucket_lists_newest_first_at_most_limit_and_max_tracez_spans() -> None:
    store = Store([record("rpc", 1, duration=2_000_000),
                   record("rpc", 2, duration=3_000_000, code=2, message="broke"),
                   record("db", 3, duration=4_000_000),
                   record("rpc", 4, duration=20_000, code=5),
                   record("rpc", 5, duration=9_999_999),
                   record("rpc", 6, duration=10_000_000)], max_tracez_spans=2)
    doc = ask(store, name="rpc", latency="1ms", limit="10")
    assert sorted(doc) == ["interval", "kept", "matched", "spanNames", "spans"]
    assert [s["spanId"][-1] for s in doc["spans"]] == ["5", "2"]  # capped at 2 of 3
    assert (doc["matched"], doc["kept"]) == (3, 6)
    assert len(ask(store, name="rpc", latency="1ms", limit="1")["spans"]) == 1
    assert ask(store, name="rpc", latency="1ms", limit="-4")["spans"] == []
    errors = ask(store, name="rpc", errors="1")
    assert [s["spanId"][-1] for s in errors["spans"]] == ["4", "2"] and errors["matched"] == 2
    assert errors["spans"][1]["status"] == {"code": 2, "message": "broke"}
    assert ask(store, name="rpc", errors="0")["matched"] == 5  # "0": no error filter
    both = ask(store, name="rpc", latency="10us", errors="yes")
    assert [s["spanId"][-1] for s in both["spans"]] == ["4"]
    assert ask(store, name="nobody")["matched"] == 0


def test_a_trace_comes_by_start_with_exact_offsets_and_records_unchanged() -> None:
    records = [record("child", 3, start=T0 + 1_001, parent=1),
               record("root", 1, start=T0),
               record("other", 9, trace=2, start=T0 - 5),
               record("child", 2, start=T0 + 3, parent=1),
               record("late", 4, start=T0 + 10**12, parent=2)]
    store = Store(records, max_tracez_spans=3)
    doc = ask(store, trace="%032X" % 1, name="root", latency="1s")  # trace wins; any case
    assert sorted(doc) == ["interval", "kept", "matched", "spanNames", "trace"]
    assert (doc["matched"], doc["kept"]) == (4, 5)
    assert [(s["spanId"][-1], s["parentSpanId"][-1:], s["offsetNano"], s["startUnixNano"])
            for s in doc["trace"]] == [("1", "", 0, T0), ("2", "1", 3, T0 + 3),
                                       ("3", "1", 1_001, T0 + 1_001)]  # 3 of 4 shown
    assert all("offsetNano" not in one for one in store.kept())  # the store's own: as they were
    assert [s["name"] for s in ask(store, trace="%032x" % 2)["trace"]] == ["other"]


@pytest.mark.parametrize("query, message", [
    ({"trace": "xyz"}, "trace: expected 32 hex digits, not 'xyz'"),
    ({"trace": "0" * 33}, "trace: expected 32 hex digits, not '%s'" % ("0" * 33)),
    ({"trace": "g" * 32}, "trace: expected 32 hex digits, not '%s'" % ("g" * 32)),
    ({"trace": "0" * 32 + "\n"}, "trace: expected 32 hex digits, not '%s\\n'" % ("0" * 32)),
    ({"trace": "z" * 100}, "trace: expected 32 hex digits, not '%s'" % ("z" * 64)),
    ({"name": "rpc", "latency": "2ms"},
     "latency: one of 0s, 10us, 100us, 1ms, 10ms, 100ms, 1s, 10s, 100s, not '2ms'"),
    ({"name": "rpc", "latency": "9" * 80}, "latency: one of 0s, 10us, 100us, 1ms, 10ms, "
     "100ms, 1s, 10s, 100s, not '%s'" % ("9" * 64)),
])
def test_a_bad_parameter_raises_bad_query_naming_it(query: Dict[str, str], message: str
                                                    ) -> None:
    with pytest.raises(BadQuery) as raised:
        tracez_json(Store([record("rpc", 1)]), lambda key, default: query.get(key, default), 1.0)
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


def test_the_document_is_ascii_and_reads_back_every_character() -> None:
    name = 'caf\u00e9 \u2603 "quoted" </script>\n\ud800'
    store = Store([record(name, 1, attributes={name: name},
                          annotations=[{"timeUnixNano": T0 + 7, "value": "\U0001f600"}])])
    body = tracez_json(store, lambda key, default: default, 1.0)
    assert body.isascii() and b"\\u00e9" in body and b"\\ud800" in body
    (span,) = json.loads(body)["recent"]
    assert span["name"] == name and span["attributes"] == {name: name}
    assert span["annotations"] == [{"timeUnixNano": T0 + 7, "value": "\U0001f600"}]
    assert span["startUnixNano"] == T0  # exact: JSON integers, not doubles


def test_the_table_escapes_html_and_shows_the_newest_span_first() -> None:
    records = [record("<b>old</b>", 1, duration=2_243_847, service="a&b"),
               record("new\ud800", 2, trace=0xABC, duration=45_928, service="svc")]
    summary = [{"name": "<i>x</i>", "count": 3, "errors": 1,
                "latency": zero_latency(_10us=2, _1ms=1)}]
    page = tracez_table(summary, records).decode("utf-8")
    head = "".join("<th>&ge;%s</th>" % label for label in LATENCY_LABELS)
    assert "<th>Errors</th>%s</tr>" % head in page
    assert ("<tr><td>&lt;i&gt;x&lt;/i&gt;</td><td>3</td><td>1</td><td>0</td><td>2</td>"
            "<td>0</td><td>1</td><td>0</td><td>0</td><td>0</td><td>0</td><td>0</td></tr>") in page
    newest = ("<tr><td>svc</td><td>new\ufffd</td><td>%032x</td><td>%016x</td>"
              "<td>0.046 ms</td></tr>" % (0xABC, 2))
    oldest = ("<tr><td>a&amp;b</td><td>&lt;b&gt;old&lt;/b&gt;</td><td>%032x</td><td>%016x</td>"
              "<td>2.244 ms</td></tr>" % (1, 1))
    assert newest in page and oldest in page and page.index(newest) < page.index(oldest)
    assert "<b>" not in page and "<i>" not in page
    empty = tracez_table([], []).decode("utf-8")
    assert empty.startswith("<!DOCTYPE html>") and "<td>" not in empty
