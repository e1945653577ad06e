"""What the agent's OTLP forwarding of metrics and of spans shares: the queue,
the thread, the backoff and the counters (``gotools-agent --otlp URL``).

Receivers hand every read request to :meth:`Sender.submit`, which only
appends it to a bounded queue: ingest never waits for the network.  One
thread drains the queue into what is pending (the subclass's
:meth:`Sender._merge`) and sends it (:meth:`Sender._send`, through
:meth:`Sender._export`).  While the endpoint is down the thread retries with
exponential backoff, from 0.5 s up to ``max_backoff``; what is pending stays
(the subclass bounds it).  A request the thread could not keep up with (the
queue holds ``max_queue``) and what is still pending when the agent stops are
dropped, and counted: nothing is lost silently.

The counters, on the agent's own ``/metrics`` (``<unit>`` is ``series`` for
metrics, ``spans`` for traces; ``<exports>`` is ``failed_exports`` for
metrics, ``failed_trace_exports`` for traces):

- ``gotools_agent_otlp_sent_<unit>_total``: sent, and accepted by the endpoint;
- ``gotools_agent_otlp_<exports>_total``: export calls that failed (retried);
- ``gotools_agent_otlp_dropped_<unit>_total``: queue full, pending bound, or stopped;
- ``gotools_agent_otlp_rejected_<unit>_total``: could not be converted;
- ``gotools_agent_otlp_pending_<unit>``: a gauge, waiting to be sent.
"""

from __future__ import annotations

import collections
import importlib
import logging
import threading
import time
import urllib.parse
from typing import Any, Callable, Deque, List, Optional, Tuple

from ._kinds import COUNTER, GAUGE, Family

logger = logging.getLogger(__name__)

MISSING_EXTRA = ("--otlp needs the OpenTelemetry packages, which are not installed: "
                 "pip install 'gotools_compat[otel]' (%s)")


def load_otel(*names: str) -> List[Any]:
    """Each of ``names`` (``"package.module"`` or ``"package.module:Name.attribute"``),
    imported quietly; ImportError with the extra to install."""
    try:
        from gotools_compat._otel import data

        with data.quiet_imports():
            loaded = []
            for name in names:
                module, _, attribute = name.partition(":")
                found = importlib.import_module(module)
                for part in attribute.split(".") if attribute else ():
                    found = getattr(found, part)
                loaded.append(found)
    except ImportError as exc:
        raise ImportError(MISSING_EXTRA % exc) from None
    return loaded


def http_url(url: str, option: str, example: str) -> str:
    """``url`` stripped if it is an http(s) URL with a host; else a ValueError that
    names ``option`` and ``url`` as given."""
    stripped = url.strip()
    parts = urllib.parse.urlsplit(stripped)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("%s %r: expected a URL such as %s" % (option, url, example))
    return stripped


def signal_url(endpoint: str, signal: str) -> str:
    """OTLP/HTTP's rule: a base URL gets ``/v1/<signal>``; a full one is kept.

    A full URL of the other signal (``.../v1/metrics`` for traces) has its
    last part replaced, so one ``--otlp`` serves both.
    """
    url = http_url(endpoint, "--otlp", "http://127.0.0.1:4318")
    base = url.rstrip("/")
    if base.endswith("/v1/" + signal):
        return url
    for other in ("metrics", "traces"):
        if base.endswith("/v1/" + other):
            base = base[:-len("/v1/" + other)]
    return base + "/v1/" + signal


