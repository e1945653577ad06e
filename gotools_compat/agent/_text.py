"""Names, label values and numbers as the Prometheus text formats want them."""

from __future__ import annotations

import math
import re
from typing import Dict, Tuple

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
_SURROGATE = re.compile("[\ud800-\udfff]")

#: OpenCensus unit strings (UCUM) and the Prometheus base-unit words for them.
UNIT_WORDS: Dict[str, str] = {
    "By": "bytes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "1": "",
}


def metric_name(namespace: str, name: str) -> str:
    """The exposed name: the sender's name with invalid characters made ``_``.

    Case and spelling stay as the sender chose them (the tutorial's
    ``latencyDistribution`` stays camelCase).
    """
    clean = _NAME_BAD.sub("_", name) or "_"
    if namespace:
        clean = _NAME_BAD.sub("_", namespace) + "_" + clean
    if clean[0].isdigit():
        clean = "_" + clean
    return clean


def clean(text: str) -> str:
    """``text`` with each lone surrogate (not encodable as UTF-8) made U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; lone surrogates (a JSON ``"\\ud800"``) become U+FFFD.

    The readers already replace them; this is the backstop that keeps any
    string that reaches the exposition from breaking a scrape."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return clean(text).encode("utf-8")


def label_name(key: str) -> str:
    clean = _LABEL_BAD.sub("_", key) or "_"
    if clean[0].isdigit():
        clean = "_" + clean
    return clean


def escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def label_pair(key: str, value: str) -> bytes:
    """``key="value"`` with the value escaped, as UTF-8."""
    return utf8('%s="%s"' % (key, escape_label_value(value)))


def escape_help(text: str, openmetrics: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        text = text.replace('"', '\\"')
    return text


def format_float(value: float) -> bytes:
    """A double as both formats accept it; integral values without ``.0``."""
    if value.is_integer() and -1e15 < value < 1e15:
        return b"%d" % value
    if value != value:
        return b"NaN"
    if value == math.inf:
        return b"+Inf"
    if value == -math.inf:
        return b"-Inf"
    return repr(value).encode("ascii")


def format_value(value: object) -> bytes:
    if isinstance(value, int):
        return b"%d" % value
    assert isinstance(value, float)
    return format_float(value)


def format_le(bound: float, openmetrics: bool) -> str:
    """A bucket bound as an ``le`` label value.

    The text format keeps the tutorial's look (``le="10"``); OpenMetrics uses
    the canonical float form its parsers expect (``le="10.0"``).
    """
    if openmetrics:
        if bound == math.inf:
            return "+Inf"
        return repr(float(bound))
    return format_float(float(bound)).decode("ascii")


def bounds_ok(bounds: Tuple[float, ...]) -> bool:
    """Strictly increasing finite bounds: each ``le`` value distinct."""
    previous = -math.inf
    for bound in bounds:
        if not (bound > previous) or math.isinf(bound) or bound != bound:
            return False
        previous = bound
    return True
