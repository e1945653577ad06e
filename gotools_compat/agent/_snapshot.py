"""A store's snapshot: its series dicts copied a few at a time, then joined.

Each family knows the senders that have series in it, so a snapshot visits
only the (family, sender) pairs present: its time follows the series stored,
not senders x metric names.  The store's lock is held while one slice is
copied (``dict.copy`` of ``_COPY_SLICE`` series takes about 2 ms) and let go
between slices, so ingest waits at most a few milliseconds during a scrape of
a million series.  Records are immutable: copying references is enough.
"""

from __future__ import annotations

from itertools import chain, islice
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._kinds import Family, Items, Record, merge

_COPY_SLICE = 100_000  # series copied with the lock held at most
_PAIR_COST = 64  # a (family, sender) pair visited, in series copied


class _Chain:
    """The series dicts of several senders of one family, as one sized iterable
    of ``(labels, record)``."""

    __slots__ = ("_parts",)

    def __init__(self, parts: List[Dict[bytes, Record]]) -> None:
        self._parts = parts

    def __len__(self) -> int:
        return sum(map(len, self._parts))

    def __iter__(self) -> Iterator[Tuple[bytes, Record]]:
        return chain.from_iterable(map(dict.items, self._parts))


def copy_families(lock: Any, names: List[str], members_of: Dict[str, Any],
                  families: Dict[str, Family], merging: bool,
                  merger: Optional[Any] = None) -> List[Tuple[Family, Items]]:
    """The families ``names`` (sorted) with copies of their senders' series.

    ``members_of`` maps a family name to its ``_Members`` (``senders``: key ->
    Sender, each with ``series``: family name -> dict).  With target labels
    every sender has its own label prefix, so no two senders share a series
    and their dicts are only chained; without (``merging``), they are merged,
    by the ``merger``'s rules (:class:`._merge.Merger`, with the totals of gone
    instances) when there is one."""
    out: List[Tuple[Family, Items]] = []
    to_merge: List[Tuple[Family, List[Any], Any]] = []
    budget = _COPY_SLICE
    lock.acquire()
    try:
        for name in names:
            members = members_of.get(name)
            family = families.get(name)
            gone = merger.copy(name) if merger is not None and family is not None else None
            if family is None or (members is None and gone is None):
                continue  # expired meanwhile
            if gone is not None:
                budget -= len(gone)
            parts: List[Any] = []
            for sender in list(members.senders.values()) if members is not None else ():
                series = sender.series.get(name)
                if series is None:
                    continue  # expired meanwhile
                cost = len(series) + _PAIR_COST
                if cost > budget:
                    lock.release()  # let ingest in
                    budget = _COPY_SLICE
                    lock.acquire()
                if len(series) > _COPY_SLICE:
                    lock.release()
                    copy = _copy_in_slices(lock, series)
                    lock.acquire()
                else:
                    copy = series.copy()
                    budget -= cost
                parts.append((sender.last_seen, copy) if merging else copy)
            # Few objects a family: each one the collector must track.
            if not parts and gone is None:
                continue
            if merging:
                to_merge.append((family, parts, gone))
            else:
                out.append((family, parts[0].items() if len(parts) == 1 else _Chain(parts)))
    finally:
        lock.release()
    if merger is not None:
        return [(family, merger.merged(family, parts, gone)) for family, parts, gone in to_merge]
    if merging:
        return [(family, _merged(family, parts)) for family, parts, _ in to_merge]
    return out


def _copy_in_slices(lock: Any, series: Dict[bytes, Record]) -> Dict[bytes, Record]:
    # Series are never removed from a sender's dict, only added at the end
    # or replaced in place, so positions stay valid between slices.
    out: Dict[bytes, Record] = {}
    start = 0
    while True:
        with lock:
            out.update(islice(series.items(), start, start + _COPY_SLICE))
            done = len(series) <= start + _COPY_SLICE
        start += _COPY_SLICE
        if done:
            return out


def _merged(family: Family, parts: List[Tuple[float, Dict[bytes, Record]]]) -> Items:
    """One family's series of all senders that share one label prefix (target
    labels off), merged oldest sender first, so gauges keep the newest value."""
    if len(parts) == 1:
        return parts[0][1].items()
    parts.sort(key=lambda part: part[0])
    merged: Dict[bytes, Record] = {}
    for _, series in parts:
        for lbl, record in series.items():
            old = merged.get(lbl)
            merged[lbl] = record if old is None else merge(family.kind, lbl, old, record)
    return merged.items()
