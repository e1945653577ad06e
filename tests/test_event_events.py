"""gotools_compat.event.events: Go's event.Event (time, kind, text), directly (no sockets)."""

from __future__ import annotations

import calendar
import datetime

import pytest

from gotools_compat import event
from gotools_compat.event.events import END_SPAN, LABEL, LOG, START_SPAN, Event

UTC = datetime.timezone.utc
# 2020-03-04T05:06:07Z in seconds since the epoch, from the calendar module.
SECONDS = calendar.timegm((2020, 3, 4, 5, 6, 7, 0, 0, 0))
NAIVE = datetime.datetime(2020, 3, 4, 5, 6, 7)


def test_an_event_made_from_nanoseconds_reads_as_an_aware_utc_datetime() -> None:
    ev = Event(LOG, SECONDS * 10 ** 9 + 123_456_789, "hello")
    assert ev.at == datetime.datetime(2020, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    assert ev.at.utcoffset() == datetime.timedelta(0)
    assert ev.at is ev.at  # made once, when first read


def test_nanoseconds_before_the_epoch_round_down_to_the_earlier_microsecond() -> None:
    assert Event(LOG, -1).at == datetime.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert Event(LOG, 0).at == datetime.datetime(1970, 1, 1, tzinfo=UTC)


def test_at_ns_of_an_event_made_from_nanoseconds_keeps_every_digit() -> None:
    ns = SECONDS * 10 ** 9 + 123_456_789
    assert Event(START_SPAN, ns).at_ns == ns


def test_reading_at_leaves_at_ns_exact() -> None:
    e = Event(LOG, 1_583_298_367_123_456_789)
    assert e.at.microsecond == 123456
    assert e.at_ns == 1_583_298_367_123_456_789


def test_events_a_fraction_of_a_microsecond_apart_are_not_equal() -> None:
    assert Event(LOG, 1_583_298_367_123_456_789) != Event(LOG, 1_583_298_367_123_456_000)
    assert Event(LOG, 1_583_298_367_123_456_000) == Event(
        LOG, datetime.datetime(2020, 3, 4, 5, 6, 7, 123456, tzinfo=datetime.timezone.utc))


def test_at_ns_reads_a_naive_datetime_as_utc() -> None:
    ev = Event(LOG, datetime.datetime(2020, 3, 4, 5, 6, 7, 250000))
    assert ev.at_ns == SECONDS * 10 ** 9 + 250_000_000


def test_at_ns_of_an_aware_datetime_counts_its_offset() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    ev = Event(LOG, datetime.datetime(2020, 3, 4, 7, 6, 7, 1, tzinfo=plus_two))
    assert ev.at_ns == SECONDS * 10 ** 9 + 1000


def test_at_ns_before_the_epoch_is_negative() -> None:
    ev = Event(LOG, datetime.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC))
    assert ev.at_ns == -500_000_000


def test_each_kind_answers_only_its_own_question() -> None:
    answers = {kind: (Event(kind, 0).is_log(), Event(kind, 0).is_start_span(),
                      Event(kind, 0).is_end_span())
               for kind in (LOG, START_SPAN, END_SPAN, LABEL)}
    assert answers == {LOG: (True, False, False), START_SPAN: (False, True, False),
                       END_SPAN: (False, False, True), LABEL: (False, False, False)}
    assert len({LOG, START_SPAN, END_SPAN, LABEL}) == 4


def test_the_package_hands_out_the_same_event_class_and_kinds() -> None:
    assert (event.Event, event.LOG, event.START_SPAN, event.END_SPAN, event.LABEL) == (
        Event, LOG, START_SPAN, END_SPAN, LABEL)


def test_events_are_equal_by_value_but_an_error_only_by_identity() -> None:
    key = event.new_string_key("file")
    boom = ValueError("boom")
    ns = SECONDS * 10 ** 9
    ev = Event(LOG, ns, "m", boom, (key.of("a.go"),))
    assert ev == Event(LOG, datetime.datetime(2020, 3, 4, 5, 6, 7, tzinfo=UTC), "m", boom,
                       (key.of("a.go"),))
    assert ev != Event(LOG, ns, "m", ValueError("boom"), (key.of("a.go"),))
    assert ev != Event(LOG, ns, "m", boom, (key.of("b.go"),))
    assert ev != Event(LOG, ns, "n", boom, (key.of("a.go"),))
    assert ev != Event(END_SPAN, ns, "m", boom, (key.of("a.go"),))
    assert ev != Event(LOG, ns + 1000, "m", boom, (key.of("a.go"),))
    assert ev != ("log", ns, "m", boom, (key.of("a.go"),))


def test_an_event_is_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(Event(LOG, 0))


def test_str_is_time_message_error_and_one_line_per_tag() -> None:
    path = event.new_string_key("path")
    n = event.new_int_key("n")
    ev = Event(LOG, NAIVE, "read", OSError("eof"), (path.of("/x"), n.of(3)))
    assert str(ev) == "2020/03/04 05:06:07 read: eof\n\tpath=/x\n\tn=3"


def test_str_of_an_error_without_a_message_has_no_separator() -> None:
    assert str(Event(LOG, NAIVE, "", ValueError("bad token"))) == "2020/03/04 05:06:07 bad token"


def test_str_of_an_error_with_empty_text_shows_its_type_name() -> None:
    assert str(Event(LOG, NAIVE, "lookup", KeyError())) == "2020/03/04 05:06:07 lookup: KeyError"
    assert str(Event(LOG, NAIVE, "", KeyError())) == "2020/03/04 05:06:07 KeyError"


def test_str_of_an_aware_time_is_in_local_time() -> None:
    ev = Event(LOG, SECONDS * 10 ** 9, "tick")
    local = datetime.datetime.fromtimestamp(SECONDS)  # naive, in the local zone
    assert str(ev) == local.strftime("%Y/%m/%d %H:%M:%S") + " tick"


def test_repr_shows_the_time_as_a_datetime_and_the_empty_defaults() -> None:
    assert repr(Event(LOG, 0)) == (
        "Event('log', datetime.datetime(1970, 1, 1, 0, 0, tzinfo=datetime.timezone.utc), "
        "'', None, ())")
