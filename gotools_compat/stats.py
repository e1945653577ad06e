"""Measures, as in Go's ``telemetry/stats`` package.

A measure is something code records values on: ``m.record(ctx, value)``
hands the value to every metric built on ``m`` (see :mod:`metric`).  Measures
are compared by identity, as in Go; making a second measure with a name that
is taken gives back the first one when the definition is the same, and is a
``ValueError`` otherwise (opencensus would silently drop one of them: E12).

Record-time contract: ``record`` never raises and never blocks on I/O.  A
value it cannot take is dropped, counted in ``m.dropped`` (by reason) and
logged at WARNING the first time for each reason:

==================================  ==============================================
value                               outcome
==================================  ==============================================
float, int (Float64)                recorded (ints become floats)
int in [-2**63, 2**63) (Int64)      recorded, exactly
NaN, +inf, -inf                     dropped: ``non-finite``
int outside int64 (Int64)           dropped: ``out of int64 range``
float on an Int64 measure           dropped: ``float on Int64`` (never truncated)
int too large for a float (Float64) dropped: ``out of float range``
bool, None, str, anything else      dropped: ``not a number``
==================================  ==============================================

``ctx`` is a :class:`gotools_compat.event.Context`, or None to use the ambient
opencensus tag map (``opencensus.tags.TagContext``), as ``MeasurementMap``
does; anything else is treated as None, with one warning per metric.
"""

from __future__ import annotations

import datetime
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple, Type, TypeVar, Union

from gotools_compat import unit as unit_module
from gotools_compat.event import Context

log = logging.getLogger(__name__)

_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1

if TYPE_CHECKING:  # annotations only: no typing work at import
    Subscriber = Callable[[Optional[Context], Any], None]
    M = TypeVar("M", bound="_Measure")

_registry: Dict[str, "_Measure"] = {}
_registry_lock = threading.Lock()


class _Measure:
    __slots__ = ("name", "description", "unit", "_subscribers", "_dropped", "_lock",
                 "opencensus", "__weakref__")

    name: str
    description: str
    unit: str
    _subscribers: Tuple[Subscriber, ...]
    _dropped: Dict[str, int]
    _lock: threading.Lock
    # The opencensus measure behind this one, made when the first metric is
    # built on it (gotools_compat.metric.opencensus_measure gives it).
    opencensus: Any

    def __new__(cls: Type[M], name: str, description: str = "",
                unit: str = unit_module.DIMENSIONLESS) -> M:
        if not isinstance(name, str) or not name:
            raise ValueError("a measure needs a non-empty str name, not %r" % (name,))
        if not isinstance(description, str):
            raise TypeError("description must be a str, not %s" % type(description).__name__)
        if not isinstance(unit, str):
            raise TypeError("unit must be a str, not %s" % type(unit).__name__)
        with _registry_lock:
            existing = _registry.get(name)
            if existing is not None:
                if (type(existing) is cls and existing.description == description
                        and existing.unit == unit):
                    return existing
                raise ValueError(
                    "measure %r already exists as %s(%r, %r, %r); a measure name must be "
                    "unique" % (name, type(existing).__name__, name, existing.description,
                                existing.unit))
            self = object.__new__(cls)
            self.name = name
            self.description = description
            self.unit = unit
            self._subscribers = ()
            self._dropped = {}
            self._lock = threading.Lock()
            self.opencensus = None
            _registry[name] = self
        return self

    def __repr__(self) -> str:
        return "%s(%r, %r, %r)" % (type(self).__name__, self.name, self.description, self.unit)

    @property
    def dropped(self) -> Dict[str, int]:
        """How many values ``record`` dropped, by reason (see the module doc)."""
        with self._lock:
            return dict(self._dropped)

    def _drop(self, value: Any, reason: str) -> None:
        with self._lock:
            first = reason not in self._dropped
            self._dropped[reason] = self._dropped.get(reason, 0) + 1
        if first:
            log.warning("measure %r dropped %r (%s); further values dropped for this reason "
                        "are counted in %s.dropped", self.name, value, reason, self.name)

    def _add_subscriber(self, fn: Subscriber) -> None:
        with self._lock:
            self._subscribers = self._subscribers + (fn,)

    def _remove_subscriber(self, fn: Subscriber) -> None:
        # A metric of a closed registry (gotools_compat.testing) stops being fed.
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s != fn)

    def subscribe(self, fn: Callable[[Optional[Context], "_Measure", Any, datetime.datetime],
                                     None]) -> None:
        """Call ``fn(ctx, measure, value, at)`` on every record, as Go's Subscribe.

        An exception from ``fn`` is logged (once) and never reaches the caller
        of ``record`` or the other subscribers.
        """
        measure = self
        failed: List[bool] = []

        def call(ctx: Optional[Context], value: Any) -> None:
            try:
                fn(ctx, measure, value, datetime.datetime.now(datetime.timezone.utc))
            except Exception:
                if not failed:
                    failed.append(True)
                    log.exception("subscriber %r of measure %r failed; later failures are "
                                  "not logged", fn, measure.name)

        self._add_subscriber(call)

    def accept(self, value: Any) -> Union[int, float, None]:  # pragma: no cover - abstract
        raise NotImplementedError


