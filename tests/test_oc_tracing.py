"""gotools_compat._oc.tracing: where a span started without a context stands in opencensus.

:func:`tracing.ambient` is asked directly, with and without an opencensus
tracer and current span; our own span class is a stand-in with the fields
``ambient`` and :class:`tracing.Scope` read.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Iterator, List

import pytest
from opencensus.trace import base_exporter, execution_context, samplers
from opencensus.trace.span_context import SpanContext
from opencensus.trace.tracer import Tracer
from opencensus.trace.tracers.noop_tracer import NoopTracer

from gotools_compat import _oc
from gotools_compat._oc import tracing

_oc.patch_clock("opencensus.trace.span")  # spans made here read the clock (E13)

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACE_ID = int(TRACE, 16)
REMOTE_PARENT = "b7ad6b7169203331"


class OwnSpan:
    """What ambient() and Scope read of our spans (``event.Span``)."""

    def __init__(self, trace_id: int, id: int, end: int = 0) -> None:
        self.trace_id = trace_id
        self.id = id
        self.span_id = "%016x" % id
        self.end = end


class Collected(base_exporter.Exporter):  # type: ignore[misc]
    def __init__(self) -> None:
        self.spans: List[Any] = []

    def export(self, span_datas: Any) -> None:
        self.spans.extend(span_datas)


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    execution_context.clear()
    yield
    execution_context.clear()


def tracer(sampler: Any = None, span_id: Any = None) -> Tracer:
    return Tracer(span_context=SpanContext(trace_id=TRACE, span_id=span_id),
                  sampler=sampler or samplers.AlwaysOnSampler(), exporter=Collected())


# ambient().

def test_without_opencensus_tracing_imported_there_is_no_ambient_trace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "opencensus.trace.execution_context")
    assert tracing.ambient(OwnSpan) is None


def test_with_tracing_imported_but_no_tracer_there_is_no_ambient_trace() -> None:
    assert tracing.ambient(OwnSpan) is None


def test_under_a_tracer_without_a_span_the_span_is_a_root_of_the_tracers_trace() -> None:
    t = tracer()
    assert tracing.ambient(OwnSpan) == (True, TRACE_ID, 0, t.span_context)


def test_under_a_tracer_from_a_header_the_span_is_a_child_of_the_remote_parent() -> None:
    t = tracer(span_id=REMOTE_PARENT)
    assert tracing.ambient(OwnSpan) == (True, TRACE_ID, int(REMOTE_PARENT, 16), t.span_context)


def test_inside_an_opencensus_span_the_span_is_its_child() -> None:
    t = tracer()
    with t.span("outer") as outer:
        assert tracing.ambient(OwnSpan) == (True, TRACE_ID, int(outer.span_id, 16),
                                            t.span_context)


def test_inside_an_open_span_of_ours_the_span_is_its_child_in_its_trace() -> None:
    t = tracer()
    execution_context.set_current_span(OwnSpan(77, 42))
    assert tracing.ambient(OwnSpan) == (True, 77, 42, t.span_context)


def test_an_ended_span_of_ours_is_not_a_parent() -> None:
    t = tracer()
    execution_context.set_current_span(OwnSpan(77, 42, end=1))
    assert tracing.ambient(OwnSpan) == (True, TRACE_ID, 0, t.span_context)


def test_a_tracer_that_sampled_the_trace_out_samples_the_span_out() -> None:
    tracer(sampler=samplers.AlwaysOffSampler())
    assert tracing.ambient(OwnSpan) == (False, 0, 0, None)


def test_a_bare_noop_tracer_is_no_ambient_trace() -> None:
    execution_context.set_opencensus_tracer(NoopTracer())
    assert tracing.ambient(OwnSpan) is None


def test_an_opencensus_span_with_an_unreadable_trace_id_gives_trace_id_zero() -> None:
    t = tracer()
    with t.span("outer") as outer:
        t.span_context.trace_id = "not hex"
        assert tracing.ambient(OwnSpan)[:3] == (True, 0, int(outer.span_id, 16))


# Scope.

def test_a_scope_makes_our_span_current_and_leave_restores_the_previous() -> None:
    t = tracer(span_id=REMOTE_PARENT)
    tracing.ambient(OwnSpan)  # loads the slots, as event.start_span does first
    ours = OwnSpan(TRACE_ID, 0x1234)
    scope = tracing.Scope(ours, t.span_context)
    assert execution_context.get_current_span() is ours
    assert t.span_context.span_id == "0000000000001234"
    scope.leave(ours)
    assert execution_context.get_current_span() is None
    assert t.span_context.span_id == REMOTE_PARENT


def test_opencensus_spans_started_inside_our_scope_are_its_children() -> None:
    t = tracer()
    tracing.ambient(OwnSpan)
    ours = OwnSpan(TRACE_ID, 0x99)
    scope = tracing.Scope(ours, t.span_context)
    with t.span("inner") as inner:
        assert inner.parent_span is ours
    # After opencensus's span ended, a new one still parents on ours.
    with t.span("second") as second:
        assert second.parent_span.span_id == "0000000000000099"
    scope.leave(ours)


def test_leave_on_another_thread_changes_nothing() -> None:
    t = tracer()
    tracing.ambient(OwnSpan)
    ours = OwnSpan(TRACE_ID, 7)
    scope = tracing.Scope(ours, t.span_context)
    thread = threading.Thread(target=scope.leave, args=(ours,))
    thread.start()
    thread.join()
    assert execution_context.get_current_span() is ours
    assert t.span_context.span_id == "0000000000000007"
    scope.leave(ours)


def test_leave_keeps_a_current_span_someone_else_set() -> None:
    t = tracer()
    tracing.ambient(OwnSpan)
    ours, other = OwnSpan(TRACE_ID, 7), OwnSpan(TRACE_ID, 8)
    scope = tracing.Scope(ours, t.span_context)
    execution_context.set_current_span(other)
    scope.leave(ours)
    assert execution_context.get_current_span() is other


# decision().

def test_always_on_and_always_off_samplers_decide_without_asking() -> None:
    on = tracing.decision(samplers.AlwaysOnSampler())
    assert [on(0), on(TRACE_ID)] == [True, True]
    assert tracing.decision(samplers.AlwaysOffSampler()) is tracing.never


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_a_probability_sampler_decides_as_opencensus_does(rate: float) -> None:
    sampler = samplers.ProbabilitySampler(rate)
    decide = tracing.decision(sampler)
    ids = [0, 1, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, 0x4000000000000000, TRACE_ID,
           (5 << 64) | (2 ** 62 + 1), 2 ** 128 - 1]
    expected = [sampler.should_sample(SpanContext(trace_id="%032x" % i)) for i in ids]
    assert [decide(i) for i in ids] == expected


def test_another_sampler_is_asked_with_the_trace_id_as_32_hex_digits() -> None:
    asked: List[Any] = []

    class Odd(samplers.Sampler):  # type: ignore[misc]
        def should_sample(self, span_context: Any) -> bool:
            asked.append((span_context.trace_id, span_context.span_id,
                          span_context.trace_options.get_enabled()))
            return int(span_context.trace_id, 16) % 2 == 1

    decide = tracing.decision(Odd())
    assert [decide(3), decide(4)] == [True, False]
    assert asked == [("%032x" % 3, None, False), ("%032x" % 4, None, False)]


def test_something_that_is_not_a_sampler_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="set_sampler\\(\\) takes an opencensus sampler"):
        tracing.decision(0.5)
