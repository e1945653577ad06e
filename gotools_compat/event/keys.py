"""Typed keys, tags and contexts, as in Go's ``telemetry/event`` package.

Keys are compared by identity, like Go's: two libraries that both make a key
named "method" never collide.  A :class:`Context` is an immutable set of tag
values; :func:`label` returns a new one, as Go's ``event.Label`` returns a new
``context.Context``.  Metrics read the values of their keys from the context
given to ``record`` (and keep the row they found in it, see ``Context._rows``).
"""

from __future__ import annotations

import logging
from typing import (TYPE_CHECKING, Any, Dict, Generic, Iterable, List, Optional, Tuple, TypeVar,
                    Union)

if TYPE_CHECKING:
    from gotools_compat.event.spans import Span

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Limits opencensus puts on tag keys and values (opencensus.tags.validation).
MAX_LABEL_LENGTH = 255


def _check_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError("key name must be a str, not %s" % type(name).__name__)
    if not 0 < len(name) <= MAX_LABEL_LENGTH or not all(32 <= ord(c) <= 126 for c in name):
        raise ValueError(
            "key name %r is not a valid opencensus tag key: it must be 1 to 255 printable "
            "ASCII characters" % (name,))
    return name


class Key(Generic[T]):
    """A key for values of any type (Go's ``event.NewKey``).

    ``key.of(v)`` makes a :class:`Tag`; ``key.get(tags)`` reads it back.
    As a metric dimension the value is shown as ``str(v)``.
    """

    __slots__ = ("name", "description", "_warned")
    kind = "value"

    def __init__(self, name: str, description: str = "") -> None:
        self.name = _check_name(name)
        if not isinstance(description, str):
            raise TypeError("key description must be a str")
        self.description = description
        self._warned = False

    def __repr__(self) -> str:
        return "%s(%r)" % (type(self).__name__, self.name)

    def _check(self, value: Any) -> T:
        return value  # type: ignore[no-any-return]

    def _format(self, value: Any) -> str:
        return str(value)

    def of(self, value: T) -> "Tag":
        """A tag with this key and ``value``; a value of the wrong type is a TypeError."""
        return Tag(self, self._check(value))

    def get(self, tags: Union["Context", Iterable["Tag"], None]) -> Optional[T]:
        """The value this key has in ``tags`` (a tag list or a Context), or None."""
        if tags is None:
            return None
        if isinstance(tags, Context):
            return tags._values.get(self)
        for tag in tags:
            if tag.key is self:
                return tag.value  # type: ignore[no-any-return]
        return None

    def label(self, value: Any) -> str:
        """The label value (a str) that ``value`` becomes in a metric row.

        Values longer than 255 characters (opencensus's limit for tag values)
        are cut to 255, with one warning per key.
        """
        text = self._format(value)
        if len(text) > MAX_LABEL_LENGTH:
            if not self._warned:
                self._warned = True
                logger.warning("values of key %r are longer than %d characters; they are cut "
                            "to %d in metric rows", self.name, MAX_LABEL_LENGTH,
                            MAX_LABEL_LENGTH)
            text = text[:MAX_LABEL_LENGTH]
        return text


