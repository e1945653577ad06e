"""The agent's series: one map per sender and family, replaced series by series.

Every export of a cumulative metric carries its current totals, so a series is
stored as the last value received and replaced by the next one (records:
:mod:`._kinds`, how they are made: :mod:`._series`).

The store is bounded (:mod:`._limits`): past ``max_series`` in all,
``max_series_per_sender``, ``max_series_per_metric`` or ``max_senders``, new
series and new senders are refused and counted; stored ones keep updating.

A scrape never holds the lock for long: each family keeps the senders that
have series in it, so a snapshot visits only the (family, sender) pairs
present, and copies their series dicts one by one, letting ingest in between.

The store takes metrics in the plain form of :mod:`._model`, whichever wire
they came over; it never sees protobuf messages or JSON.

With a :class:`._merge.Merger` (``--merge-instances``) the series of one job's
senders share their label strings (no ``instance``) and a scrape merges them;
a sender that expires or restarts has its series folded into the merger first.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from gotools_compat._promtext import counter_family, label_name, label_pair_bytes, metric_name

from . import _limits, _snapshot
from ._kinds import COUNTER as COUNTER
from ._kinds import GAUGE as GAUGE
from ._kinds import GAUGE_HISTOGRAM as GAUGE_HISTOGRAM
from ._kinds import HISTOGRAM as HISTOGRAM
from ._kinds import KINDS, OWN_LABELS, SUFFIXES, Items, inferred
from ._kinds import SUMMARY as SUMMARY
from ._kinds import Family as Family
from ._kinds import Record as Record
from ._kinds import cumulative_counts as cumulative_counts
from ._kinds import per_bucket as per_bucket
from ._merge import Merger
from ._model import Desc, Metric, SeriesOf
from ._series import Plan, SeriesBuilder

logger = logging.getLogger(__name__)

_MISSING: Any = object()
_FULL: Any = object()  # a plan refused: the store has max_series families

SenderKey = Tuple[str, str, int]


class Sender:
    """One process that sends to the agent, told apart by its node."""

    __slots__ = ("key", "job", "instance", "prefix", "last_seen", "series", "count", "start")

    def __init__(self, key: SenderKey, job: str, instance: str, prefix: bytes,
                 start: Tuple[int, int] = (0, 0)) -> None:
        self.key = key
        self.start = start  # the node's start time (seconds, nanos); (0, 0): none
        self.job = job
        self.instance = instance
        self.prefix = prefix
        self.last_seen = time.monotonic()
        self.series: Dict[str, Dict[bytes, Record]] = {}
        self.count = 0  # series stored, all families


class _Members:
    """The senders with series in one family, and how many series that is."""

    __slots__ = ("senders", "count")

    def __init__(self) -> None:
        self.senders: Dict[SenderKey, Sender] = {}
        self.count = 0


def sender_key(node: Any) -> SenderKey:
    if node is None:
        return ("", "", 0)
    ident = node.identifier
    return (node.service_info.name, ident.host_name, ident.pid)


def start_of(node: Any) -> Tuple[int, int]:
    if node is None:
        return (0, 0)
    start = node.identifier.start_timestamp
    return (start.seconds, start.nanos)


class Store(SeriesBuilder):
    """Series of all senders, thread-safe and bounded; readers take snapshots.

    ``max_series`` (all senders), ``max_series_per_sender``,
    ``max_series_per_metric`` (one family, all senders) and ``max_senders``
    bound what is kept: series not stored yet and senders not known yet are
    refused past them, counted by cause (:meth:`limit_counters`,
    :meth:`own_families`) with one WARNING per cause; series already stored
    keep taking new values.  A sender that expires frees its room.
    ``merge``: see :mod:`._merge` (None: one series per sender).
    """

    def __init__(self, namespace: str = "",
                 const_labels: Optional[Dict[str, str]] = None,
                 target_labels: bool = True, expire_after: float = 300.0, *,
                 max_series: int = 1_000_000, max_series_per_sender: int = 100_000,
                 max_series_per_metric: int = 100_000, max_senders: int = 10_000,
                 merge: Optional[Merger] = None) -> None:
        super().__init__()
        self.merge = merge
        self.namespace = namespace
        self.target_labels = target_labels
        self.expire_after = expire_after
        self._const = [(label_name(k), v) for k, v in (const_labels or {}).items()]
        for key, _ in self._const:
            if key.startswith("__"):
                raise ValueError("const label %r: names starting with __ are reserved" % key)
        self._reserved: Set[str] = {k for k, _ in self._const}
        if target_labels:
            self._reserved.update(("job", "instance"))
        self._limits = _limits.Limits(max_series, max_series_per_sender,
                                      max_series_per_metric, max_senders)
        self._lock = threading.Lock()
        self._families: Dict[str, Family] = {}
        self._members: Dict[str, _Members] = {}  # only families that have series
        self._samples: Dict[str, str] = {}
        self._senders: Dict[SenderKey, Sender] = {}
        self._plans: Dict[Any, Optional[Plan]] = {}
        self._total = 0  # series stored

    # -- senders -----------------------------------------------------------

    def sender(self, node: Any) -> Sender:
        """The sender of ``node``; one past ``max_senders`` is not kept (its
        series are refused at :meth:`ingest` while there is no room)."""
        key = sender_key(node)
        found = self._senders.get(key)
        if found is not None:
            start = start_of(node) if self.merge is not None else found.start
            if start != found.start:
                with self._lock:
                    self._restarted(found, start)
            return found
        with self._lock:
            found = self._senders.get(key)
            if found is None:
                found = self._new_sender(key, start_of(node))
                if len(self._senders) < self._limits.max_senders:
                    self._add_sender(found)
        return found

    def _new_sender(self, key: SenderKey, start: Tuple[int, int]) -> Sender:
        job, host, pid = key
        instance = "%s:%d" % (host, pid) if host or pid else ""
        pairs = [label_pair_bytes(k, v) for k, v in self._const if v]
        if self.target_labels:
            target = (("job", job),) if self.merge else (("job", job), ("instance", instance))
            pairs += [label_pair_bytes(k, v) for k, v in target if v]
        return Sender(key, job, instance, b",".join(pairs), start)

    def _restarted(self, sender: Sender, start: Tuple[int, int]) -> None:
        """A known sender with another start time: the last series of its former
        run are folded, and it starts afresh."""
        if sender.start == start or start == (0, 0):
            return  # another thread saw it first, or a node without a start time
        if sender.start != (0, 0) and sender.series:
            logger.info("sender job=%r instance=%r restarted: its totals so far are folded",
                        sender.job, sender.instance)
            self._forget(sender)
        sender.start = start

    def _forget(self, sender: Sender) -> None:
        """Drop the series of ``sender`` (expired, or restarted); with a merger,
        fold them into its totals first."""
        merge = self.merge
        for name, series in sender.series.items():
            if merge is not None:
                merge.fold(self._families[name], series)
            members = self._members[name]
            del members.senders[sender.key]
            members.count -= len(series)
            if not members.senders:
                del self._members[name]
        if merge is not None and sender.series:
            merge.instances += 1
        self._total -= sender.count
        sender.series = {}  # if it comes back, it starts afresh
        sender.count = 0

    def _add_sender(self, sender: Sender) -> None:
        logger.info("new sender job=%r instance=%r", sender.job, sender.instance)
        self._senders[sender.key] = sender

    def senders(self) -> List[Tuple[str, str]]:
        with self._lock:
            return sorted((s.job, s.instance) for s in self._senders.values())

    def expire(self, now: Optional[float] = None) -> int:
        with self._lock:
            return self._expire_locked(time.monotonic() if now is None else now)

    def _expire_locked(self, now: float) -> int:
        if self.expire_after <= 0:
            return 0
        cutoff = now - self.expire_after
        dead = [s for s in self._senders.values() if s.last_seen < cutoff]
        for sender in dead:
            logger.info("sender job=%r instance=%r silent for %.0f s: its series are dropped",
                        sender.job, sender.instance, now - sender.last_seen)
            del self._senders[sender.key]
            self._forget(sender)
        if dead:
            gone = self.merge.gone if self.merge is not None else {}
            for name in [n for n in self._families if n not in self._members
                         and n not in gone]:
                self._drop_family(name)
        return len(dead)

    def _drop_family(self, name: str) -> None:
        family = self._families.pop(name)
        for suffix in SUFFIXES[family.kind]:
            self._samples.pop(name + suffix, None)
        self._plans = {k: p for k, p in self._plans.items()
                       if p is not None and p.family is not family}

    # -- families ----------------------------------------------------------

    def _plan(self, desc: Desc, series: SeriesOf) -> Optional[Plan]:
        kind = KINDS.get(desc[3])
        if kind is None:
            for _, first in series:
                kind = inferred(first)
                break
            if kind is None:
                return None
        key = (desc[0], kind, desc[4])
        plan = self._plans.get(key, _MISSING)
        if plan is _MISSING:
            with self._lock:
                plan = self._new_plan(desc, kind)
                if plan is not _FULL:  # refused for now, not for ever
                    self._plans[key] = plan
        return plan  # type: ignore[no-any-return]

    def _new_plan(self, desc: Desc, kind: str) -> Optional[Plan]:
        if not desc[0]:
            logger.warning("a metric without a name was dropped")
            return None
        name = metric_name(self.namespace, desc[0])
        if kind == COUNTER:
            name = counter_family(name)
        family = self._families.get(name)
        if family is None:
            if len(self._families) >= self._limits.max_series:
                return _FULL  # type: ignore[no-any-return]
            family = Family(name, kind, desc[1], desc[2])
            if not self._register(family):
                return None
        elif family.kind != kind:
            logger.warning("metric %r is a %s here but a %s elsewhere: dropped",
                           desc[0], kind, family.kind)
            return None
        taken = set(self._reserved) | set(OWN_LABELS.get(kind, ()))
        keys: List[str] = []
        for raw in desc[4]:
            label = label_name(raw)
            # Names starting with __ are Prometheus's own (__name__...).
            while label in taken or label.startswith("__"):
                label = "exported_" + label
            taken.add(label)
            keys.append(label)
        return Plan(family, keys)

    def _register(self, family: Family) -> bool:
        samples = [family.name + s for s in SUFFIXES[family.kind]]
        clash = [s for s in samples if s in self._samples]
        if clash:
            logger.warning("metric %r (%s) would repeat the series name %r of %r: dropped",
                           family.name, family.kind, clash[0], self._samples[clash[0]])
            return False
        for sample in samples:
            self._samples[sample] = family.name
        self._families[family.name] = family
        return True

    # -- ingest ------------------------------------------------------------

    def ingest(self, sender: Sender, metrics: Iterable[Metric]) -> int:
        """Store the metrics of one export; returns the number of series stored
        (new or updated; refused ones are counted, see :meth:`limit_counters`).

        All or nothing: when reading a series raises (BadRequest), nothing is stored."""
        updates: List[Tuple[Plan, Dict[bytes, Record]]] = []
        full = 0
        for desc, timeseries in metrics:
            plan = self._plan(desc, timeseries)
            if plan is None:
                continue
            if plan is _FULL:
                full += len(timeseries)
                continue
            series = self.series_of(plan, sender.prefix, timeseries)
            if series:
                updates.append((plan, series))
        limits = self._limits
        merge = self.merge
        refused = dict.fromkeys(_limits.CAUSES, 0)
        refused[_limits.MAX_SERIES] = full
        taken = 0
        with self._lock:
            current = self._senders.get(sender.key)
            if current is None:
                if len(self._senders) >= limits.max_senders:
                    refused[_limits.MAX_SENDERS] = sum(len(s) for _, s in updates) + full
                    refused[_limits.MAX_SERIES] = 0  # counted once, as the sender's
                    updates = []
                else:
                    self._add_sender(sender)  # new, or expired meanwhile: it is back
            elif current is not sender:
                sender = current  # another object of this sender: store there
            sender.last_seen = time.monotonic()
            for plan, series in updates:
                family = plan.family
                name = family.name
                if self._families.get(name) is not family and not self._register(family):
                    continue
                members = self._members.get(name)
                if members is None:
                    members = self._members[name] = _Members()
                stored = sender.series.get(name)
                if merge is not None and stored is not None:
                    merge.resets(family, stored, series)
                room = min(limits.max_series - self._total,
                           limits.max_series_per_sender - sender.count,
                           limits.max_series_per_metric - members.count)
                if len(series) <= room:  # the common case: no bound near
                    if stored is None:
                        sender.series[name] = series
                        members.senders[sender.key] = sender
                        added = len(series)
                    else:
                        # A later copy of a metric in the same export replaces the earlier.
                        before = len(stored)
                        stored.update(series)
                        added = len(stored) - before
                    taken += len(series)
                else:
                    added, kept = _limits.bounded_update(limits, self._total, sender, members,
                                                         name, stored, series, refused)
                    taken += kept
                if not members.senders:
                    del self._members[name]
                self._total += added
                sender.count += added
                members.count += added
            warnings = [cause for cause, n in refused.items() if limits.refuse(cause, n)]
        if warnings:
            _limits.warn(limits, warnings)
        return taken

    # -- reading -----------------------------------------------------------

    def snapshot(self) -> List[Tuple[Family, Items]]:
        """Every family with its series, sorted by name; series of one label
        string from several senders are merged (the merger's rules, or summed).

        Records are immutable and the dicts are copies: render without a lock.
        The lock is held for a few milliseconds at a time (see
        :mod:`._snapshot`), so ingest goes on during a scrape."""
        lock = self._lock
        merge = self.merge
        with lock:
            self._expire_locked(time.monotonic())
            names = list(self._members)
            if merge is not None:
                names += [name for name in merge.gone if name not in self._members]
        names.sort()
        return _snapshot.copy_families(lock, names, self._members, self._families,
                                       merging=not self.target_labels or merge is not None,
                                       merger=merge)

    def limit_counters(self) -> List[Tuple[str, str, int]]:
        """``(cause, help, series refused)`` for each bound, in :data:`_limits.CAUSES`'s order."""
        with self._lock:
            return self._limits.counters()

    def own_families(self) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
        """The store's own series for the agent's /metrics, in the renderer's form
        (:func:`._limits.families`, and the merger's)."""
        with self._lock:
            own = _limits.families(self._limits, self._total, len(self._senders), self.rejected)
            return own + self.merge.own_families() if self.merge is not None else own

