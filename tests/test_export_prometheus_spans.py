"""gotools_compat.export._prometheus_spans: span records and the bounded span store of
/debug/tracez, directly (no sockets)."""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Tuple

import pytest

from gotools_compat import event
from gotools_compat._pages.tracez_json import BadQuery, Cut
from gotools_compat.export._prometheus_spans import (DEFAULT_MAX_SPAN_BYTES, DEFAULT_MAX_SPANS,
                                                     MAX_ANNOTATIONS, SpanStore, span_record)

T0 = 1_795_676_400_000_000_000  # ns since the epoch, past 2**53


def make_span(name: str = "op", tags: Tuple[Any, ...] = (), parent_id: int = 0,
              duration: int = 1_500, status: Optional[Tuple[int, str]] = None,
              events: Optional[List[event.Event]] = None) -> event.Span:
    span = event.Span(name, 0xABC, 0x1F, parent_id, T0, tags)
    span.end = T0 + duration
    span.status = status
    span.events = events
    return span


def log(message: str = "", error: Optional[BaseException] = None, *tags: event.Tag,
        at: int = T0 + 10) -> event.Event:
    return event.Event(event.LOG, at, message, error, tags)


def ended(store: SpanStore, *names: str) -> None:
    """End a span of each name and hand its context to ``store``, as the exporter does."""
    for name in names:
        ctx, end = event.start_span(event.background(), name)
        end()
        store.ended(ctx)


def query(params: Dict[str, str]) -> Any:
    return lambda name, default: params.get(name, default)


def test_a_record_has_hex_ids_duration_status_and_service() -> None:
    root = span_record(make_span(), "svc", Cut())
    assert root == {
        "traceId": "%032x" % 0xABC, "spanId": "000000000000001f", "parentSpanId": "",
        "name": "op", "kind": "UNSPECIFIED", "service": "svc", "startUnixNano": T0,
        "durationNano": 1_500, "status": {"code": 0, "message": ""}, "attributes": {},
        "annotations": []}
    child = span_record(make_span(parent_id=2 ** 64 - 1, duration=-5, status=(13, "bad")), "",
                        Cut())
    assert child["parentSpanId"] == "ffffffffffffffff"
    assert child["durationNano"] == 0  # an end before the start (a clock step) is not negative
    assert child["status"] == {"code": 13, "message": "bad"}


def test_attribute_values_are_typed_as_the_wire_types_them() -> None:
    any_key = event.new_key
    tags = (event.new_string_key("s").of("text"), event.new_int_key("i").of(-2 ** 63),
            any_key("big").of(2 ** 63), event.new_uint64_key("u").of(2 ** 64 - 1),
            event.new_boolean_key("b").of(False), event.new_float64_key("f").of(0.25),
            event.new_float64_key("nan").of(math.nan), event.new_float64_key("inf").of(math.inf),
            event.new_float64_key("ninf").of(-math.inf),
            event.new_error_key("e").of(OSError("disk full")), any_key("list").of([1, 2]))
    attributes = span_record(make_span(tags=tags), "", Cut())["attributes"]
    assert attributes == {
        "s": "text", "i": -2 ** 63, "big": "9223372036854775808",
        "u": "18446744073709551615", "b": False, "f": 0.25, "nan": "NaN", "inf": "+Inf",
        "ninf": "-Inf", "e": "disk full", "list": "[1, 2]"}
    assert type(attributes["b"]) is bool
    json.dumps(attributes, allow_nan=False)  # no NaN or Infinity reaches the JSON


def test_at_most_32_attributes_are_kept_the_first_ones_and_a_repeated_name_updates() -> None:
    keys = [event.new_int_key("k%02d" % i) for i in range(40)]
    tags = tuple(key.of(i) for i, key in enumerate(keys)) + (keys[0].of(99),)
    attributes = span_record(make_span(tags=tags + ("not a tag", 7)), "", Cut())["attributes"]
    assert list(attributes) == ["k%02d" % i for i in range(32)]
    assert attributes["k00"] == 99 and attributes["k31"] == 31


def test_annotations_are_the_message_the_error_or_the_tags() -> None:
    n, word = event.new_int_key("n"), event.new_string_key("word")
    events = [log("cache miss", None, n.of(1)), log("read", ValueError("eof")),
              log("", KeyError("k")), log("", ValueError()), log("", None, word.of("x"), n.of(7)),
              log("", None)]
    record = span_record(make_span(events=events), "", Cut())
    assert record["annotations"] == [
        {"timeUnixNano": T0 + 10, "value": v} for v in
        ["cache miss", "read", "'k'", "ValueError", "n=7, word=x", ""]]


def test_only_the_latest_annotations_are_kept() -> None:
    events = [log("e%d" % i, at=T0 + i) for i in range(MAX_ANNOTATIONS + 2)]
    annotations = span_record(make_span(events=events), "", Cut())["annotations"]
    assert MAX_ANNOTATIONS == 128 and len(annotations) == 128
    assert annotations[0] == {"timeUnixNano": T0 + 2, "value": "e2"}
    assert annotations[-1]["value"] == "e129"