class StringKey(Key[str]):
    __slots__ = ()
    kind = "string"

    def _check(self, value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("%r takes a str, not %s" % (self, type(value).__name__))
        return value

    def _format(self, value: Any) -> str:
        return value  # type: ignore[no-any-return]


class _IntegerKey(Key[int]):
    __slots__ = ()
    low: int  # each key type's range, from its bits (_integer_key)
    high: int

    def _check(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("%r takes an int, not %s" % (self, type(value).__name__))
        if not self.low <= value <= self.high:
            raise ValueError("%r takes values in [%d, %d], not %d"
                             % (self, self.low, self.high, value))
        return int(value)


def _integer_key(name: str, bits: int, signed: bool) -> type:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    return type(name, (_IntegerKey,), {"__slots__": (), "low": low, "high": high,
                                       "kind": name[:-3].lower()})


IntKey = _integer_key("IntKey", 64, True)
Int8Key = _integer_key("Int8Key", 8, True)
Int16Key = _integer_key("Int16Key", 16, True)
Int32Key = _integer_key("Int32Key", 32, True)
Int64Key = _integer_key("Int64Key", 64, True)
UIntKey = _integer_key("UIntKey", 64, False)
UInt8Key = _integer_key("UInt8Key", 8, False)
UInt16Key = _integer_key("UInt16Key", 16, False)
UInt32Key = _integer_key("UInt32Key", 32, False)
UInt64Key = _integer_key("UInt64Key", 64, False)


class FloatKey(Key[float]):
    """Float32 and Float64 keys; ints are accepted and become floats."""

    __slots__ = ()
    kind = "float64"

    def _check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("%r takes a float, not %s" % (self, type(value).__name__))
        return float(value)

    def _format(self, value: Any) -> str:
        # Go prints 2.0 as "2": integral values print without the ".0".
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)


class BooleanKey(Key[bool]):
    __slots__ = ()
    kind = "boolean"

    def _check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise TypeError("%r takes a bool, not %s" % (self, type(value).__name__))
        return value

    def _format(self, value: Any) -> str:
        return "true" if value else "false"


class ErrorKey(Key[BaseException]):
    __slots__ = ()
    kind = "error"

    def _check(self, value: Any) -> BaseException:
        if not isinstance(value, BaseException):
            raise TypeError("%r takes an exception, not %s" % (self, type(value).__name__))
        return value


def new_key(name: str, description: str = "") -> Key[Any]:
    return Key(name, description)


def new_string_key(name: str, description: str = "") -> StringKey:
    return StringKey(name, description)


def new_int_key(name: str, description: str = "") -> Key[int]:
    return IntKey(name, description)  # type: ignore[no-any-return]


def new_int8_key(name: str, description: str = "") -> Key[int]:
    return Int8Key(name, description)  # type: ignore[no-any-return]


def new_int16_key(name: str, description: str = "") -> Key[int]:
    return Int16Key(name, description)  # type: ignore[no-any-return]


def new_int32_key(name: str, description: str = "") -> Key[int]:
    return Int32Key(name, description)  # type: ignore[no-any-return]


def new_int64_key(name: str, description: str = "") -> Key[int]:
    return Int64Key(name, description)  # type: ignore[no-any-return]


def new_uint_key(name: str, description: str = "") -> Key[int]:
    return UIntKey(name, description)  # type: ignore[no-any-return]


def new_uint8_key(name: str, description: str = "") -> Key[int]:
    return UInt8Key(name, description)  # type: ignore[no-any-return]


def new_uint16_key(name: str, description: str = "") -> Key[int]:
    return UInt16Key(name, description)  # type: ignore[no-any-return]


def new_uint32_key(name: str, description: str = "") -> Key[int]:
    return UInt32Key(name, description)  # type: ignore[no-any-return]


def new_uint64_key(name: str, description: str = "") -> Key[int]:
    return UInt64Key(name, description)  # type: ignore[no-any-return]


def new_float32_key(name: str, description: str = "") -> FloatKey:
    return FloatKey(name, description)


def new_float64_key(name: str, description: str = "") -> FloatKey:
    return FloatKey(name, description)


def new_boolean_key(name: str, description: str = "") -> BooleanKey:
    return BooleanKey(name, description)


def new_error_key(name: str, description: str = "") -> ErrorKey:
    return ErrorKey(name, description)


class Tag:
    """A key and its value (Go's ``event.Tag``)."""

    __slots__ = ("key", "value")

    def __init__(self, key: Key[Any], value: Any) -> None:
        self.key = key
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tag) and other.key is self.key and other.value == self.value

    def __hash__(self) -> int:
        return hash((id(self.key), self.value))

    def __repr__(self) -> str:
        return "Tag(%s=%r)" % (self.key.name, self.value)

    def __str__(self) -> str:
        return "%s=%s" % (self.key.name, self.value)


