"""The Prometheus text format (0.0.4) and OpenMetrics 1.0, written from stored series.

The layout follows prometheus_client's ``generate_latest`` and
``openmetrics.exposition.generate_latest`` (one HELP/TYPE per family, counters
as ``<name>_total``), but lines are produced with one ``%`` per series from a
template cached per family and bucket layout, because the library's
per-sample path is about 40 times slower on large histograms.  Names,
escaping, numbers and content negotiation are :mod:`gotools_compat._promtext`'s,
shared with the in-process exporter.
"""

from __future__ import annotations

import math
from itertools import accumulate, islice
from typing import Any, Dict, Iterable, List, Sequence, Tuple

from gotools_compat._promtext import float_bytes, format_le, header

from ._kinds import COUNTER, GAUGE_HISTOGRAM, HISTOGRAM, SUMMARY, Family, Items

_PIECE = 4096  # series (lines, for scalars) in one piece of render_parts

#: OpenCensus unit strings (UCUM) and the Prometheus base-unit words for them.
UNIT_WORDS: Dict[str, str] = {
    "By": "bytes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "1": "",
}

Snapshot = Sequence[Tuple[Family, Items]]


def render(snapshot: Snapshot, openmetrics: bool = False) -> bytes:
    """The exposition of ``snapshot``: Prometheus text, or OpenMetrics."""
    return b"".join(render_parts(snapshot, openmetrics))


def render_parts(snapshot: Snapshot, openmetrics: bool = False) -> List[bytes]:
    """:func:`render` in pieces of about ``_PIECE`` series each, to be written
    one after the other.  A million series make hundreds of MB of text, and
    the lines are joined (and freed) piece by piece: a scrape never holds the
    interpreter for long in one call, so ingest threads keep running."""
    pieces: List[bytes] = []
    out: List[bytes] = []
    for family, items in snapshot:
        out.append(_header(family, openmetrics))
        kind = family.kind
        write = _histograms if kind in (HISTOGRAM, GAUGE_HISTOGRAM) else (
            _summaries if kind == SUMMARY else _scalars)
        size = len(items)
        if size <= _PIECE:
            write(family, items, openmetrics, out)
        else:
            it = iter(items)
            for _ in range(0, size, _PIECE):
                write(family, islice(it, _PIECE), openmetrics, out)
                pieces.append(b"".join(out))
                out.clear()
        if len(out) >= _PIECE:
            pieces.append(b"".join(out))
            out.clear()
    if openmetrics:
        out.append(b"# EOF\n")
    if out:
        pieces.append(b"".join(out))
    return pieces


def _header(family: Family, openmetrics: bool) -> bytes:
    name = family.name
    lines = header(name, family.kind, family.help, openmetrics)
    if openmetrics:
        unit = UNIT_WORDS.get(family.unit, "")
        if unit and name.endswith("_" + unit):  # a UNIT only with a matching name
            lines += "# UNIT %s %s\n" % (name, unit)
    return lines.encode("utf-8")  # header() made it valid UTF-8


def _sample(family: Family) -> bytes:
    if family.kind == COUNTER:
        return family.name.encode("ascii") + b"_total"
    return family.name.encode("ascii")


def _scalars(family: Family, items: Iterable[Tuple[bytes, Any]], openmetrics: bool,
             out: List[bytes]) -> None:
    name = _sample(family)
    counter = openmetrics and family.kind == COUNTER
    for lbl, value in items:
        if counter and not value >= 0:
            continue  # OpenMetrics has no negative or NaN counters
        text = b"%d" % value if type(value) is int else float_bytes(value)
        if lbl:
            out.append(b"%s{%s} %s\n" % (name, lbl, text))
        else:
            out.append(b"%s %s\n" % (name, text))


def _hist_template(family: Family, bounds: Tuple[float, ...], labeled: bool,
                   openmetrics: bool, with_sum: bool = True) -> bytes:
    key = (bounds, labeled, openmetrics, with_sum)
    template = family.templates.get(key)
    if template is not None:
        return template
    name = family.name.encode("ascii")
    gauge = openmetrics and family.kind == GAUGE_HISTOGRAM
    sum_name = name + (b"_gsum" if gauge else b"_sum")
    count_name = name + (b"_gcount" if gauge else b"_count")
    opening = name + (b"_bucket{%s," if labeled else b"_bucket{")
    lines = [opening + b'le="%s"} %%d\n' % format_le(b).encode("ascii")
             for b in bounds + (math.inf,)]
    if not with_sum:
        pass
    elif labeled:
        lines.append(sum_name + b"{%s} %s\n" + count_name + b"{%s} %d\n")
    else:
        lines.append(sum_name + b" %s\n" + count_name + b" %d\n")
    template = family.templates[key] = b"".join(lines)
    return template


def _histograms(family: Family, items: Iterable[Tuple[bytes, Any]], openmetrics: bool,
                out: List[bytes]) -> None:
    append = out.append
    last_bounds: Any = None
    last_labeled = False
    template = b""
    size = 0
    gauge = family.kind == GAUGE_HISTOGRAM
    for lbl, (bounds, counts, total) in items:
        # Bounds tuples are interned by the store: an identity test finds the
        # template without hashing thirteen floats per series.
        if bounds is not last_bounds or bool(lbl) is not last_labeled:
            last_bounds, last_labeled = bounds, bool(lbl)
            template = _hist_template(family, bounds, last_labeled, openmetrics)
            size = 2 * len(bounds) + 6
        # The template's arguments: cumulative counts, sum and count, each
        # after the label string when there is one.
        if lbl:
            args = [lbl] * size
            args[1:size - 4:2] = accumulate(counts)
            args[size - 3] = total
            args[size - 1] = args[size - 5]
        else:
            args = list(accumulate(counts))
            args += (total, args[-1])
        if openmetrics:
            # OpenMetrics allows no _sum with negative buckets, no negative or
            # NaN _sum of a histogram, and no _count without _sum.
            negative = bool(bounds) and bounds[0] < 0
            if (negative and not gauge) or (not negative and total[:1] == b"-") \
                    or total == b"NaN":
                append(_hist_template(family, bounds, last_labeled, True, False)
                       % tuple(args[:-4 if lbl else -2]))
                continue
        append(template % tuple(args))


def _summaries(family: Family, items: Iterable[Tuple[bytes, Any]], openmetrics: bool,
               out: List[bytes]) -> None:
    name = family.name.encode("ascii")
    for lbl, (count, total, quantiles) in items:
        inner = lbl + b"," if lbl else b""
        for q, value in quantiles:
            if openmetrics and not value >= 0:
                continue  # OpenMetrics: quantile values cannot be negative
            out.append(b'%s{%squantile="%s"} %s\n' % (
                name, inner, format_le(q).encode("ascii"), float_bytes(value)))
        if openmetrics and not total >= 0:
            continue
        braces = b"{%s}" % lbl if lbl else b""
        out.append(b"%s_sum%s %s\n%s_count%s %d\n" % (
            name, braces, float_bytes(total), name, braces, count))