def test_long_strings_are_cut_to_4096_characters_and_counted() -> None:
    long = "x" * 5000
    span = make_span("n" * 5000, status=(2, long), events=[log(long)],
                     tags=(event.new_string_key("v").of(long),))
    span.add_attribute("k" * 5000, "short")
    cut = Cut()
    record = span_record(span, "svc", cut)
    assert record["name"] == "n" * 4096
    assert record["status"]["message"] == "x" * 4096
    assert record["annotations"][0]["value"] == "x" * 4096
    assert record["attributes"] == {"v": "x" * 4096, "k" * 4096: "short"}
    assert cut.count == 5


def test_store_bounds_must_be_ints_at_least_their_least() -> None:
    assert (DEFAULT_MAX_SPANS, DEFAULT_MAX_SPAN_BYTES) == (1_000, 16 * 1024 * 1024)
    with pytest.raises(ValueError, match=r"^max_tracez_spans must be an int >= 1, not 0$"):
        SpanStore(max_tracez_spans=0)
    with pytest.raises(ValueError, match=r"^max_spans must be an int >= 0, not True$"):
        SpanStore(max_spans=True)
    with pytest.raises(ValueError, match=r"^max_span_bytes must be an int >= 1, not 1.5$"):
        SpanStore(max_span_bytes=1.5)  # type: ignore[arg-type]
    assert SpanStore(service="s" * 5000).service == "s" * 4096


def test_only_ended_spans_of_our_contexts_are_taken() -> None:
    store = SpanStore()
    ctx, end = event.start_span(event.background(), "open")
    for other in (ctx, None, object(), event.background()):  # open, or no span at all
        store.ended(other)
    assert not store.seen and store.kept() == []
    end()
    store.ended(ctx)
    assert store.seen
    assert [r["name"] for r in store.kept()] == ["open"]
    assert store.seen  # still, once read


def test_a_store_of_no_spans_takes_none() -> None:
    store = SpanStore(max_spans=0)
    ended(store, "a", "b")
    assert not store.seen
    assert store.kept() == [] and store.summary() == []
    assert store.dropped() == {"max_spans": 0, "max_span_bytes": 0, "unread": 0}


def test_recent_is_capped_by_max_tracez_spans_and_kept_is_oldest_first() -> None:
    store = SpanStore(max_spans=10, max_tracez_spans=2, service="app")
    ended(store, "s0", "s1", "s2", "s3", "s4")
    assert [r["name"] for r in store.recent(100)] == ["s3", "s4"]
    assert [r["name"] for r in store.recent(1)] == ["s4"]
    assert store.recent(0) == [] and store.recent(-1) == []
    kept = store.kept()
    assert [r["name"] for r in kept] == ["s0", "s1", "s2", "s3", "s4"]
    assert all(r["service"] == "app" for r in kept)
    assert all(a is b for a, b in zip(kept, store.kept()))  # the same records, not copies


def test_spans_pushed_out_before_a_read_are_unread_and_in_no_row() -> None:
    store = SpanStore(max_spans=2)
    ended(store, "a", "b", "c")
    assert [(row["name"], row["count"]) for row in store.summary()] == [("b", 1), ("c", 1)]
    ended(store, "d")
    assert store.dropped() == {"max_spans": 1, "max_span_bytes": 0, "unread": 1}
    assert [(row["name"], row["count"]) for row in store.summary()] == [
        ("b", 1), ("c", 1), ("d", 1)]


def test_json_carries_dropped_and_the_page_fields() -> None:
    store = SpanStore(max_spans=1)
    ended(store, "a", "b")
    doc = json.loads(store.json(query({}), 1.5))
    assert (doc["interval"], doc["kept"]) == (1.5, 1)
    assert [s["name"] for s in doc["recent"]] == ["b"]
    assert doc["dropped"] == {"max_spans": 0, "max_span_bytes": 0, "unread": 1}
    listed = json.loads(store.json(query({"name": "b"}), 1.5))
    assert (listed["matched"], [s["name"] for s in listed["spans"]]) == (1, ["b"])
    with pytest.raises(BadQuery):
        store.json(query({"trace": "xyz"}), 1.5)


def test_html_escapes_names_and_lists_the_latest_limit_spans_newest_first() -> None:
    store = SpanStore()
    ended(store, "<b>first</b>", "second", "third")
    page = store.html(limit=2).decode("utf-8")
    assert "<td>&lt;b&gt;first&lt;/b&gt;</td><td>1</td><td>0</td>" in page
    assert "<b>first" not in page
    latest = page.split("<h2>Latest spans</h2>", 1)[1]
    assert "first" not in latest
    assert latest.index("<td>third</td>") < latest.index("<td>second</td>")
