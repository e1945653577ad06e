"""gotools_compat.agent._grpc: the stream bookkeeping and the Export/Config handlers, directly
(no sockets: a stand-in for grpcio's servicer context, an Agent that is not started)."""

from __future__ import annotations

import logging
import time
from typing import Any, Generator, Iterator, List, Optional, Tuple, cast

import grpc
import pytest

from gotools_compat._oc import proto
from gotools_compat.agent import Agent
from gotools_compat.agent._grpc import MetricsService, Streams, TraceService
from gotools_compat.agent._protorequest import parse
from tests.agent_requests import MD, Request, metric, node
from tests.helpers import samples

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.trace.v1 import trace_service_pb2  # noqa: E402
from opencensus.proto.trace.v1 import trace_pb2  # noqa: E402

# A Node whose service name is not UTF-8: protobuf refuses it when the agent reads it.
BAD_NODE = b"\x1a\x04\x0a\x02\xff\xfe"


class Aborted(Exception):
    """What grpcio's ``ServicerContext.abort`` raises (grpcio raises a bare Exception)."""


class Context:
    """The part of grpcio's ServicerContext that the handlers use."""

    def __init__(self) -> None:
        self.aborted: Optional[Tuple[grpc.StatusCode, str]] = None
        self.cancelled = 0

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted(details)

    def cancel(self) -> None:
        self.cancelled += 1


class Gone(grpc.RpcError):  # type: ignore[misc]
    """What a request iterator raises when its client goes away mid-stream."""


def streams(max_streams: int = 8, idle_timeout: float = 60.0) -> Tuple[Streams, List[int]]:
    full: List[int] = []
    return Streams(idle_timeout, max_streams, full.append), full


def ticked() -> float:
    """A monotonic reading, returned once the clock has moved on past it (a spin of ~0.1 ms,
    so that what happens after the call is strictly later than the reading)."""
    mark = time.monotonic()
    while time.monotonic() - mark < 1e-4:
        pass
    return mark


def lean(request: Any) -> Any:
    """A metrics request as grpcio hands it to the handler (the agent's lean reading)."""
    return parse(request.SerializeToString())


def gauge(value: int, sender: Any = None) -> Any:
    return lean(Request(node=sender, metrics=[metric("g", MD.GAUGE_INT64, [], [([], value)])]))


def stored(agent: Agent) -> List[Tuple[Tuple[Tuple[str, str], ...], float]]:
    """The agent's promdemo_g series: (sorted labels, value)."""
    return sorted((labels, value) for (name, labels), value
                  in samples(agent.metrics_text().decode()).items() if name == "promdemo_g")


def target(job: str, instance: str) -> Tuple[Tuple[str, str], ...]:
    return (("instance", instance), ("job", job), ("vendor", "otc"))


@pytest.fixture
def agent() -> Agent:
    return Agent("127.0.0.1:0", None)  # never started: only its sink side is used


# -- Streams --------------------------------------------------------------------

def test_watch_passes_every_request_through_and_holds_a_slot_while_open() -> None:
    s, full = streams()
    assert s.open() == 0
    first = s.watch(Context(), iter(["a", "b"]))
    assert s.open() == 0  # a stream counts from its first read on
    assert next(first) == "a" and s.open() == 1
    second = s.watch(Context(), iter(["c"]))
    assert list(second) == ["c"] and s.open() == 1
    assert list(first) == ["b"] and s.open() == 0
    assert full == []


def test_a_stream_beyond_max_streams_is_refused_resource_exhausted_and_counted() -> None:
    s, full = streams(max_streams=2)
    held = [s.watch(Context(), iter([i, i])) for i in range(2)]
    assert [next(h) for h in held] == [0, 1] and s.open() == 2
    refused = Context()
    with pytest.raises(Aborted):
        next(s.watch(refused, iter(["never read"])))
    assert refused.aborted == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                               "the agent has 2 gRPC streams open (--max-streams)")
    assert full == [2] and s.open() == 2
    assert [list(h) for h in held] == [[0], [1]]  # the open ones go on unharmed
    assert s.open() == 0


