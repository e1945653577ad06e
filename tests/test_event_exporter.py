"""gotools_compat.event.exporter: the process-wide exporter slot, directly (no sockets)."""

from __future__ import annotations

import datetime
import logging
import subprocess
import sys
import textwrap
from typing import Any, Iterator, List, Tuple

import pytest

from gotools_compat import event, export
from gotools_compat.event import Context, exporter
from gotools_compat.event.events import LOG, START_SPAN, Event

AT = datetime.datetime(2020, 3, 4, 5, 6, 7)
LOGGER = "gotools_compat.export"


class Relabel:
    """Returns a new context from process_event and keeps what metric() gets."""

    def __init__(self) -> None:
        self.key = event.new_string_key("seen")
        self.events: List[Event] = []
        self.metrics: List[Tuple[Context, Any]] = []

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        self.events.append(ev)
        return event.label(ctx, self.key.of(ev.message)), ev

    def metric(self, ctx: Context, data: Any) -> None:
        self.metrics.append((ctx, data))


class Failing:
    def __init__(self, name: str) -> None:
        self.name = name

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        raise RuntimeError("%s: event" % self.name)

    def metric(self, ctx: Context, data: Any) -> None:
        raise RuntimeError("%s: metric" % self.name)

    def __repr__(self) -> str:
        return "Failing(%r)" % self.name


class OnlyEvents:
    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        return ctx, ev


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    saved = exporter.get_exporter()
    try:
        yield
    finally:
        exporter.set_exporter(saved)


def failures(caplog: pytest.LogCaptureFixture) -> List[Tuple[str, str]]:
    return [(r.getMessage(), str(r.exc_info[1] if r.exc_info else None))
            for r in caplog.records if r.name == LOGGER]


def test_export_re_exports_the_very_functions_of_the_slot() -> None:
    assert export.set_exporter is exporter.set_exporter
    assert export.get_exporter is exporter.get_exporter
    assert export.process_event is exporter.process_event
    assert export.metric is exporter.metric
    assert export.Exporter is exporter.Exporter


def test_get_exporter_gives_back_the_object_set() -> None:
    mine = Relabel()
    exporter.set_exporter(mine)
    assert exporter.get_exporter() is mine
    exporter.set_exporter(None)
    assert exporter.get_exporter() is None


def test_process_event_returns_the_context_the_exporter_returned() -> None:
    mine = Relabel()
    exporter.set_exporter(mine)
    ev = Event(LOG, AT, "hover")
    ctx = exporter.process_event(event.background(), ev)
    assert mine.key.get(ctx) == "hover"
    assert mine.events == [ev] and mine.events[0] is ev


def test_without_an_exporter_events_and_metrics_go_nowhere(
        caplog: pytest.LogCaptureFixture) -> None:
    exporter.set_exporter(None)
    ctx = event.label(event.background(), event.new_int_key("n").of(1))
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert exporter.process_event(ctx, Event(LOG, AT, "x", ValueError("dropped"))) is ctx
        exporter.metric(ctx, "data")  # no exporter: nothing to call, nothing raised
    assert failures(caplog) == []  # not even the error event: the default is gone too


def test_metric_hands_the_context_and_data_to_the_exporter() -> None:
    mine = Relabel()
    exporter.set_exporter(mine)
    ctx = event.todo()
    data = object()
    exporter.metric(ctx, data)
    assert len(mine.metrics) == 1
    assert mine.metrics[0][0] is ctx and mine.metrics[0][1] is data


def test_an_object_without_metric_is_refused_with_what_is_missing() -> None:
    before = exporter.get_exporter()
    with pytest.raises(TypeError, match=r"process_event\(ctx, ev\) and metric\(ctx, data\)"):
        exporter.set_exporter(OnlyEvents())  # type: ignore[arg-type]
    assert exporter.get_exporter() is before
    assert not isinstance(OnlyEvents(), exporter.Exporter)
    assert isinstance(Relabel(), exporter.Exporter)


