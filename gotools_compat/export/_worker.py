"""The thread of a periodic exporter (``export.ocagent``, ``export.otel``).

A :class:`Worker` calls its exporter's ``export(deadline)`` every
``interval`` seconds, and at once when asked (a flush, the last export at
close).  ``deadline`` is None for a periodic export, else the monotonic time
by which the one who asked stops waiting.  ``export`` returns None when it
delivered, the reason when it failed, or :data:`SKIPPED` when it tried
nothing (the exporter is closed, no time is left); whatever it raises is
logged and counts as a failure, and the thread goes on.

After a failure the next periodic export comes ``interval`` later, or, with
``max_backoff``, ``interval`` doubled per consecutive failure up to
``max_backoff``, less up to 20% so that processes that lost the same agent
do not retry in step.  An outage is logged once, at WARNING, and its end
once, at INFO, through the exporter's logger: both exporters send
cumulative totals, so nothing of the outage is lost.

Closing asks for one last export (:meth:`Worker.close`, then
:meth:`Worker.wait_last`, which waits as :mod:`gotools_compat.export._exit`
says), or for none (:meth:`Worker.stop`).  In a forked child the exporter
calls :meth:`Worker.restart`.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from typing import Callable, Optional, Union

from gotools_compat.export import _exit


class Skip(enum.Enum):
    SKIPPED = "skipped"


SKIPPED = Skip.SKIPPED

# None: delivered; a string: why not; SKIPPED: nothing was tried.
Outcome = Union[None, str, Skip]
Export = Callable[[Optional[float]], Outcome]


def backoff(interval: float, failures: int, most: float) -> float:
    """Seconds before the next export after ``failures`` in a row: doubling, at most ``most``."""
    return min(interval * 2.0 ** min(max(failures, 1) - 1, 30), most)


class Worker:
    """One thread calling ``export``: see the module doc.

    ``what`` names the export in log lines (``"ocagent export to host:port"``),
    ``log`` is the exporter's logger, ``name`` the thread's.
    """

    def __init__(self, export: Export, interval: float, what: str, log: logging.Logger,
                 name: str, max_backoff: Optional[float] = None) -> None:
        self._export = export
        self.interval = interval
        self.max_backoff = max_backoff
        self._what = what
        self._log = log
        self._name = name
        self._retrying = ("every %gs" % interval if max_backoff is None
                          else "with backoff up to %gs" % max_backoff)
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._wanted = 0  # exports asked for
        self._done = 0  # exports served
        self._deadline: Optional[float] = None  # of the export asked for last
        self._closing = False
        self._stopped = False  # closing with no last export
        self._outage = False
        self.last_ok = False  # of the last export
        self.why = ""  # of the last failed export
        self.failures = 0  # in a row
        self.delay = self.interval  # until the next periodic export
        self._next = time.monotonic() + self.interval
        self.thread = threading.Thread(target=self._run, name=self._name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def restart(self) -> None:
        """In a forked child: fresh state and a thread of its own (the parent's is gone)."""
        self._reset()
        self.thread.start()

    @property
    def closing(self) -> bool:
        return self._closing

    # Asking.

    def ask(self, deadline: float, last: bool = False) -> int:
        """Ask for an export now (the last one when ``last``); its ticket, 0 once closing."""
        with self._cond:
            if self._closing:
                return 0
            self._wanted += 1
            self._deadline = deadline
            self._closing = last
            self._cond.notify_all()
            return self._wanted

    def served(self, ticket: int, seconds: float) -> bool:
        """Wait at most ``seconds`` for export ``ticket``; True once it ended (or cannot)."""
        end = time.monotonic() + seconds
        with self._cond:
            while self._done < ticket and self.thread.is_alive():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def flush(self, deadline: float) -> bool:
        """Export now; True once that export delivered, False after ``deadline`` or a failure."""
        ticket = self.ask(deadline)
        if not ticket:
            return False
        self.served(ticket, _exit.left(deadline))
        return self._done >= ticket and self.last_ok

    # Closing.

    def close(self, deadline: float) -> int:
        """Ask for the last export; its ticket for :meth:`wait_last`, 0 once closing."""
        return self.ask(deadline, last=True)

    def wait_last(self, ticket: int, where: Optional[_exit.Address], deadline: float,
                  timeout: float) -> Optional[str]:
        """Wait for the last export as ``export._exit`` says; None, or why it did not deliver.

        ``where`` is the address it goes to, probed once the export is slow;
        ``timeout`` is the caller's, for the reason.  Not waited for (None)
        on the worker's own thread or once the thread is gone.
        """
        if not self.thread.is_alive() or self.thread is threading.current_thread():
            return None
        why = _exit.wait(lambda seconds: self.served(ticket, seconds), where, deadline)
        if why is None and self._done < ticket:
            why = "no answer within %gs" % timeout
        elif why is None and not self.last_ok:
            why = self.why or "not sent"
        return why

    def stop(self) -> bool:
        """Close with no last export: the thread ends after the one in flight.

        False once closing.
        """
        with self._cond:
            if self._closing:
                return False
            self._closing = self._stopped = True
            self._cond.notify_all()
            return True

    def join(self, deadline: float) -> None:
        if self.thread is not threading.current_thread():
            self.thread.join(_exit.left(deadline))

    # The thread.

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while (not self._closing and self._done == self._wanted
                       and time.monotonic() < self._next):
                    cond.wait(self._next - time.monotonic())
                if self._stopped:
                    self._done, self.last_ok = self._wanted, False
                    cond.notify_all()
                    return
                target, closing = self._wanted, self._closing
                deadline = self._deadline if target > self._done else None
            outcome = self._once(deadline)
            with cond:
                self.delay = self._delay_after(outcome)
                self._next = time.monotonic() + self.delay
                self._done = target
                self.last_ok = outcome is None
                cond.notify_all()
            if closing:
                return

    def _once(self, deadline: Optional[float]) -> Outcome:
        try:
            outcome = self._export(deadline)
        except Exception:  # a bug, not the network: say so, keep going
            self._log.exception("%s failed", self._what)
            outcome = "internal error"
        if outcome is None:
            if self._outage:
                self._outage = False
                self._log.info("%s works again after %d failed attempts", self._what,
                               self.failures)
            self.failures = 0
        elif outcome is not SKIPPED:
            self.why = outcome
            self.failures += 1
            if self._closing:  # the close says what was lost
                self._log.debug("the last %s failed (%s)", self._what, outcome)
            elif not self._outage:
                self._outage = True
                self._log.warning("%s failed (%s); retrying %s, totals are kept",
                                  self._what, outcome, self._retrying)
            else:
                self._log.debug("%s failed again (%s)", self._what, outcome)
        return outcome

    def _delay_after(self, outcome: Outcome) -> float:
        if outcome is None or outcome is SKIPPED or self.max_backoff is None:
            return self.interval
        return backoff(self.interval, self.failures, self.max_backoff) * random.uniform(0.8, 1.0)
