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

A key has one answer in the making at a time, and its next group goes to a
worker no sooner than ``1 / budget`` times what its answers cost (the
handler's CPU time, and the loop's to read and answer the group; smoothed
over the last few) after the last one began: scrapers back to back then
take at most about ``budget`` of the application's time, however many ask
and however fast, while a lone scrape never waits.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable, Dict, Hashable, List, Optional, Tuple

from .messages import Request, Response

Member = Tuple[Any, Request]  # (connection, request)
Job = Tuple[List[Member], Optional[Hashable]]

#: Keys remembered at most before those whose wait is over are let go (keys
#: come from request headers).
_KEYS = 64


class Jobs:
    """The queue between the loop (:meth:`put`) and the workers (:meth:`run`)."""

    def __init__(self, call: Callable[[Request], Response],
                 deliver: Callable[..., Any], later: Optional[Callable[..., Any]] = None,
                 budget: float = 1.0) -> None:
        self._call = call
        self._deliver = deliver  # runs a function on the loop thread
        self._later = later  # later(delay, function, *args), on the loop thread
        self._budget = budget
        self._queue: "queue.SimpleQueue[Optional[Job]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._open: Dict[Hashable, List[Member]] = {}  # groups no worker has taken yet
        # Only the loop thread reads and writes these two.
        self._making: Dict[Hashable, None] = {}  # keys with a group queued or in a worker
        # key: (monotonic time its next group may go, its answers' cost smoothed)
        self._paced: Dict[Hashable, Tuple[float, float]] = {}

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
        if key not in self._making:  # else it goes once the answer in the making is out
            self._send(key, group)

    def _send(self, key: Hashable, group: List[Member]) -> None:
        """On the loop: ``group`` to a worker, once the last answer's wait is over."""
        self._making[key] = None
        wait = self._paced.get(key, (0.0, 0.0))[0] - time.monotonic()
        if wait > 0 and self._later is not None:
            self._later(wait, self._queue.put, (group, key))
        else:
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
            started = time.monotonic()
            cpu = time.thread_time()
            response = self._call(group[0][1])
            cost = time.thread_time() - cpu
            try:
                self._deliver(self._respond, group, key, response, started, cost)
            except RuntimeError:  # the loop is closed: stopping
                return

    def _respond(self, group: List[Member], key: Optional[Hashable], response: Response,
                 started: float, cost: float) -> None:
        """On the loop: the answer to each member; then the key's next group, if any."""
        cpu = time.thread_time()
        try:
            for conn, request in group:
                conn.respond(request, response)
        finally:
            if key is not None:
                # Reading the group's requests cost the loop about what answering did.
                self._answered(key, started, cost + 2 * (time.thread_time() - cpu))

    def _answered(self, key: Hashable, started: float, cost: float) -> None:
        now = time.monotonic()
        paced = self._paced
        if len(paced) >= _KEYS:
            for old in [k for k, (at, _) in paced.items() if at <= now]:
                del paced[old]
        # Smoothed, so that one slow answer (a collection, a page fault) does not
        # hold the next one back by ten times its own cost.
        last = paced.get(key)
        if last is not None:
            cost = 0.75 * last[1] + 0.25 * cost
        paced[key] = (started + cost / self._budget, cost)
        del self._making[key]
        with self._lock:
            waiting = self._open.get(key)
        if waiting is not None:
            self._send(key, waiting)
