"""The Prometheus text format 0.0.4 and OpenMetrics 1.0: names, escaping, numbers, negotiation.

One set of rules for both writers, the agent's renderer and the in-process
exporter (``export.prometheus``), so that the same data is the same bytes
from either and a scrape gets the same format from either.  Pure functions;
nothing of gotools_compat is imported here.

Numbers: ints are written exactly; a float sample value as the shortest text
that reads back as the same double, integral ones without ``.0`` (``14``,
``0.25``, ``NaN``, ``+Inf``), which both formats accept.  ``le`` and
``quantile`` values are labels, so their spelling is part of a series'
identity: they are written in the one canonical form that OpenMetrics
requires and Prometheus 3 normalises every scrape to (``10.0``,
``1.048576e+06``), in both formats.
"""

from __future__ import annotations

import math
import re
from typing import Optional, Tuple, Union

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Number = Union[int, float]

_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_BAD = re.compile(r"[^a-zA-Z0-9_]")
_SURROGATE = re.compile("[\ud800-\udfff]")


# Names.

def metric_name(namespace: str, name: str) -> str:
    """The exposed name of metric ``name`` under ``namespace`` (``namespace_name``).

    Characters a name cannot hold become ``_`` and a leading digit gets a
    ``_`` before it; case, spelling and units stay as the sender chose them
    (``latencyDistribution`` stays camelCase, no unit suffix is added).
    """
    clean_name = _NAME_BAD.sub("_", name) or "_"
    if namespace:
        clean_name = _NAME_BAD.sub("_", namespace) + "_" + clean_name
    if clean_name[0].isdigit():
        clean_name = "_" + clean_name
    return clean_name


def counter_family(name: str) -> str:
    """A counter's family name: ``name`` without ``_total``, which its samples add back."""
    return name[:-6] if name.endswith("_total") and len(name) > 6 else name


def label_chars(key: str) -> str:
    """``key`` with each character a label name cannot hold made ``_`` (never empty)."""
    return _LABEL_BAD.sub("_", key) or "_"


def label_name(key: str) -> str:
    """A valid label name for ``key``: :func:`label_chars`, and ``_`` before a leading digit.

    Names reserved by Prometheus (``__*``) or by a kind (``le``, ``quantile``)
    are the caller's to rename, as each writer has its own scheme for it.
    """
    name = label_chars(key)
    return "_" + name if name[0].isdigit() else name


# Escaping.

def clean(text: str) -> str:
    """``text`` with each lone surrogate (not encodable as UTF-8) made U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; lone surrogates (a JSON ``"\\ud800"``) become U+FFFD.

    The backstop that keeps any string that reaches an exposition from
    breaking a scrape."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return clean(text).encode("utf-8")


def escape_label_value(value: str) -> str:
    """A label value as both formats quote it: ``\\``, ``"`` and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value if value.isascii() else clean(value)


def label_pair(name: str, value: str) -> str:
    """``name="value"``, the value escaped; ``name`` must be a valid label name."""
    return '%s="%s"' % (name, escape_label_value(value))


def label_pair_bytes(name: str, value: str) -> bytes:
    """:func:`label_pair` as UTF-8: the bytes the agent's store keys series by."""
    return label_pair(name, value).encode("utf-8")


