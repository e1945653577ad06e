"""What a listening port may be made to hold, and the count of each time a bound was hit."""

from __future__ import annotations

import logging
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

logger = logging.getLogger(__name__)

# A cause that keeps being hit is warned about again at most this often.
_REPEAT_WARNING = 600.0


def check_ints(least: int, bounds: Iterable[Tuple[str, object]]) -> None:
    """ValueError for the first ``(name, value)`` whose value is not an int >= ``least``."""
    for name, value in bounds:
        if type(value) is not int or value < least:
            raise ValueError("%s must be an int >= %d, not %r" % (name, least, value))


def fd_limit() -> int:
    """The soft limit of open files of this process."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one, as Go programs do; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an infinite hard limit the kernel caps lower
            pass
    return fd_limit()


@dataclass(frozen=True)
class Limits:
    """Bounds of one server; times in seconds, sizes in bytes, 0 where "derived" is said.

    - ``max_connections``: open connections in all; derived: a quarter of the
      fd limit at start, at most 256 (``serve()``), or a third of it less 128
      for the agent (a gRPC connection holds three descriptors).  At the bound
      the connection that has waited longest without a complete request is
      closed to make room; when every connection is busy the new one is closed.
    - ``max_connections_per_peer``: the same per client address; derived: as
      ``max_connections``.
    - ``max_grpc_connections_per_peer``: gRPC connections of one client
      address (each holds up to the agent's streams per connection, so that
      one client cannot take every stream); beyond it, its quietest one is
      closed.  The default, 16, leaves room for a host's web workers that
      each export on their own connection, all from one address.
    - ``header_timeout``: from the connection (or the end of the previous
      response) to the end of the request head; ``body_timeout``: from the
      head to the end of the body; ``idle_timeout``: a keep-alive connection
      between requests; ``write_timeout``: for a response to be read.
    - ``max_body_bytes``: a request body under any framing (413 above it);
      ``max_header_bytes``: request line and headers (431 above it).
    - ``workers``: threads that run the handlers.
    - ``share_budget``: the share of the application's time that answers
      requests wait together for (``serve()``'s scrapes) may take when they
      come back to back: when its answers cost ``c`` seconds of CPU
      (smoothed over the last few), the next one for the same key starts no
      sooner than ``c / share_budget`` after the last one began, and requests
      that come meanwhile wait and share it (1: one answer at a time; a lone
      scrape never waits).
    """

    max_connections: int = 0
    max_connections_per_peer: int = 0
    max_grpc_connections_per_peer: int = 16
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 120.0
    write_timeout: float = 60.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    workers: int = 4
    share_budget: float = 0.1

    def __post_init__(self) -> None:
        for name in ("max_connections", "max_connections_per_peer", "max_body_bytes",
                     "max_header_bytes", "workers", "max_grpc_connections_per_peer"):
            if getattr(self, name) < 0:
                raise ValueError("%s must not be negative" % name)
        for name in ("header_timeout", "body_timeout", "idle_timeout", "write_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError("%s must be a positive number of seconds" % name)
        if not 0 < self.share_budget <= 1:
            raise ValueError("share_budget must be above 0 and at most 1")
        if self.workers < 1 or self.max_grpc_connections_per_peer < 1:
            raise ValueError("workers and max_grpc_connections_per_peer must be at least 1")

    def connections(self, fds_per_connection: int) -> Tuple[int, int]:
        """``(max_connections, max_connections_per_peer)`` with the derived ones filled in."""
        total = self.max_connections
        if not total:
            if fds_per_connection > 1:
                total = max(16, (fd_limit() - 128) // fds_per_connection)
            else:
                total = max(4, min(256, fd_limit() // 4))
        return total, self.max_connections_per_peer or total


@dataclass
class Counters:
    """Hits per cause, each cause warned about once (again after ten minutes, with the count)."""

    _hits: Dict[str, int] = field(default_factory=dict)
    _warned: Dict[str, Tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hit(self, cause: str, message: str, *args: object, count: int = 1) -> None:
        """Count ``count`` hits of ``cause``; WARNING ``message % args`` the first time."""
        now = time.monotonic()
        with self._lock:
            count += self._hits.get(cause, 0)
            self._hits[cause] = count
            last = self._warned.get(cause)
            warn = last is None or now - last[0] >= _REPEAT_WARNING
            if warn:
                self._warned[cause] = (now, count)
        if warn:
            since = "" if last is None else " (%d times in all, %d since the last warning)" % (
                count, count - last[1])
            logger.warning(message + "; counted as cause %r%s", *args, cause, since)
        else:
            logger.debug(message, *args)

    def get(self, cause: str) -> int:
        with self._lock:
            return self._hits.get(cause, 0)

    def items(self) -> List[Tuple[str, int]]:
        with self._lock:
            return sorted(self._hits.items())