class Sender:
    """One OTLP signal's forwarding thread; subclasses say what is pending and how it goes.

    ``unit`` names what is counted (``series``, ``spans``), ``exports`` the
    failed-exports counter.  ``exporter`` is the SDK exporter to send with
    (None: ``exporter_class(endpoint=url, timeout=timeout)``); ``success`` is
    its success result.
    """

    unit = "items"
    exports = "failed_exports"
    thread_name = "gotools-agent-otlp"
    requires: Tuple[str, ...] = ()  # for load_otel: the converters, exporter, its SUCCESS

    @classmethod
    def load_otel(cls) -> List[Any]:
        """What :attr:`requires` names, imported; ImportError with the extra to install."""
        return load_otel(*cls.requires)

    def __init__(self, url: str, exporter_class: Any, success: Any, *, exporter: Any,
                 timeout: float, max_queue: int, max_backoff: float) -> None:
        self.url = url
        self._exporter = exporter if exporter is not None else exporter_class(
            endpoint=url, timeout=timeout)
        self._success = success
        self._timeout = timeout
        self._max_backoff = max_backoff
        self._queue: Deque[Tuple[Any, int]] = collections.deque()
        self._max_queue = max_queue
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._pending_count = 0  # only the forwarding thread changes it
        # Counters, read by the agent's /metrics.
        self.sent = 0
        self.failed_exports = 0
        self.dropped = 0
        self.rejected = 0

    # -- what a subclass provides (called on the forwarding thread) ----------

    def _merge(self, item: Any) -> None:
        raise NotImplementedError

    def _send(self) -> bool:
        """Send what is pending; False if it must be retried later."""
        raise NotImplementedError

    # -- the ingest side -----------------------------------------------------

    def _enqueue(self, item: Any, count: int) -> None:
        """Queue one read request holding ``count`` units; never blocks on the network."""
        with self._cond:
            if self._stopping:  # nothing more is sent: counted as dropped
                self.dropped += count
                return
            if len(self._queue) >= self._max_queue:
                _, lost = self._queue.popleft()
                self.dropped += lost
                logger.warning("OTLP forwarding of %s is behind: a queued request was dropped",
                               self.unit)
            self._queue.append((item, count))
            self._cond.notify()

    def _drop(self, count: int) -> None:
        with self._cond:  # _enqueue() counts under this lock too
            self.dropped += count

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def begin_stop(self) -> None:
        """Start the last send and return: to stop several senders at once."""
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def stop(self, grace: float = 2.0) -> None:
        """A last send of what is pending (within ``grace``), then stop."""
        self.begin_stop()
        if self._thread is not None:
            self._thread.join(grace + self._timeout)
            self._thread = None
        with self._cond:  # queued, never taken: the sender was never started
            left = sum(count for _, count in self._queue)
            self._queue.clear()
            self.dropped += left
        if left:
            logger.warning("OTLP: %d %s queued were not sent before the stop", left, self.unit)
        try:
            self._exporter.shutdown()
        except Exception:  # noqa: BLE001 - shutting down must not raise
            logger.debug("OTLP exporter shutdown failed", exc_info=True)

    def _run(self) -> None:
        backoff = 0.0
        retry_at = 0.0
        while True:
            with self._cond:
                # Requests are merged as they come, also while a retry waits.
                while not self._stopping and not self._queue:
                    if self._pending_count and time.monotonic() >= retry_at:
                        break
                    self._cond.wait(max(0.0, retry_at - time.monotonic())
                                    if self._pending_count else None)
                stopping = self._stopping
                batch = [item for item, _ in self._queue]
                self._queue.clear()
            for item in batch:
                self._merge(item)
            if self._pending_count and (stopping or time.monotonic() >= retry_at):
                if self._send():
                    backoff = 0.0
                else:
                    backoff = min(self._max_backoff, max(0.5, backoff * 2))
                    retry_at = time.monotonic() + backoff
                    if stopping:
                        logger.warning("OTLP: %d %s could not be sent before the stop",
                                       self._pending_count, self.unit)
                        self._drop(self._pending_count)
            if stopping:
                return

    def _export(self, count: int, export: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
        """``export(*args, **kwargs)`` of ``count`` units; counted either way."""
        try:
            result = export(*args, **kwargs)
        except Exception:  # noqa: BLE001 - an exporter must not take the thread down
            logger.warning("OTLP export to %s failed", self.url, exc_info=True)
            result = None
        if result != self._success:
            self.failed_exports += 1
            logger.warning("OTLP export of %d %s to %s failed; retrying later",
                           count, self.unit, self.url)
            return False
        self.sent += count
        return True

    # -- the agent's own metrics -------------------------------------------------

    def families(self) -> List[Tuple[Family, List[Tuple[bytes, Any]]]]:
        """Counters and a gauge for the agent's /metrics, in the renderer's form."""
        unit, what = self.unit, self.unit.capitalize()
        signal = "" if self.exports == "failed_exports" else "trace "
        rows = (
            ("gotools_agent_otlp_sent_" + unit, COUNTER, self.sent,
             "%s sent to the OTLP endpoint." % what),
            ("gotools_agent_otlp_" + self.exports, COUNTER, self.failed_exports,
             "OTLP %sexports that failed (they are retried)." % signal),
            ("gotools_agent_otlp_dropped_" + unit, COUNTER, self.dropped,
             "%s that could not be sent to the OTLP endpoint: queue full or stopped." % what),
            ("gotools_agent_otlp_rejected_" + unit, COUNTER, self.rejected,
             "%s not forwarded because they could not be converted." % what),
            ("gotools_agent_otlp_pending_" + unit, GAUGE, self._pending_count,
             "%s waiting to be sent to the OTLP endpoint." % what),
        )
        return [(Family(name, kind, help_text, ""), [(b"", value)])
                for name, kind, value, help_text in rows]
