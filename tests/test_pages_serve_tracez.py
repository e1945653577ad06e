"""/debug/tracez of serve(): the spans that end while the exporter is the process exporter.

Spans are made with gotools_compat.event on a clock the test moves (so every
duration, bucket and offset is exact) and read over HTTP from a real
serve() on 127.0.0.1, port 0.
"""

from __future__ import annotations

import http.client
import io
import json
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from gotools_compat import event, export
from gotools_compat._pages import CSP
from gotools_compat.event import spans as event_spans
from gotools_compat.export import prometheus

pytestmark = pytest.mark.usefixtures("registry")

T0 = 1_795_676_400_000_000_000  # 2026-11-26 07:00:00 UTC, past 2**53 ns
SCRIPT = '<script>window.__x=1</script><img src=x onerror="window.__x=2">'
ZERO = {"0s": 0, "10us": 0, "100us": 0, "1ms": 0, "10ms": 0, "100ms": 0, "1s": 0, "10s": 0,
        "100s": 0}


class Clock:
    """event.spans' clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def to(self, offset_ns: int) -> None:
        self.now = T0 + offset_ns


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(event_spans, "_time_ns", c)
    return c


@pytest.fixture
def restore_exporter() -> Iterator[None]:
    saved = export.get_exporter()
    yield
    export.set_exporter(saved)


def get(port: int, path: str) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def ask(port: int, query: str = "") -> Dict[str, Any]:
    status, headers, body = get(port, "/debug/tracez.json" + query)
    assert status == 200 and headers["content-type"] == "application/json", body
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    doc: Dict[str, Any] = json.loads(body)
    return doc


def latency(**counts: int) -> Dict[str, int]:
    return dict(ZERO, **{k.replace("_", ""): v for k, v in counts.items()})


def record_traces(clock: Clock) -> Dict[str, event.Span]:
    """Two traces: rpc > db.query > net.dial, rpc > db.query (an error); another rpc."""
    method, n = event.new_string_key("method"), event.new_int_key("n")
    ok, ratio = event.new_boolean_key("ok"), event.new_float64_key("ratio")
    spans: Dict[str, event.Span] = {}
    clock.to(0)
    root_ctx, end_root = event.start_span(event.background(), "rpc", method.of(SCRIPT),
                                          n.of(5), ok.of(True), ratio.of(0.5))
    clock.to(1_024)  # (multiples of 256 ns: what a browser's doubles hold exactly here)
    db_ctx, end_db = event.start_span(root_ctx, "db.query")
    clock.to(513_024)
    event.print(db_ctx, "querying", n.of(7))
    clock.to(2_000)
    with event.span(db_ctx, "net.dial") as dial_ctx:
        clock.to(22_000)  # 20 us
    clock.to(2_001_024)  # 2 ms
    end_db()
    clock.to(3_000_000)
    with pytest.raises(ValueError):
        with event.span(root_ctx, "db.query") as bad_ctx:
            clock.to(3_050_000)  # 50 us
            raise ValueError("boom " + SCRIPT)
    clock.to(5_000_000)
    end_root()
    clock.to(6_000_000)
    other_ctx, end_other = event.start_span(event.background(), "rpc")
    clock.to(156_000_000)  # 150 ms
    end_other()
    for name, ctx in [("root", root_ctx), ("db", db_ctx), ("dial", dial_ctx), ("bad", bad_ctx),
                      ("other", other_ctx)]:
        found = event.get_span(ctx)
        assert found is not None
        spans[name] = found
    return spans


def test_tracez_is_served_once_the_exporter_is_the_process_exporter(restore_exporter: None
                                                                    ) -> None:
    exporter = prometheus.new(namespace="app")
    with exporter.serve(port=0, page_interval=0.25) as server:
        # Not (yet) the process exporter: the paths are the metrics, as before.
        for path in ("/debug/tracez", "/debug/tracez.json"):
            status, headers, _ = get(server.port, path)
            assert status == 200 and headers["content-type"].startswith("text/plain")
        assert json.loads(get(server.port, "/metrics.json")[2])["tracez"] is False
        export.set_exporter(export.multi(export.log_writer(io.StringIO(), True), exporter))
        assert exporter.keeps_spans()
        export.set_exporter(exporter)
        status, headers, page = get(server.port, "/debug/tracez")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b'src="../_pages/tracez.js"' in page
        assert headers["content-security-policy"] == CSP
        assert server.tracez_url == "http://127.0.0.1:%d/debug/tracez" % server.port
        doc = ask(server.port)
        assert doc == {"spanNames": [], "interval": 0.25, "kept": 0, "recent": [],
                       "dropped": {"max_spans": 0, "max_span_bytes": 0, "unread": 0}}
    # (A server's /metrics.json is paced: a new server, for an answer built now.)
    with exporter.serve(port=0) as server:
        assert json.loads(get(server.port, "/metrics.json")[2])["tracez"] is True


def test_tracez_json_holds_counts_buckets_trees_attributes_and_errors(
        clock: Clock, restore_exporter: None) -> None:
    exporter = prometheus.new(namespace="app")
    export.set_exporter(exporter)
    spans = record_traces(clock)
    export.set_exporter(None)
    event.start_span(event.background(), "unseen")[1]()  # no longer the process exporter
    root, db, dial, bad, other = (spans[k] for k in ("root", "db", "dial", "bad", "other"))
    trace = "%032x" % root.trace_id
    with exporter.serve(port=0, page_interval=0.5) as server:
        port = server.port
        doc = ask(port)
        assert doc["spanNames"] == [
            {"name": "db.query", "count": 2, "errors": 1, "latency": latency(_10us=1, _1ms=1)},
            {"name": "net.dial", "count": 1, "errors": 0, "latency": latency(_10us=1)},
            {"name": "rpc", "count": 2, "errors": 0, "latency": latency(_1ms=1, _100ms=1)}]
        assert doc["kept"] == 5 and doc["interval"] == 0.5
        assert [s["name"] for s in doc["recent"]] == [
            "net.dial", "db.query", "db.query", "rpc", "rpc"]  # by end
        assert ask(port, "?limit=2")["recent"] == doc["recent"][-2:]
        # One bucket; the errors of a name.
        listed = ask(port, "?name=db.query&latency=1ms")
        assert [s["spanId"] for s in listed["spans"]] == ["%016x" % db.id]
        assert (listed["matched"], listed["kept"]) == (1, 5) and "recent" not in listed
        assert ask(port, "?name=rpc&latency=100ms")["spans"][0]["durationNano"] == 150_000_000
        assert ask(port, "?name=rpc&latency=10us")["spans"] == []
        (failed,) = ask(port, "?name=db.query&errors=1")["spans"]
        assert failed["spanId"] == "%016x" % bad.id
        assert failed["status"] == {"code": 2, "message": "ValueError: boom " + SCRIPT}
        assert failed["durationNano"] == 50_000
        # The whole trace: by start, parents named, offsets exact.
        whole = ask(port, "?trace=" + trace.upper())
        assert whole["matched"] == 4
        assert [(s["spanId"], s["parentSpanId"], s["offsetNano"], s["durationNano"])
                for s in whole["trace"]] == [
            ("%016x" % root.id, "", 0, 5_000_000),
            ("%016x" % db.id, "%016x" % root.id, 1_024, 2_000_000),
            ("%016x" % dial.id, "%016x" % db.id, 2_000, 20_000),
            ("%016x" % bad.id, "%016x" % root.id, 3_000_000, 50_000)]
        first = whole["trace"][0]
        assert first["attributes"] == {"method": SCRIPT, "n": 5, "ok": True, "ratio": 0.5}
        assert (first["traceId"], first["startUnixNano"], first["service"]) == (trace, T0, "app")
        assert first["status"] == {"code": 0, "message": ""} and first["kind"] == "UNSPECIFIED"
        assert whole["trace"][1]["annotations"] == [{"timeUnixNano": T0 + 513_024,
                                                     "value": "querying"}]
        assert ask(port, "?trace=%032x" % other.trace_id)["trace"][0]["parentSpanId"] == ""
        assert ask(port, "?trace=" + "0" * 32)["trace"] == []
        # ?format=json is the same answer; ?format=table the page without JavaScript.
        status, _, body = get(port, "/debug/tracez?format=json&name=db.query&errors=1")
        assert status == 200 and json.loads(body)["spans"] == [failed]
        status, headers, table = get(port, "/debug/tracez?format=table")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"<td>db.query</td><td>2</td><td>1</td>" in table and b"<script>" not in table


@pytest.mark.parametrize("query", ["?trace=xyz", "?trace=" + "0" * 33, "?trace=" + "g" * 32,
                                   "?name=rpc&latency=2ms"])
def test_a_bad_parameter_is_a_400(restore_exporter: None, query: str) -> None:
    exporter = prometheus.new()
    export.set_exporter(exporter)
    with exporter.serve(port=0) as server:
        status, headers, body = get(server.port, "/debug/tracez.json" + query)
    assert status == 400 and headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert error.startswith("trace: expected 32 hex digits" if "trace" in query
                            else "latency: one of 0s, 10us, 100us")


def end_spans(names: List[str], **tags: str) -> None:
    key = event.new_string_key("big")
    for name in names:
        event.start_span(event.background(), name, *[key.of(v) for v in tags.values()])[1]()


def test_span_bounds_below_their_least_are_refused_not_clamped() -> None:
    with pytest.raises(ValueError, match=r"max_spans must be an int >= 0, not -1"):
        prometheus.new(max_spans=-1)
    with pytest.raises(ValueError, match=r"max_span_bytes must be an int >= 1, not 0"):
        prometheus.new(max_span_bytes=0)
    assert prometheus.new(max_spans=0).spans.max_spans == 0  # 0: keep none (documented)


def test_at_most_max_spans_are_kept_the_oldest_dropped_and_counted(
        clock: Clock, restore_exporter: None) -> None:
    exporter = prometheus.new(max_spans=4)
    export.set_exporter(exporter)
    end_spans(["s%d" % i for i in range(7)])  # 4 + 3 before any read
    with exporter.serve(port=0) as server:
        doc = ask(server.port)
        assert [s["name"] for s in doc["recent"]] == ["s3", "s4", "s5", "s6"]
        assert doc["kept"] == 4
        assert doc["dropped"] == {"max_spans": 0, "max_span_bytes": 0, "unread": 3}
        # (Spans pushed out before any read are in no name's row.)
        assert [row["name"] for row in doc["spanNames"]] == ["s3", "s4", "s5", "s6"]
        end_spans(["s7", "s8"])  # read since: the oldest kept ones go
        doc = ask(server.port)
        assert [s["name"] for s in doc["recent"]] == ["s5", "s6", "s7", "s8"]
        assert doc["dropped"] == {"max_spans": 2, "max_span_bytes": 0, "unread": 3}
        assert [(row["name"], row["count"]) for row in doc["spanNames"]] == [
            ("s%d" % i, 1) for i in range(3, 9)]


def test_strings_are_cut_and_the_byte_bound_keeps_the_newest(clock: Clock,
                                                              restore_exporter: None) -> None:
    exporter = prometheus.new(max_spans=100, max_span_bytes=12_000)
    export.set_exporter(exporter)
    end_spans(["big%d" % i for i in range(3)], big="x" * 5000)  # about 6.3 KB each, cut
    end_spans(["n" * 5000], big="y" * 5000)  # about 10.3 KB
    with exporter.serve(port=0) as server:
        doc = ask(server.port)
    (kept,) = doc["recent"]
    assert kept["name"] == "n" * 4096 and kept["attributes"] == {"big": "y" * 4096}
    assert doc["dropped"] == {"max_spans": 0, "max_span_bytes": 3, "unread": 0}
    assert exporter.spans.truncated == 5  # four attributes, one name
    assert sum(row["count"] for row in doc["spanNames"]) == 4


def test_process_event_never_raises_and_keeps_only_ended_spans(restore_exporter: None) -> None:
    exporter = prometheus.new()
    ended = event.Event(event.END_SPAN, T0, "x")
    for ctx in (object(), None, event.background()):
        assert exporter.process_event(ctx, ended) == (ctx, ended)  # type: ignore[arg-type]
    assert not exporter.spans.seen and not exporter.keeps_spans()
    assert prometheus.new(max_spans=0).keeps_spans() is False
    off = prometheus.new(max_spans=0)
    export.set_exporter(off)
    end_spans(["s"])
    assert not off.spans.seen and not off.keeps_spans()
