"""Spans and log events (gotools_compat.event): nesting, logs, sampling, ambient opencensus."""

from __future__ import annotations

import datetime
import io
import logging
import random
from typing import Any, Iterator, List, Tuple

import pytest

from gotools_compat import _oc, event, export, metric, stats
from gotools_compat.event import spans as event_spans
from gotools_compat.event import Context, Event, Span

from opencensus.trace import execution_context, samplers  # noqa: E402  (after gotools_compat)
from opencensus.trace import tracer as oc_tracer  # noqa: E402
from opencensus.trace.span_context import SpanContext  # noqa: E402


_oc.patch_clock("opencensus.trace.span")


class Collect:
    """An exporter that keeps every event with the span of its context."""

    def __init__(self) -> None:
        self.events: List[Tuple[str, str, Any]] = []

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        self.events.append((ev.kind, ev.message, event.get_span(ctx)))
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        pass

    def ended(self) -> List[Span]:
        return [s for kind, _, s in self.events if kind == event.END_SPAN]


class OCSpans:
    """An opencensus trace exporter that keeps SpanData."""

    def __init__(self) -> None:
        self.spans: List[Any] = []

    def export(self, span_datas: Any) -> None:
        self.spans.extend(span_datas)


@pytest.fixture
def collect() -> Iterator[Collect]:
    saved = export.get_exporter()
    c = Collect()
    export.set_exporter(c)
    yield c
    export.set_exporter(saved)
    event.set_sampler(None)
    execution_context.clean()


def test_a_child_span_is_in_its_parents_trace_and_names_it_as_parent(collect: Collect) -> None:
    ctx, end = event.start_span(event.background(), "outer")
    child_ctx, end_child = event.start_span(ctx, "inner")
    end_child()
    end()
    inner, outer = collect.ended()
    assert (inner.name, outer.name) == ("inner", "outer")
    assert inner.trace_id == outer.trace_id and inner.trace_id.bit_length() > 64
    assert inner.parent_id == outer.id and outer.parent_id == 0
    assert inner.id != outer.id
    assert outer.start <= inner.start <= inner.end <= outer.end
    assert [(k, m) for k, m, _ in collect.events] == [
        ("start_span", "outer"), ("start_span", "inner"), ("end_span", "inner"),
        ("end_span", "outer")]


def test_two_roots_are_two_traces(collect: Collect) -> None:
    for _ in range(2):
        _, end = event.start_span(event.background(), "root")
        end()
    first, second = collect.ended()
    assert first.trace_id != second.trace_id


def test_span_keeps_its_tags_and_label_keeps_the_span(collect: Collect) -> None:
    method = event.new_string_key("method")
    n = event.new_int_key("n")
    ctx, end = event.start_span(event.background(), "s", method.of("hover"), n.of(3))
    labelled = event.label(ctx, method.of("definition"))
    _, end_child = event.start_span(labelled, "child")
    end_child()
    end()
    child, parent = collect.ended()
    assert [(t.key.name, t.value) for t in parent.tags] == [("method", "hover"), ("n", 3)]
    assert child.parent_id == parent.id
    assert method.get(labelled) == "definition"


@pytest.mark.usefixtures("registry")
def test_a_span_context_keeps_the_values_and_metric_rows_of_its_parent(
        collect: Collect) -> None:
    key = event.new_string_key("k")
    m = stats.Int64("span_rows", "", "1")
    name = metric.Scalar("span_rows_count", keys=[key]).count_int64(m)
    base = event.label(event.background(), key.of("x"))
    m.record(base, 1)
    ctx, end = event.start_span(base, "s")
    m.record(ctx, 1)
    end()
    assert key.get(ctx) == "x"
    rows = [d for d in metric.collect() if d.handle() == name][0].rows
    assert list(rows) == [2]


def test_the_with_form_ends_the_span_and_an_escaping_exception_sets_its_status(
        collect: Collect) -> None:
    with pytest.raises(ValueError):
        with event.span(event.background(), "fails") as ctx:
            assert event.get_span(ctx) is not None
            raise ValueError("boom")
    with event.span(ctx, "fine"):
        pass
    failed, fine = collect.ended()
    assert failed.status == (2, "ValueError: boom") and failed.end > 0
    assert fine.status is None and fine.parent_id == failed.id


def test_logs_in_a_span_become_its_events_and_also_reach_the_exporter(
        collect: Collect) -> None:
    path = event.new_string_key("path")
    err = OSError("disk")
    ctx, end = event.start_span(event.background(), "s")
    event.print(ctx, "cache miss", path.of("a.go"))
    event.error(ctx, "read failed", err)
    event.log(ctx, path.of("b.go"))
    end()
    event.print(ctx, "after the end")  # the span ended: exporter only
    span = collect.ended()[0]
    assert span.events is not None
    assert [(ev.message, ev.error, [str(t) for t in ev.tags]) for ev in span.events] == [
        ("cache miss", None, ["path=a.go"]), ("read failed", err, []), ("", None, ["path=b.go"])]
    assert [m for k, m, _ in collect.events if k == event.LOG] == [
        "cache miss", "read failed", "", "after the end"]
    at = span.events[0].at
    assert at.tzinfo == datetime.timezone.utc
    assert span.start <= span.events[0].at_ns <= span.end
    assert abs(at - datetime.datetime.now(datetime.timezone.utc)).total_seconds() < 3600


