"""Where metrics are registered: the current registry, the others open, and forks.

A registry is one set of definitions: our metrics by name, the measures by
name (:mod:`gotools_compat.stats`) and opencensus's views (through
:mod:`gotools_compat._oc.views`).  The process has one;
:func:`gotools_compat.testing.fresh_registry` opens others on top of it and
closes them.  The current registry's metrics are :func:`current`'s, read and
changed with :data:`lock` held.

Forks.  A child of ``os.fork()`` inherits a copy of every row; reported as
is, the parent's totals would be counted again under the child's name.  So a
child starts every row of every open registry from zero (gauges too), with
series starting at the fork.  Rows are reset in place, not removed: contexts
cache them.  Every lock is held across the fork, so no row is copied half
updated and no lock is copied held by a thread the child does not have.
(Exporters register their own hooks later; theirs run first before a fork
and after ours in the child.)
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Dict, List

from gotools_compat import stats
from gotools_compat._oc import views

if TYPE_CHECKING:
    from gotools_compat.metric.snapshot import Registered
    from gotools_compat.stats import _Measure

lock = threading.Lock()


class Registry:
    """One set of definitions.

    The current one's measures and views live in ``stats`` and in
    opencensus's view manager; ``measures`` and ``views`` hold them only while
    another registry is current.
    """

    __slots__ = ("metrics", "measures", "views")

    def __init__(self) -> None:
        self.metrics: Dict[str, Registered] = {}
        self.measures: Dict[str, _Measure] = {}
        self.views: views.Definitions = ()


# The registries open, the process's first; the last is the current one.  All
# of them stay alive (and are reset in a forked child) until closed: metrics
# of a registry that is not current are still recorded by their measures.
_open: List[Registry] = [Registry()]


def current() -> Dict[str, Registered]:
    """The current registry's metrics by name (``lock`` held by the caller)."""
    return _open[-1].metrics


def subscriber(recorder: Any) -> Callable[[Any, Any], None]:
    """What a metric's measure calls on each record (the same for a metric's life)."""
    fn: Callable[[Any, Any], None] = recorder.record if recorder.keys else recorder.record_nokey
    return fn


def open_fresh() -> Registry:
    """Make a new, empty registry current; the token to close it with."""
    fresh = Registry()
    with lock:
        # Lock order: ours, then stats' and the bridge's (which never take ours).
        outer = _open[-1]
        outer.measures = stats._swap_registry({})
        outer.views = views.swap_definitions(views.empty_definitions())
        _open.append(fresh)
    return fresh


def close(token: Registry) -> None:
    """Forget the registry ``token`` opened; the last one still open is current.

    Its metrics stop being fed by their measures (a measure made outside the
    registry outlives it).
    """
    with lock:
        if token not in _open[1:]:
            raise RuntimeError("this registry is already closed")
        for entry in token.metrics.values():
            entry.measure._remove_subscriber(subscriber(entry.recorder))
        if token is not _open[-1]:  # closed out of order: not the current one
            _open.remove(token)
            return
        _open.pop()
        now = _open[-1]
        stats._swap_registry(now.measures)
        views.swap_definitions(now.views)
        now.measures, now.views = {}, ()


def _every_metric() -> List[Registered]:
    # Every open registry's, not only the current one's: all are recorded.
    return [entry for registry in _open for entry in registry.metrics.values()]


def _before_fork() -> None:
    lock.acquire()
    for entry in _every_metric():
        entry.recorder.lock.acquire()


def _release_after_fork() -> None:
    for entry in reversed(_every_metric()):
        entry.recorder.lock.release()
    lock.release()


def _after_fork_in_child() -> None:
    start = views.iso_now()
    for entry in _every_metric():
        entry.recorder.reset(start)
    _release_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_release_after_fork,
                        after_in_child=_after_fork_in_child)