def test_a_failing_exporter_is_logged_once_and_the_caller_keeps_its_context(
        caplog: pytest.LogCaptureFixture) -> None:
    broken = Failing("one")
    exporter.set_exporter(broken)
    ctx = event.label(event.background(), event.new_string_key("k").of("v"))
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        assert exporter.process_event(ctx, Event(LOG, AT, "a")) is ctx
        assert exporter.process_event(ctx, Event(START_SPAN, AT, "b")) is ctx
        exporter.metric(ctx, "data")  # fails too, not logged again
    assert failures(caplog) == [
        ("exporter Failing('one') failed; its later failures are not logged", "one: event")]


def test_each_failing_exporter_gets_its_own_log_line(caplog: pytest.LogCaptureFixture) -> None:
    first, second = Failing("first"), Failing("second")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        exporter.set_exporter(first)
        exporter.metric(event.background(), 1)
        exporter.set_exporter(second)
        exporter.process_event(event.background(), Event(LOG, AT, "x"))
        exporter.set_exporter(first)
        exporter.process_event(event.background(), Event(LOG, AT, "y"))
    assert failures(caplog) == [
        ("exporter Failing('first') failed; its later failures are not logged",
         "first: metric"),
        ("exporter Failing('second') failed; its later failures are not logged",
         "second: event"),
    ]


def test_report_logs_the_exception_being_handled_once_per_exporter(
        caplog: pytest.LogCaptureFixture) -> None:
    culprit = Failing("reported")
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for text in ("first failure", "second failure"):
            try:
                raise OSError(text)
            except OSError:
                exporter.report(culprit)
    assert failures(caplog) == [
        ("exporter Failing('reported') failed; its later failures are not logged",
         "first failure")]
    assert [r.levelno for r in caplog.records if r.name == LOGGER] == [logging.ERROR]


def test_the_failed_exporters_held_are_bounded_the_oldest_let_go_first(
        caplog: pytest.LogCaptureFixture) -> None:
    oldest = Failing("oldest")
    newer = [Failing("n%d" % i) for i in range(exporter.MAX_FAILED)]
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for e in [oldest] + newer:
            exporter.report(e)
        caplog.clear()
        exporter.report(newer[-1])  # still held: not logged again
        exporter.report(oldest)  # let go to make room: logged once more
    assert [m for m, _ in failures(caplog)] == [
        "exporter Failing('oldest') failed; its later failures are not logged"]


def test_until_one_is_set_only_log_events_with_an_error_are_logged() -> None:
    # A fresh process: the default exporter is the slot's until anything is set.
    script = textwrap.dedent("""
        import datetime, logging
        logging.basicConfig(format="%(name)s|%(levelname)s|%(message)s")
        from gotools_compat import event
        from gotools_compat.event import exporter
        from gotools_compat.event.events import END_SPAN, LOG, START_SPAN, Event
        at = datetime.datetime(2020, 3, 4, 5, 6, 7)
        default = exporter.get_exporter()
        print(default is not None, isinstance(default, exporter.Exporter))
        ctx = event.background()
        ev = Event(LOG, at, "io", OSError("eof"))
        print(default.process_event(ctx, ev) == (ctx, ev))
        exporter.process_event(ctx, Event(LOG, at, "quiet"))
        exporter.process_event(ctx, Event(START_SPAN, at, "span", OSError("not a log")))
        exporter.process_event(ctx, Event(END_SPAN, at, "span"))
        exporter.metric(ctx, "data")
        exporter.process_event(ctx, Event(LOG, at, "", ValueError("bad")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["True True", "True"]
    assert out.stderr.splitlines() == [
        "gotools_compat.export|ERROR|2020/03/04 05:06:07 io: eof",  # default.process_event
        "gotools_compat.export|ERROR|2020/03/04 05:06:07 bad",  # through the slot
    ]