class Context:
    """An immutable set of tag values, the Python form of a Go ``context.Context``.

    Make one with :func:`label`; start from :func:`background` or :func:`todo`.
    """

    __slots__ = ("_values", "_rows", "_span")

    def __init__(self, values: Optional[Dict[Key[Any], Any]] = None,
                 span: "Optional[Span]" = None) -> None:
        self._values: Dict[Key[Any], Any] = values if values is not None else {}
        # metric recorder -> its row for this context (filled by the recorders;
        # valid forever because the context never changes).  Contexts with the
        # same values (a span's context and its parent's) share one dict.
        self._rows: Dict[Any, Any] = {}
        # The span this context is in (see start_span), or None.
        self._span = span

    def value(self, key: Key[T]) -> Optional[T]:
        """The value of ``key`` in this context, or None."""
        return self._values.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return "Context(%s)" % ", ".join("%s=%r" % (k.name, v) for k, v in self._values.items())

    def labels(self, keys: Tuple[Key[Any], ...]) -> Tuple[Optional[str], ...]:
        """The row labels of ``keys`` in this context: a str, or None where missing."""
        values = self._values
        return tuple(key.label(values[key]) if key in values else None for key in keys)


_BACKGROUND = Context()


def background() -> Context:
    """The empty root context (Go's ``context.Background()``)."""
    return _BACKGROUND


def todo() -> Context:
    """The empty root context (Go's ``context.TODO()``)."""
    return _BACKGROUND


#: Contexts made from the root by :func:`label`, by their tags' keys and values
#: (what a request handler makes again and again: one route, one method).  A
#: context never changes, so an equal one can be handed out again, with the
#: metric rows it has found (``Context._rows``): recording with it then costs
#: what recording with a context made once does.  Only str values of label
#: length and ints are kept (no two of them are equal yet shown differently,
#: as 0.0 and -0.0 or 1 and True are), and at most MAX_INTERNED contexts.
_interned: Dict[Tuple[Any, ...], Context] = {}
MAX_INTERNED = 4096


def label(ctx: Optional[Context], *tags: Tag) -> Context:
    """A context holding ``ctx``'s values plus ``tags`` (later tags win)."""
    if ctx is _BACKGROUND or ctx is None:
        key = _interned_key(tags)
        if key is not None:
            found = _interned.get(key)
            if found is None:
                found = _label(ctx, tags)
                if len(_interned) < MAX_INTERNED:
                    _interned[key] = found
            return found
    return _label(ctx, tags)


def _interned_key(tags: Tuple[Tag, ...]) -> Optional[Tuple[Any, ...]]:
    """The key of ``tags`` in :data:`_interned`, or None if they are not kept there."""
    parts: Tuple[Any, ...] = ()
    for tag in tags:
        if type(tag) is not Tag:
            return None  # (and _label says why, if it is not a Tag at all)
        value = tag.value
        kind = type(value)
        if kind is not int and (kind is not str or len(value) > MAX_LABEL_LENGTH):
            return None
        parts += (tag.key, value)
    return parts or None


def _label(ctx: Optional[Context], tags: Tuple[Tag, ...]) -> Context:
    if ctx is not None and not isinstance(ctx, Context):
        raise TypeError("label() takes a Context, not %s" % type(ctx).__name__)
    base = ctx._values if ctx is not None else {}
    if not tags and ctx is not None:
        return ctx
    values = dict(base)
    for tag in tags:
        if not isinstance(tag, Tag):
            raise TypeError("label() takes tags made by key.of(value), not %s"
                            % type(tag).__name__)
        values[tag.key] = tag.value
    return Context(values, ctx._span if ctx is not None else None)


def query(ctx: Optional[Context], *keys: Key[Any]) -> List[Tag]:
    """The tags that ``ctx`` holds for ``keys``, in order; a missing key gives value None."""
    values = ctx._values if ctx is not None else {}
    return [Tag(key, values.get(key)) for key in keys]