def test_a_stream_that_ends_fails_or_is_closed_gives_its_slot_back() -> None:
    s, full = streams(max_streams=1)

    def failing() -> Iterator[str]:
        yield "x"
        raise Gone()

    ended = s.watch(Context(), iter(["a"]))
    assert list(ended) == ["a"] and s.open() == 0
    broken = s.watch(Context(), failing())
    assert next(broken) == "x" and s.open() == 1
    with pytest.raises(Gone):
        next(broken)
    assert s.open() == 0
    closed = cast(Generator[str, None, None], s.watch(Context(), iter(["a", "b"])))
    assert next(closed) == "a" and s.open() == 1
    closed.close()  # what grpcio does when the handler stops reading
    assert s.open() == 0
    assert list(s.watch(Context(), iter(["again"]))) == ["again"] and full == []


def test_end_idle_cancels_every_stream_silent_before_the_cutoff_and_counts_them() -> None:
    s, _ = streams(idle_timeout=60.0)
    contexts = [Context(), Context(), Context()]
    held = [s.watch(c, iter([1, 2])) for c in contexts]
    for h in held:
        next(h)
    assert s.end_idle(time.monotonic()) == 0  # all seen within the last 60 s
    assert [c.cancelled for c in contexts] == [0, 0, 0] and s.open() == 3
    assert s.end_idle(time.monotonic() + 60.5) == 3  # as if 60.5 s went by in silence
    assert [c.cancelled for c in contexts] == [1, 1, 1] and s.open() == 0
    assert s.end_idle(time.monotonic() + 1000.0) == 0  # each is cancelled once
    assert [c.cancelled for c in contexts] == [1, 1, 1]


def test_a_message_refreshes_its_stream_so_only_the_silent_one_is_ended() -> None:
    s, _ = streams(idle_timeout=30.0)
    silent_ctx, lively_ctx = Context(), Context()
    silent = s.watch(silent_ctx, iter(["s1", "s2"]))
    lively = s.watch(lively_ctx, iter(["l1", "l2"]))
    next(silent)
    next(lively)
    mark = ticked()  # both streams were last seen at or before mark
    assert next(lively) == "l2"  # seen again, after mark
    assert s.end_idle(mark + 1e-4 / 2 + 30.0) == 1  # the cutoff: between the two
    assert (silent_ctx.cancelled, lively_ctx.cancelled, s.open()) == (1, 0, 1)


def test_a_message_after_end_idle_cancelled_its_stream_does_not_reopen_it() -> None:
    s, full = streams(max_streams=1, idle_timeout=5.0)
    ctx = Context()
    stale = s.watch(ctx, iter(["a", "late"]))
    next(stale)
    assert s.end_idle(time.monotonic() + 10.0) == 1 and s.open() == 0
    assert next(stale) == "late" and s.open() == 0  # passed on, but no longer counted
    newcomer = s.watch(Context(), iter(["n"]))  # its slot is free for another stream
    assert list(newcomer) == ["n"] and full == [] and ctx.cancelled == 1
    assert s.end_idle(time.monotonic() + 10.0) == 0 and ctx.cancelled == 1


# -- MetricsService / TraceService ------------------------------------------------

def test_metrics_export_answers_nothing_and_stores_under_the_streams_latest_node(
        agent: Agent) -> None:
    s, _ = streams()
    service = MetricsService(agent, s)
    requests = [gauge(1, node("svc", "h1", 10)), gauge(2),  # no node: the first one's
                gauge(5, node("other", "h2", 20))]  # a node again: that sender from now on
    assert list(service.Export(iter(requests), Context())) == []
    assert stored(agent) == [(target("svc", "h1:10"), 2), (target("other", "h2:20"), 5)]
    assert agent.senders() == [("other", "h2:20"), ("svc", "h1:10")]
    assert s.open() == 0


