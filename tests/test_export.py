"""export: the process-wide exporter, multi() and log_writer(), as in Go."""

from __future__ import annotations

import datetime
import io
import logging
from typing import Any, Iterator, List, Tuple

import pytest

from gotools_compat import event, export
from gotools_compat.event import Context
from gotools_compat.export import Event

AT = datetime.datetime(2020, 3, 4, 5, 6, 7)


class Recording:
    def __init__(self, name: str, log: List[str]) -> None:
        self.name = name
        self.log = log

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        self.log.append("%s:%s" % (self.name, ev.message))
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        self.log.append("%s:metric:%s" % (self.name, data))


class Broken:
    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        raise RuntimeError("broken exporter")

    def metric(self, ctx: Context, data: Any) -> None:
        raise RuntimeError("broken exporter")


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    saved = export.get_exporter()
    yield
    export.set_exporter(saved)


def test_set_exporter_sets_the_one_exporter_and_none_removes_it() -> None:
    seen: List[str] = []
    export.set_exporter(Recording("a", seen))
    export.process_event(event.background(), Event(export.LOG, AT, "hello"))
    export.set_exporter(None)
    assert export.get_exporter() is None
    export.process_event(event.background(), Event(export.LOG, AT, "dropped"))
    assert seen == ["a:hello"]


def test_set_exporter_refuses_what_is_not_an_exporter() -> None:
    with pytest.raises(TypeError):
        export.set_exporter(object())  # type: ignore[arg-type]


def test_multi_calls_each_in_order_and_survives_a_failing_one(
        caplog: pytest.LogCaptureFixture) -> None:
    seen: List[str] = []
    both = export.multi(Recording("a", seen), None, Broken(), Recording("b", seen))
    export.set_exporter(both)
    with caplog.at_level(logging.ERROR, logger="gotools_compat.export"):
        ctx = export.process_event(event.background(), Event(export.LOG, AT, "x"))
        export.process_event(event.background(), Event(export.LOG, AT, "y"))
        export.metric(event.background(), "data")
    assert ctx is event.background()
    assert seen == ["a:x", "b:x", "a:y", "b:y", "a:metric:data", "b:metric:data"]
    assert len([r for r in caplog.records if "broken" in str(r.exc_info)]) == 1


def test_log_writer_writes_log_lines_and_only_errors_when_asked() -> None:
    key = event.new_string_key("file")
    out, errors_only = io.StringIO(), io.StringIO()
    export.set_exporter(export.multi(export.log_writer(out, False),
                                     export.log_writer(errors_only, True)))
    ctx = event.background()
    export.process_event(ctx, Event(export.LOG, AT, "loaded", tags=(key.of("a.go"),)))
    export.process_event(ctx, Event(export.LOG, AT, "parse", ValueError("bad token")))
    export.process_event(ctx, Event(export.START_SPAN, AT, "check"))
    export.process_event(ctx, Event(export.END_SPAN, AT, "check"))
    assert out.getvalue() == ("2020/03/04 05:06:07 loaded\n\tfile=a.go\n"
                              "2020/03/04 05:06:07 parse: bad token\n"
                              "start: check\nfinish: check\n")
    # As Go's: only_errors filters log events; span starts and ends are written.
    assert errors_only.getvalue() == ("2020/03/04 05:06:07 parse: bad token\n"
                                      "start: check\nfinish: check\n")


def test_the_default_exporter_logs_error_events(caplog: pytest.LogCaptureFixture) -> None:
    export.set_exporter(export._DEFAULT)
    with caplog.at_level(logging.ERROR, logger="gotools_compat.export"):
        export.process_event(event.background(), Event(export.LOG, AT, "quiet"))
        export.process_event(event.background(), Event(export.LOG, AT, "io", OSError("eof")))
    assert [r.getMessage() for r in caplog.records] == ["2020/03/04 05:06:07 io: eof"]


def test_an_ocagent_exporter_is_an_exporter() -> None:
    from gotools_compat.export import ocagent

    assert issubclass(ocagent.Exporter, export.Exporter)


def test_a_new_failing_exporter_is_logged_even_where_an_old_ones_id_is_reused(
        caplog: pytest.LogCaptureFixture) -> None:
    ids = set()
    with caplog.at_level(logging.ERROR, logger="gotools_compat.export"):
        for _ in range(5):
            export.set_exporter(None)  # the last Broken is freed: the next may get its id
            broken = Broken()
            ids.add(id(broken))
            export.set_exporter(broken)
            del broken
            export.process_event(event.background(), Event(export.LOG, AT, "x"))
    export.set_exporter(None)
    assert len([r for r in caplog.records if "broken" in str(r.exc_info)]) == 5
