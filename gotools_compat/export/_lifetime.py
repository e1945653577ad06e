"""Exporters that run on a thread of their own: their lifetime and forks.

An exporter lives until it is closed, not until its caller drops it (E3):
the set holds it strongly.  At interpreter exit, after the app's own threads
have ended, each one still open is closed (a final flush, E4).  Across
``os.fork()`` no export may be in flight
(the exporter's ``_send_lock`` is held), and in the child each exporter
restarts its own thread under the child's pid (``_after_fork_in_child``).
The rows themselves are reset in the child by the core: see
:mod:`gotools_compat.metric`.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Callable, Generic, Iterator, List, Protocol, Set, TypeVar

log = logging.getLogger(__name__)


class Threaded(Protocol):
    _send_lock: threading.Lock

    def _after_fork_in_child(self) -> None: ...


E = TypeVar("E", bound=Threaded)


class LiveSet(Generic[E]):
    """The live exporters of one kind; ``at_exit(e)`` closes one at exit."""

    def __init__(self, at_exit: Callable[[E], object]) -> None:
        self._at_exit = at_exit
        self._live: Set[E] = set()
        self._lock = threading.Lock()
        self._hooks = False
        self._forking: List[E] = []

    def add(self, exporter: E) -> None:
        with self._lock:
            self._live.add(exporter)
            if not self._hooks:
                self._hooks = True
                atexit.register(self._close_all)
                if hasattr(os, "register_at_fork"):
                    os.register_at_fork(before=self._before_fork,
                                        after_in_parent=self._after_in_parent,
                                        after_in_child=self._after_in_child)

    def discard(self, exporter: E) -> None:
        with self._lock:
            self._live.discard(exporter)

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[E]:
        with self._lock:
            return iter(list(self._live))

    def __contains__(self, exporter: object) -> bool:
        return exporter in self._live

    def _close_all(self) -> None:
        for exporter in self:
            try:
                self._at_exit(exporter)
            except Exception:
                log.exception("closing %r at exit failed", exporter)

    def _before_fork(self) -> None:
        self._lock.acquire()
        self._forking = list(self._live)
        for exporter in self._forking:
            exporter._send_lock.acquire()

    def _after_in_parent(self) -> None:
        for exporter in self._forking:
            exporter._send_lock.release()
        self._lock.release()

    def _after_in_child(self) -> None:
        self._lock = threading.Lock()
        for exporter in self._forking:
            exporter._after_fork_in_child()
