"""The store's bounds: what they refused, one warning per cause, the agent's own series.

A bound refuses only what is new (a label set not stored yet, a sender not
known yet); series already stored keep taking new values.  Each refusal is
counted by cause, in plain ints the store changes under its own lock.  A
cause logs one WARNING when it starts being hit, and again only when it is
hit after ``QUIET`` seconds without a refusal: a store that stays full logs
once, not once per export.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Tuple

from gotools_compat._server.limits import check_ints

from ._kinds import COUNTER, GAUGE, Family

logger = logging.getLogger(__name__)

MAX_SERIES = "max_series"
MAX_SERIES_PER_SENDER = "max_series_per_sender"
MAX_SERIES_PER_METRIC = "max_series_per_metric"
MAX_SENDERS = "max_senders"
CAUSES = (MAX_SERIES, MAX_SERIES_PER_SENDER, MAX_SERIES_PER_METRIC, MAX_SENDERS)
QUIET = 3600.0  # seconds without a refusal before a cause warns again

REFUSED = "gotools_agent_refused_series"
_HELP = {
    MAX_SERIES: "New series refused: the agent holds max_series series.",
    MAX_SERIES_PER_SENDER: "New series refused: their sender has max_series_per_sender series.",
    MAX_SERIES_PER_METRIC: "New series refused: their metric has max_series_per_metric series.",
    MAX_SENDERS: "Series refused because their sender is new and the agent has "
                 "max_senders senders.",
}
_FAMILY_HELP = "New series (label sets not stored yet) refused by a bound, by cause."
_WARNING = {
    MAX_SERIES: "the agent holds max_series=%d series",
    MAX_SERIES_PER_SENDER: "a sender has max_series_per_sender=%d series",
    MAX_SERIES_PER_METRIC: "a metric has max_series_per_metric=%d series",
    MAX_SENDERS: "the agent has max_senders=%d senders",
}


class Limits:
    """The four bounds of a store and the refusals, by cause."""

    __slots__ = ("max_series", "max_series_per_sender", "max_series_per_metric",
                 "max_senders", "refused", "_last_hit")

    def __init__(self, max_series: int, max_series_per_sender: int,
                 max_series_per_metric: int, max_senders: int) -> None:
        check_ints(0, ((MAX_SERIES, max_series), (MAX_SERIES_PER_SENDER, max_series_per_sender),
                       (MAX_SERIES_PER_METRIC, max_series_per_metric),
                       (MAX_SENDERS, max_senders)))
        self.max_series = max_series
        self.max_series_per_sender = max_series_per_sender
        self.max_series_per_metric = max_series_per_metric
        self.max_senders = max_senders
        self.refused: Dict[str, int] = dict.fromkeys(CAUSES, 0)
        self._last_hit: Dict[str, float] = {}

    def refuse(self, cause: str, count: int) -> Optional[str]:
        """Count ``count`` refused series; the warning to log (after the store's
        lock is released: see :func:`warn`) if this cause should warn now."""
        if count <= 0:
            return None
        self.refused[cause] += count
        now = time.monotonic()
        last = self._last_hit.get(cause)
        self._last_hit[cause] = now
        if last is not None and now - last < QUIET:
            return None
        return cause

    def counters(self) -> List[Tuple[str, str, int]]:
        """``(cause, help, refused series)`` for each cause, in a fixed order."""
        return [(cause, _HELP[cause], self.refused[cause]) for cause in CAUSES]

    def bound(self, cause: str) -> int:
        value: int = getattr(self, cause)
        return value


def bounded_update(limits: Limits, total: int, sender: Any, members: Any, name: str,
                   stored: Optional[Dict[bytes, Any]], series: Dict[bytes, Any],
                   refused: Dict[str, int]) -> Tuple[int, int]:
    """The store's update of one sender's family near a bound (``total``: series
    stored in all): update the stored series and add new ones while the bounds
    allow; count the others in ``refused``.  Returns (series added, series stored)."""
    target: Dict[bytes, Any] = {} if stored is None else stored
    total_room = limits.max_series - total
    sender_room = limits.max_series_per_sender - sender.count
    family_room = limits.max_series_per_metric - members.count
    added = updated = 0
    for lbl, record in series.items():
        if lbl in target:
            target[lbl] = record
            updated += 1
        elif added >= total_room:
            refused[MAX_SERIES] += 1
        elif added >= sender_room:
            refused[MAX_SERIES_PER_SENDER] += 1
        elif added >= family_room:
            refused[MAX_SERIES_PER_METRIC] += 1
        else:
            target[lbl] = record
            added += 1
    if stored is None and added:
        sender.series[name] = target
        members.senders[sender.key] = sender
    return added, added + updated


def warn(limits: Limits, causes: List[str]) -> None:
    """Log the warnings :meth:`Limits.refuse` asked for (one line each, no traceback)."""
    for cause in causes:
        logger.warning("%s: new series are refused (counted in %s_total{cause=\"%s\"}); "
                       "series already stored keep updating. This warning repeats only "
                       "after %.0f s without a refusal.",
                       _WARNING[cause] % limits.bound(cause), REFUSED, cause, QUIET)


def families(limits: Limits, series: int, senders: int,
             rejected: int) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
    """The store's own series in the renderer's form: ``[(Family, [(labels, value)])]``."""
    return [
        (Family(REFUSED, COUNTER, _FAMILY_HELP, ""),
         [(b'cause="%s"' % cause.encode("ascii"), limits.refused[cause]) for cause in CAUSES]),
        (Family("gotools_agent_rejected_series", COUNTER,
                "Series dropped as malformed (bad bucket bounds or counts, negative counts, "
                "duplicate quantiles, a value of the wrong kind).", ""), [(b"", rejected)]),
        (Family("gotools_agent_series", GAUGE, "Series stored.", ""), [(b"", series)]),
        (Family("gotools_agent_senders", GAUGE, "Senders whose series are stored.", ""),
         [(b"", senders)]),
    ]
