"""Requests waiting for a handler thread; those that may share one answer get one.

A handler may say, per request, that requests with the same key get the
same answer (:meth:`Handler.share_key`: a scrape of the same exposition,
with the same ``Accept``).  Such a request joins the group of its key that
waits for a worker, if there is one: the worker that takes the group calls
the handler once, and the answer goes back to the loop in one hand-off for
the whole group.  Every member arrived before the handler started, so no
one gets an answer older than its request.  A group closes when a worker
takes it; a request that comes later starts the next group.

Under the GIL each hand-off between threads can wait a switch interval
(5 ms) for a thread that computes; fifty scrapers answered one by one cost
a hundred hand-offs a round, answered as a group two.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from .messages import Request, Response

Member = Tuple[Any, Request]  # (connection, request)
Job = Tuple[List[Member], Optional[Hashable]]


class Jobs:
    """The queue between the loop (:meth:`put`) and the workers (:meth:`run`)."""

    def __init__(self, call: Callable[[Request], Response],
                 deliver: Callable[..., Any]) -> None:
        self._call = call
        self._deliver = deliver  # runs a function on the loop thread
        self._queue: "queue.SimpleQueue[Optional[Job]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._open: Dict[Hashable, List[Member]] = {}  # groups no worker has taken yet

    def put(self, conn: Any, request: Request, key: Optional[Hashable]) -> None:
        """On the loop: ``request`` of ``conn`` to a worker, in its key's group if any."""
        member = (conn, request)
        if key is None:
            self._queue.put(([member], None))
            return
        with self._lock:
            group = self._open.get(key)
            if group is not None:
                group.append(member)
                return
            group = self._open[key] = [member]
        self._queue.put((group, key))

    def stop(self, workers: int) -> None:
        for _ in range(workers):
            self._queue.put(None)

    def run(self) -> None:
        """A worker: take groups until stopped; RuntimeError from ``deliver`` also stops."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            group, key = job
            if key is not None:
                with self._lock:  # closed: later requests start a new group
                    if self._open.get(key) is group:
                        del self._open[key]
            response = self._call(group[0][1])
            try:
                self._deliver(_respond, group, response)
            except RuntimeError:  # the loop is closed: stopping
                return


def _respond(group: List[Member], response: Response) -> None:
    for conn, request in group:
        conn.respond(request, response)