def test_logs_outside_a_span_go_to_the_exporter_only(collect: Collect) -> None:
    event.print(None, "plain")
    event.error(event.background(), "bad", ValueError("v"))
    assert [(k, m, s) for k, m, s in collect.events] == [("log", "plain", None),
                                                          ("log", "bad", None)]


def test_a_span_keeps_the_latest_events_and_counts_the_dropped(collect: Collect) -> None:
    ctx, end = event.start_span(event.background(), "chatty")
    for i in range(event.MAX_EVENTS + 5):
        event.print(ctx, str(i))
    end()
    span = collect.ended()[0]
    assert span.events is not None and len(span.events) == event.MAX_EVENTS
    assert span.events[0].message == "5" and span.dropped == 5


def test_detach_keeps_the_values_but_not_the_span(collect: Collect) -> None:
    key = event.new_string_key("k")
    ctx, end = event.start_span(event.label(None, key.of("v")), "parent")
    detached = event.detach(ctx)
    assert event.get_span(detached) is None and key.get(detached) == "v"
    _, end_other = event.start_span(detached, "other")
    end_other()
    end()
    other, parent = collect.ended()
    assert other.parent_id == 0 and other.trace_id != parent.trace_id
    assert event.detach(None) is event.background()


def test_log_writer_prints_spans_with_ids_and_logs_like_go() -> None:
    saved = export.get_exporter()
    out, errors = io.StringIO(), io.StringIO()
    export.set_exporter(export.multi(export.log_writer(out, False),
                                     export.log_writer(errors, True)))
    try:
        key = event.new_string_key("file")
        ctx, end = event.start_span(event.background(), "check")
        child, end_child = event.start_span(ctx, "parse")
        event.print(child, "loaded", key.of("a.go"))
        event.error(child, "parse", ValueError("bad token"))
        end_child()
        end()
    finally:
        export.set_exporter(saved)
    p, c = event.get_span(ctx), event.get_span(child)
    assert p is not None and c is not None
    stamp = datetime.datetime.now().strftime("%Y/%m/%d ")
    lines = out.getvalue().split("\n")
    assert lines[0] == "start: check %032x:%016x" % (p.trace_id, p.id)
    assert lines[1] == "start: parse %032x:%016x[%016x]" % (c.trace_id, c.id, p.id)
    assert lines[2].startswith(stamp) and lines[2].endswith(" loaded")
    assert lines[3] == "\tfile=a.go"
    assert lines[4].startswith(stamp) and lines[4].endswith(" parse: bad token")
    assert lines[5:] == ["finish: parse %032x:%016x" % (c.trace_id, c.id),
                         "finish: check %032x:%016x" % (p.trace_id, p.id), ""]
    assert [line for line in errors.getvalue().split("\n") if "loaded" in line] == []
    assert errors.getvalue().count("bad token") == 1


# Sampling.

def test_every_span_is_recorded_by_default(collect: Collect) -> None:
    for _ in range(2000):
        _, end = event.start_span(event.background(), "each")
        end()
    assert len(collect.ended()) == 2000


def test_a_sampled_out_trace_records_nothing_below_it(collect: Collect) -> None:
    event.set_sampler(samplers.AlwaysOffSampler())
    ctx, end = event.start_span(event.background(), "root")
    child, end_child = event.start_span(ctx, "child")
    event.print(child, "log")
    end_child()
    end()
    assert event.get_span(ctx) is None and event.get_span(child) is None
    assert [(k, m) for k, m, _ in collect.events] == [("log", "log")]
    event.set_sampler(None)
    _, end = event.start_span(event.background(), "again")
    end()
    assert [s.name for s in collect.ended()] == ["again"]


def test_probability_sampler_decides_as_opencensus_does() -> None:
    from gotools_compat._oc import tracing

    rng = random.Random(7)
    for rate in (0.0, 0.25, 0.5, 1.0):
        sampler = samplers.ProbabilitySampler(rate)
        decide = tracing.decision(sampler)
        ids = [rng.getrandbits(128) for _ in range(500)]
        assert [decide(t) for t in ids] == [
            sampler.should_sample(SpanContext(trace_id="%032x" % t)) for t in ids]


def test_a_custom_sampler_is_asked_with_the_trace_id(collect: Collect) -> None:
    asked: List[str] = []

    class Even:
        def should_sample(self, span_context: Any) -> bool:
            asked.append(span_context.trace_id)
            return int(span_context.trace_id, 16) % 2 == 0

    event.set_sampler(Even())
    for _ in range(50):
        _, end = event.start_span(event.background(), "maybe")
        end()
    recorded = collect.ended()
    assert len(asked) == 50 and 0 < len(recorded) < 50
    assert sorted("%032x" % s.trace_id for s in recorded) == sorted(
        t for t in asked if int(t, 16) % 2 == 0)


