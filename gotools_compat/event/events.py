"""Events (Go's ``event.Event``): a log line, a span start or end, a label."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Optional, Tuple, Union

if TYPE_CHECKING:
    from gotools_compat.event.keys import Tag

LOG = "log"
START_SPAN = "start_span"
END_SPAN = "end_span"
LABEL = "label"

_NS = 1_000_000_000


def _ns_to_datetime(ns: int) -> datetime.datetime:
    seconds, rest = divmod(ns, _NS)
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(
        microsecond=rest // 1000)


class Event:
    """One event (Go's ``event.Event``): a log line, a span start or end, a label.

    ``kind`` is one of :data:`LOG`, :data:`START_SPAN`, :data:`END_SPAN`,
    :data:`LABEL`; ``at`` is when it happened (the events made here carry an
    aware UTC datetime, made only when read).  For span events ``message`` is
    the span name and :func:`get_span` of the context gives the span.
    Treat an event as immutable.  Two events are equal when every field is,
    their times to the nanosecond (``at_ns``).
    """

    __slots__ = ("kind", "_at", "_ns", "message", "error", "tags")

    def __init__(self, kind: str, at: Union[datetime.datetime, int], message: str = "",
                 error: Optional[BaseException] = None, tags: Tuple[Tag, ...] = ()) -> None:
        self.kind = kind
        # One of the two is given; the other is made when read.  ns since the
        # epoch stay exact: a datetime holds only microseconds.
        if isinstance(at, int):
            self._ns: Optional[int] = at
            self._at: Optional[datetime.datetime] = None
        else:
            self._ns = None
            self._at = at
        self.message = message
        self.error = error
        self.tags = tags

    @property
    def at(self) -> datetime.datetime:
        at = self._at
        if at is None:
            at = self._at = _ns_to_datetime(self.at_ns)
        return at

    @property
    def at_ns(self) -> int:
        """``at`` in nanoseconds since the epoch (a naive ``at`` is taken as UTC)."""
        ns = self._ns
        if ns is None:
            at = self._at
            assert at is not None
            if at.tzinfo is None:
                at = at.replace(tzinfo=datetime.timezone.utc)
            delta = at - _EPOCH
            ns = self._ns = (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000
        return ns

    def is_log(self) -> bool:
        return self.kind == LOG

    def is_start_span(self) -> bool:
        return self.kind == START_SPAN

    def is_end_span(self) -> bool:
        return self.kind == END_SPAN

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Event) and other.kind == self.kind and other.at_ns == self.at_ns
                and other.message == self.message and other.error is self.error
                and other.tags == self.tags)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Event(%r, %r, %r, %r, %r)" % (self.kind, self.at, self.message, self.error,
                                              self.tags)

    def __str__(self) -> str:
        # Go's Event.Format: time (local), message, ": " error, then the tags.
        at = self.at
        if at.tzinfo is not None:
            at = at.astimezone()
        text = at.strftime("%Y/%m/%d %H:%M:%S ") + str(self.message)
        if self.error is not None:
            text += ": " if self.message else ""
            text += str(self.error) or type(self.error).__name__
        for tag in self.tags:
            text += "\n\t%s" % (tag,)
        return text


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