def test_a_request_that_does_not_read_aborts_invalid_argument_keeping_earlier_ones(
        agent: Agent, caplog: pytest.LogCaptureFixture) -> None:
    s, _ = streams()
    bad = gauge(9)
    bad.node = BAD_NODE
    ctx = Context()
    with caplog.at_level(logging.WARNING, logger="gotools_compat.agent._grpc"):
        with pytest.raises(Aborted):
            list(MetricsService(agent, s).Export(iter([gauge(1, node("svc")), bad,
                                                        gauge(3)]), ctx))
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.INVALID_ARGUMENT
    # The rest is protobuf's own text, which differs between its versions.
    assert ctx.aborted[1].startswith("invalid protobuf Node: ")
    assert [r.getMessage() for r in caplog.records if r.name == "gotools_compat.agent._grpc"] \
        == ["metrics stream: " + ctx.aborted[1]]
    assert stored(agent) == [(target("svc", "host:1"), 1)]  # the request before it stays
    assert s.open() == 0


def test_a_client_gone_mid_stream_ends_the_export_quietly_keeping_what_came(
        agent: Agent, caplog: pytest.LogCaptureFixture) -> None:
    s, _ = streams()

    def requests() -> Iterator[Any]:
        yield gauge(4, node("svc", "h", 3))
        raise Gone("the client went away")

    ctx = Context()
    with caplog.at_level(logging.INFO, logger="gotools_compat.agent._grpc"):
        assert list(MetricsService(agent, s).Export(requests(), ctx)) == []
    assert ctx.aborted is None
    assert [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "gotools_compat.agent._grpc"] == [
        (logging.INFO, "metrics stream ended by the client: the client went away")]
    assert stored(agent) == [(target("svc", "h:3"), 4)] and s.open() == 0


def test_a_metrics_stream_over_the_limit_is_refused_before_it_stores_anything(
        agent: Agent) -> None:
    s, full = streams(max_streams=1)
    held = s.watch(Context(), iter(["held", "held"]))
    next(held)
    ctx = Context()
    with pytest.raises(Aborted):
        list(MetricsService(agent, s).Export(iter([gauge(1, node("svc"))]), ctx))
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert full == [1] and stored(agent) == [] and agent.senders() == []


def span(name: str, span_id: int) -> Any:
    return trace_pb2.Span(trace_id=bytes(range(16)), span_id=span_id.to_bytes(8, "big"),
                          name={"value": name}, start_time={"seconds": 100},
                          end_time={"seconds": 100, "nanos": 2_000})


def test_trace_export_keeps_spans_under_the_node_of_the_first_request(agent: Agent) -> None:
    Trace = trace_service_pb2.ExportTraceServiceRequest
    requests = [Trace(node=common_pb2.Node(service_info={"name": "py"}), spans=[span("a", 1)]),
                Trace(spans=[span("b", 2), span("c", 3)]),  # no node: the first one's
                Trace(node=common_pb2.Node(service_info={"name": "go"}), spans=[span("d", 4)])]
    s, _ = streams()
    assert list(TraceService(agent, s).Export(iter(requests), Context())) == []
    assert [(r["name"], r["service"], r["spanId"]) for r in agent.traces.recent()] == [
        ("a", "py", "0000000000000001"), ("b", "py", "0000000000000002"),
        ("c", "py", "0000000000000003"), ("d", "go", "0000000000000004")]
    assert agent.traces.recent()[0]["durationNano"] == 2_000 and s.open() == 0


def test_trace_config_is_unimplemented(agent: Agent) -> None:
    ctx = Context()
    with pytest.raises(Aborted):
        list(TraceService(agent, streams()[0]).Config(iter([]), ctx))
    assert ctx.aborted == (grpc.StatusCode.UNIMPLEMENTED, "the agent does not push trace configs")
