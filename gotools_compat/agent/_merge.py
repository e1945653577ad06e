"""``--merge-instances``: one series per job and label set, whatever the instances.

Without it each sender's series carry its ``instance`` (``host:pid``).  With
it the store gives the senders of one job the same label strings (no
``instance``), still keeps each sender's series apart, and a scrape adds them
up (:meth:`Merger.merged`):

- counters, histograms, summaries (count and sum): the sum over the live
  instances plus the final totals of the instances that have gone, so the
  merged value never goes backwards.  An instance has gone when it expires
  (``--expire``) or restarts: the same job, host and pid with another start
  time in its node, or a series whose new value is below the stored one (a
  counter reset).  Its last records are then folded (:meth:`Merger.fold`)
  into one total per series: memory follows the series, not the instances
  that came and went.
- gauges: the live instances only, merged by the gauge rule (:data:`RULES`):
  ``last`` (the instance heard from most recently), ``sum``, ``min`` or
  ``max``.  Gauge histograms are summed under ``sum``, else ``last``.
- summary quantiles cannot be added: those of the newest instance are shown.

The totals of gone instances are bounded as the live series are: at most
``max_series_per_metric`` label sets a family and ``max_series`` in all; a
label set beyond is not kept and is counted
(``gotools_agent_merge_refused_series_total``).  Every method but
:meth:`merged` runs under the store's lock.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from gotools_compat._promtext import float_bytes

from ._kinds import COUNTER, GAUGE, GAUGE_HISTOGRAM, HISTOGRAM, SUMMARY, Family, Items, Record

logger = logging.getLogger(__name__)

LAST, SUM, MIN, MAX = "last", "sum", "min", "max"
RULES = (LAST, SUM, MIN, MAX)

Combine = Callable[[Record, Record], Record]
Series = Dict[bytes, Record]


def _newer(old: Record, new: Record) -> Record:
    return new


def _sum(old: Record, new: Record) -> Record:
    return old + new


def _histograms(old: Record, new: Record) -> Record:
    if old[0] != new[0]:
        return new  # different bounds cannot be added
    counts = tuple([a + b for a, b in zip(old[1], new[1])])
    return (new[0], counts, float_bytes(float(old[2]) + float(new[2])))


def _summaries(old: Record, new: Record) -> Record:
    return (old[0] + new[0], old[1] + new[1], new[2])


_GAUGE_RULES: Dict[str, Combine] = {LAST: _newer, SUM: _sum, MIN: min, MAX: max}
_TOTALS: Dict[str, Combine] = {COUNTER: _sum, HISTOGRAM: _histograms, SUMMARY: _summaries}


def combiner(kind: str, rule: str) -> Combine:
    """How two records of one merged series make one: totals add; gauges by ``rule``."""
    if kind == GAUGE:
        return _GAUGE_RULES[rule]
    if kind == GAUGE_HISTOGRAM:
        return _histograms if rule == SUM else _newer
    return _TOTALS[kind]


def dropped(kind: str, old: Record, new: Record) -> bool:
    """True when ``new`` is below ``old`` in a series that only grows: a reset."""
    if kind == COUNTER:
        return bool(new < old)
    if kind == HISTOGRAM:
        if old[0] == new[0]:
            for a, b in zip(new[1], old[1]):
                if a < b:
                    return True
            return False
        return bool(sum(new[1]) < sum(old[1]))
    if kind == SUMMARY:
        return bool(new[0] < old[0])
    return False  # gauges go up and down


class Merger:
    """The gauge rule and the folded totals of gone instances, by family."""

    def __init__(self, rule: str = LAST, max_series: int = 1_000_000,
                 max_series_per_metric: int = 100_000) -> None:
        if rule not in RULES:
            raise ValueError("gauge rule %r: expected one of %s" % (rule, ", ".join(RULES)))
        self.rule = rule
        self.max_series = max_series
        self.max_series_per_metric = max_series_per_metric
        self.gone: Dict[str, Series] = {}  # family name -> label string -> total
        self.count = 0  # label sets in gone
        self.instances = 0  # instances (or incarnations) folded
        self.refused = 0  # label sets of gone instances not kept (bounds)
        self._warned = False

    # -- under the store's lock --------------------------------------------

    def fold(self, family: Family, series: Series) -> None:
        """Add the last records of a gone instance's ``series`` of ``family`` to
        the totals (gauges are of live instances only: they are dropped)."""
        kind = family.kind
        if kind == GAUGE or kind == GAUGE_HISTOGRAM or not series:
            return
        name = family.name
        totals = self.gone.get(name)
        if totals is None:
            totals = self.gone[name] = {}
        combine = _TOTALS[kind]
        refused = 0
        for lbl, record in series.items():
            old = totals.get(lbl)
            if old is not None:
                totals[lbl] = combine(old, record)
            elif self.count >= self.max_series or len(totals) >= self.max_series_per_metric:
                refused += 1
            else:
                totals[lbl] = record
                self.count += 1
        if not totals:
            del self.gone[name]
        if refused:
            self.refused += refused
            if not self._warned:
                self._warned = True
                logger.warning("--merge-instances: the totals of gone instances reached "
                               "max_series or max_series_per_metric (%s): their new label sets "
                               "are not kept (counted in gotools_agent_merge_refused_series_"
                               "total); this warning is not repeated", name)

    def resets(self, family: Family, stored: Series, series: Series) -> None:
        """Fold each stored record that the new one of its series is below: the
        sender restarted (same identity) and its totals began again from zero."""
        kind = family.kind
        if kind == GAUGE or kind == GAUGE_HISTOGRAM:
            return
        found: Optional[Series] = None
        get = stored.get
        if kind == COUNTER:  # the common case, inlined
            for lbl, new in series.items():
                old = get(lbl)
                if old is not None and new < old:
                    if found is None:
                        found = {}
                    found[lbl] = old
        else:
            for lbl, new in series.items():
                old = get(lbl)
                if old is not None and dropped(kind, old, new):
                    if found is None:
                        found = {}
                    found[lbl] = old
        if found:
            logger.info("%s: %d series went down (a sender restarted): their last values "
                        "are kept in the merged totals", family.name, len(found))
            self.fold(family, found)

    def copy(self, name: str) -> Optional[Series]:
        totals = self.gone.get(name)
        return None if totals is None else totals.copy()

    def own_families(self) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
        """The merge's own series for the agent's /metrics."""
        return [
            (Family("gotools_agent_merge_gone_series", GAUGE,
                    "Series holding the folded totals of gone instances (--merge-instances).",
                    ""), [(b"", self.count)]),
            (Family("gotools_agent_merge_gone_instances", COUNTER,
                    "Instances (or incarnations of one) whose totals were folded.", ""),
             [(b"", self.instances)]),
            (Family("gotools_agent_merge_refused_series", COUNTER,
                    "Label sets of gone instances not kept: max_series or "
                    "max_series_per_metric reached.", ""), [(b"", self.refused)]),
        ]

    # -- at a scrape, without the lock -------------------------------------

    def merged(self, family: Family, parts: List[Tuple[float, Series]],
               gone: Optional[Series]) -> Items:
        """One family's series: the live senders' (``(last_seen, series)``
        copies) merged by the kind's rule, plus the totals of gone instances."""
        if not gone and len(parts) == 1:
            return parts[0][1].items()
        parts.sort(key=lambda part: part[0])  # oldest first: "last" keeps the newest
        combine = combiner(family.kind, self.rule)
        out: Series = dict(gone) if gone else {}
        for _, series in parts:
            if not out:
                out.update(series)
                continue
            get = out.get
            for lbl, record in series.items():
                old = get(lbl)
                out[lbl] = record if old is None else combine(old, record)
        return out.items()
