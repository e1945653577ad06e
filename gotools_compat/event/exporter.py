"""The process-wide exporter (Go's ``event.SetExporter``, ``event.Exporter``).

Every event (:mod:`gotools_compat.event.spans`) goes to :func:`process_event`,
which hands it to the exporter set here; ``gotools_compat.export`` re-exports
these functions (Go's ``export.SetExporter`` delegated to this slot too) and
holds the exporters themselves.  Until one is set, error events are logged.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Dict, Optional, Protocol, Tuple, runtime_checkable

if TYPE_CHECKING:
    from gotools_compat.event.events import Event
    from gotools_compat.event.keys import Context

# The logger users configure for exporters and their failures: export's, where
# set_exporter is documented.
log = logging.getLogger("gotools_compat.export")


@runtime_checkable
class Exporter(Protocol):
    """What :func:`set_exporter` takes (Go's ``event.Exporter``); see the module doc."""

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]: ...

    def metric(self, ctx: Context, data: Any) -> None: ...


class _LogErrors:
    """The default exporter: error events go to the logging module (Go prints them)."""

    def process_event(self, ctx: Context, ev: Event) -> Tuple[Context, Event]:
        if ev.is_log() and ev.error is not None:
            log.error("%s", ev)
        return ctx, ev

    def metric(self, ctx: Context, data: Any) -> None:
        pass


_DEFAULT = _LogErrors()
_exporter: Optional[Exporter] = _DEFAULT
# Exporters whose failure was logged.  Held, not just their ids: an id is
# reused once its object is gone, and a new exporter must get its log line.
# At most MAX_FAILED, the oldest let go first (it would be logged once more).
MAX_FAILED = 1024
_failed: Dict[int, object] = {}
_failed_lock = threading.Lock()


def set_exporter(e: Optional[Exporter]) -> None:
    """Set the process-wide exporter (Go's ``export.SetExporter``); None removes it."""
    global _exporter
    if e is not None and not isinstance(e, Exporter):
        raise TypeError("an exporter needs process_event(ctx, ev) and metric(ctx, data); "
                        "got %r" % (e,))
    _exporter = e


def get_exporter() -> Optional[Exporter]:
    """The process-wide exporter, or None."""
    return _exporter


def report(e: Any) -> None:
    """Log that exporter ``e`` failed (once per exporter; call in an ``except``)."""
    with _failed_lock:
        if id(e) in _failed:
            return
        if len(_failed) >= MAX_FAILED:
            del _failed[next(iter(_failed))]
        _failed[id(e)] = e
    log.exception("exporter %r failed; its later failures are not logged", e)


def process_event(ctx: Context, ev: Event) -> Context:
    """Hand ``ev`` to the process-wide exporter; never raises because of it."""
    e = _exporter
    if e is None:
        return ctx
    try:
        return e.process_event(ctx, ev)[0]
    except Exception:
        report(e)
        return ctx


def metric(ctx: Context, data: Any) -> None:
    """Hand a metric snapshot to the process-wide exporter; never raises because of it."""
    e = _exporter
    if e is None:
        return
    try:
        e.metric(ctx, data)
    except Exception:
        report(e)