def escape_help(text: str, openmetrics: bool) -> str:
    """A HELP text: ``\\`` and newline escaped, and in OpenMetrics ``"`` too."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    if openmetrics:
        text = text.replace('"', '\\"')
    return text if text.isascii() else clean(text)


def header(family: str, kind: str, help_text: str, openmetrics: bool) -> str:
    """A family's ``# HELP`` and ``# TYPE`` lines.

    The text format names a counter by its sample (``<family>_total``) and
    has no gauge histograms (they are histograms there); OpenMetrics names
    the family.
    """
    if not openmetrics:
        if kind == "counter":
            family += "_total"
        elif kind == "gaugehistogram":
            kind = "histogram"
    return "# HELP %s %s\n# TYPE %s %s\n" % (family, escape_help(help_text, openmetrics),
                                           family, kind)


# Numbers.

def format_float(value: float) -> str:
    """A double as both formats accept it: integral values below 1e15 without ``.0``,
    larger ones as Python writes them (``1e+16``, ``1000000000000000.0``): exact either way."""
    if value.is_integer() and -1e15 < value < 1e15:
        return "%d" % value
    if value != value:
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    return repr(value)


def float_bytes(value: float) -> bytes:
    """:func:`format_float` as ASCII bytes (the agent's renderer writes bytes)."""
    if value.is_integer() and -1e15 < value < 1e15:
        return b"%d" % value
    return format_float(value).encode("ascii")


def format_value(value: Number) -> str:
    """A sample value: an int exactly (past 2**53 too), a float by :func:`format_float`."""
    return "%d" % value if type(value) is int else format_float(value)


def format_le(bound: Number) -> str:
    """An ``le`` or ``quantile`` label value, in the canonical form of both formats.

    Go's shortest ``%g`` with ``.0`` added to an integral mantissa, as
    OpenMetrics asks and Prometheus 3 normalises to: ``0.0``, ``10.0``,
    ``0.005``, ``1e-05``, ``123456.0``, ``1e+06``, ``1.048576e+06``, ``+Inf``.
    """
    value = float(bound)
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(abs(value))
    dot = text.find(".")
    if dot > 6:  # Go uses an exponent from 1e6 on, Python's repr from 1e16 on
        digits = (text[:dot] + text[dot + 1:]).rstrip("0")
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        text = "%se+%02d" % (mantissa, dot - 1)
    return "-" + text if value < 0 else text


# Content negotiation.

_TEXT_RANGES = ("text/plain", "text/*", "*/*")
_OPENMETRICS_RANGES = ("application/openmetrics-text", "application/*", "*/*")


def _quality(accept: str) -> Tuple[float, float]:
    """The q of the text format and of OpenMetrics in an Accept header (0: not acceptable).

    Each format takes the q of the most specific range that matches it
    (``text/plain`` over ``text/*`` over ``*/*``), the highest if that range
    is listed twice (``version=`` parameters are ignored); an element whose
    q is not a number from 0 to 1 is ignored.
    """
    best = [(0, 0.0), (0, 0.0)]  # (specificity, q) for text, OpenMetrics
    for element in accept.split(","):
        fields = element.split(";")
        media = fields[0].strip().lower()
        q = 1.0
        for param in fields[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
        if not 0.0 <= q <= 1.0:
            continue
        for i, ranges in enumerate((_TEXT_RANGES, _OPENMETRICS_RANGES)):
            if media in ranges:
                specificity = 3 - ranges.index(media)
                if (specificity, q) > best[i]:
                    best[i] = (specificity, q)
    return best[0][1], best[1][1]


def wants_openmetrics(accept: Optional[str]) -> bool:
    """Whether a scrape with this ``Accept`` header gets OpenMetrics rather than text.

    The header is read as HTTP says (q-values, ``q=0`` as "not acceptable",
    the most specific range deciding), and the rule is: OpenMetrics only for
    a client that accepts it and does not accept the text format; text to
    every other client, including one that accepts both, whatever their q
    (Prometheus asks for OpenMetrics first and text at ``q=0.5``: it gets
    text), and one that accepts neither or sends no header.  The reason is
    what OpenMetrics cannot carry of our data: a histogram whose first bound
    is negative may not have ``_sum`` and ``_count`` there, a counter may not
    go negative; the text format carries both, and ``le`` is written alike
    in both, so a client that takes text loses nothing by getting it.
    """
    if not accept:
        return False
    text, openmetrics = _quality(accept)
    return openmetrics > 0 and text == 0


def content_type(openmetrics: bool) -> str:
    """The Content-Type of an exposition in that format."""
    return OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE


__all__ = ["TEXT_CONTENT_TYPE", "OPENMETRICS_CONTENT_TYPE", "Number", "metric_name",
           "counter_family", "label_chars", "label_name", "clean", "utf8",
           "escape_label_value", "label_pair", "escape_help", "header", "format_float",
           "float_bytes", "format_value", "format_le", "wants_openmetrics", "content_type"]