class Float64(_Measure):
    """A measure of float values (Go's ``stats.Float64``)."""

    __slots__ = ()

    def record(self, ctx: Optional[Context], value: float) -> None:
        """Record ``value`` in every metric of this measure (see the module doc)."""
        kind = type(value)
        if kind is not float:
            # An int is what most callers pass: converted here, as cheap as
            # a float (accept's ABC checks cost as much as the rest of record).
            if kind is int:
                try:
                    value = float(value)  # finite whenever it does not raise
                except OverflowError:
                    self._drop(value, "out of float range")
                    return
            else:
                value = self.accept(value)  # type: ignore[assignment]
                if value is None:
                    return
        elif value - value:  # NaN or an infinity
            self._drop(value, "non-finite")
            return
        for subscriber in self._subscribers:
            subscriber(ctx, value)

    def accept(self, value: Any) -> Optional[float]:
        """``value`` as this measure records it, or None (then counted as dropped)."""
        import numbers  # the slow path only: not worth its import time up front

        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self._drop(value, "not a number")
            return None
        try:
            value = float(value)
        except OverflowError:
            self._drop(value, "out of float range")
            return None
        if value - value:
            self._drop(value, "non-finite")
            return None
        return float(value)


class Int64(_Measure):
    """A measure of integer values (Go's ``stats.Int64``); sums stay exact ints."""

    __slots__ = ()

    def record(self, ctx: Optional[Context], value: int) -> None:
        """Record ``value`` in every metric of this measure (see the module doc)."""
        if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
            value = self.accept(value)  # type: ignore[assignment]
            if value is None:
                return
        for subscriber in self._subscribers:
            subscriber(ctx, value)

    def accept(self, value: Any) -> Optional[int]:
        """``value`` as this measure records it, or None (then counted as dropped)."""
        import numbers

        if isinstance(value, bool):
            self._drop(value, "not a number")
            return None
        if isinstance(value, numbers.Integral):
            number = int(value)
            if not _INT64_MIN <= number <= _INT64_MAX:
                self._drop(number, "out of int64 range")
                return None
            return number
        if isinstance(value, numbers.Real):
            self._drop(value, "float on Int64")
        else:
            self._drop(value, "not a number")
        return None


Measure = Union[Float64, Int64]


def _swap_registry(registry: Dict[str, _Measure]) -> Dict[str, _Measure]:
    """Make ``registry`` the one measure names are looked up in; the one before.

    For :func:`gotools_compat.testing.fresh_registry` (through
    ``gotools_compat.metric``).  Measures made before keep working: a measure
    is found by name only when it is made.
    """
    global _registry
    with _registry_lock:
        old, _registry = _registry, registry
    return old


__all__ = ["Float64", "Int64", "Measure"]