def test_set_sampler_refuses_what_is_not_a_sampler() -> None:
    with pytest.raises(TypeError):
        event.set_sampler(0.5)


# The ambient opencensus tracer.

def test_without_a_context_a_span_joins_the_opencensus_trace_and_parents_its_spans(
        collect: Collect) -> None:
    oc_spans = OCSpans()
    tracer = oc_tracer.Tracer(sampler=samplers.AlwaysOnSampler(), exporter=oc_spans)
    with tracer.span("oc-parent") as oc_parent:
        ctx, end = event.start_span(None, "ours")
        with tracer.span("oc-child"):
            pass
        with tracer.span("oc-second-child"):
            pass
        _, end_inner = event.start_span(None, "ours-inner")
        end_inner()
        end()
        assert execution_context.get_current_span() is oc_parent
        with tracer.span("oc-after"):
            pass
    ours, = [s for s in collect.ended() if s.name == "ours"]
    inner, = [s for s in collect.ended() if s.name == "ours-inner"]
    trace_id = int(tracer.span_context.trace_id, 16)
    assert ours.trace_id == trace_id and ours.parent_id == int(oc_parent.span_id, 16)
    assert inner.trace_id == trace_id and inner.parent_id == ours.id
    parents = {s.name: s.parent_span_id for s in oc_spans.spans}
    assert parents["oc-child"] == parents["oc-second-child"] == "%016x" % ours.id
    assert parents["oc-after"] == oc_parent.span_id
    assert event.get_span(ctx) is ours


def test_a_trace_the_opencensus_tracer_sampled_out_is_sampled_out_for_us(
        collect: Collect) -> None:
    tracer = oc_tracer.Tracer(sampler=samplers.AlwaysOffSampler(), exporter=OCSpans())
    with tracer.span("oc"):
        ctx, end = event.start_span(None, "ours")
        _, end_child = event.start_span(ctx, "child")
        end_child()
        end()
    assert collect.ended() == [] and event.get_span(ctx) is None


def test_under_an_opencensus_tracer_without_a_span_we_join_its_trace(
        collect: Collect) -> None:
    tracer = oc_tracer.Tracer(sampler=samplers.AlwaysOnSampler(), exporter=OCSpans(),
                              span_context=SpanContext(trace_id="0af7651916cd43dd8448eb211c80319c",
                                                       span_id="b7ad6b7169203331"))
    _, end = event.start_span(None, "from-header")
    end()
    span, = collect.ended()
    assert "%032x" % span.trace_id == tracer.span_context.trace_id
    assert span.parent_id == 0xb7ad6b7169203331


def test_without_any_opencensus_tracer_a_span_is_a_root(collect: Collect) -> None:
    execution_context.clean()
    _, end = event.start_span(None, "root")
    end()
    assert collect.ended()[0].parent_id == 0


# Bad input: documented outcomes, nothing raised on the caller's path.

def test_a_name_that_is_not_a_str_is_used_as_str_with_one_warning(
        collect: Collect, caplog: pytest.LogCaptureFixture) -> None:
    event_spans._warned.pop("name", None)
    with caplog.at_level(logging.WARNING, logger="gotools_compat.event"):
        for name in (42, None):
            _, end = event.start_span(event.background(), name)  # type: ignore[arg-type]
            end()
    assert [s.name for s in collect.ended()] == ["42", "None"]
    assert len([r for r in caplog.records if "span names must be str" in r.getMessage()]) == 1


def test_a_span_ended_twice_is_ended_and_exported_once(
        collect: Collect, caplog: pytest.LogCaptureFixture) -> None:
    event_spans._warned.pop("twice", None)
    _, end = event.start_span(event.background(), "twice")
    end()
    first_end = collect.ended()[0].end
    with caplog.at_level(logging.WARNING, logger="gotools_compat.event"):
        end()
        end()
    assert len(collect.ended()) == 1 and collect.ended()[0].end == first_end
    assert len([r for r in caplog.records if "ended twice" in r.getMessage()]) == 1


def test_a_context_that_is_not_a_context_is_taken_as_none(collect: Collect) -> None:
    execution_context.clean()
    ctx, end = event.start_span({"not": "a context"}, "odd")  # type: ignore[arg-type]
    end()
    assert isinstance(ctx, Context) and collect.ended()[0].name == "odd"


def test_a_failing_exporter_does_not_reach_the_caller() -> None:
    class Broken:
        def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
            raise RuntimeError("broken")

        def metric(self, ctx: Context, data: Any) -> None:
            pass

    saved = export.get_exporter()
    export.set_exporter(Broken())
    try:
        ctx, end = event.start_span(event.background(), "s")
        event.print(ctx, "x")
        end()
    finally:
        export.set_exporter(saved)
    span = event.get_span(ctx)
    assert span is not None and span.end > 0
