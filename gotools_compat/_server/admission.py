"""Who holds a connection: the registry of open ones, and admission at the bounds.

The server's base class.  At a connection bound (in all, or per peer) a
newcomer whose whole request is there already takes the place of the
connection waiting longest; any other is on probation: a few may wait beside
the bound and take a place once they have sent a whole request head, and
when probation is full a newcomer is looked at again a few times in the next
50 ms before it is refused.  So a flood of slow or silent clients cannot
push out each other's newcomers, nor a scraper's.  gRPC connections of one
peer are bounded too; the quietest makes room.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple, cast

from .http1 import PREFACE, PROBATION, WAITING, Connection
from .limits import Counters, Limits

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger(__name__)

#: Seconds a connection on probation is safe from being closed for a newer
#: one, once read (its time to send a whole head is http1.PROBATION).
PROBATION_FIRST_CHANCE = 0.05
_PEEK = 4096
_PENDING_SECONDS = 0.05


def _decrement(counts: Dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _request_waiting(sock: socket.socket) -> bool:
    """Whether a whole request head (or the HTTP/2 preface) waits unread on ``sock``."""
    try:
        head = sock.recv(_PEEK, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:
        return False
    return b"\r\n\r\n" in head or head.startswith(PREFACE)


class Listener:
    """A listening socket, and grpcio's unix socket for its gRPC connections (or None)."""

    __slots__ = ("sock", "grpc_target")

    def __init__(self, sock: socket.socket, grpc_target: Optional[str]) -> None:
        self.sock = sock
        self.grpc_target = grpc_target


class Admission:
    """The registry of a server's connections and the rules of who may have one."""

    loop: asyncio.AbstractEventLoop
    counters: Counters
    limits: Limits
    max_connections: int
    max_per_peer: int

    def _init_admission(self) -> None:
        self._connections: Dict[Connection, None] = {}
        # Connections that wait for the client, oldest phase first (eviction order).
        self._waiting: "collections.OrderedDict[Connection, None]" = collections.OrderedDict()
        self._per_peer: Dict[str, int] = {}  # connections not on probation
        self._probation: Dict[Connection, None] = {}
        self._grpc_per_peer: Dict[str, int] = {}
        # Newcomers looked at again shortly, when probation is full (see _admit).
        self._pending: List[Tuple[socket.socket, str, Listener, float]] = []
        # Beyond max_connections: at most an eighth more on probation and half
        # as many again looked at shortly (see _admit).
        self._max_probation = max(4, self.max_connections // 8)
        self._max_pending = max(8, self._max_probation)
        self._paused_at: Optional[float] = None  # accepting paused at the fd limit since
        self._retry: Optional[asyncio.TimerHandle] = None

    def _resume_accepting(self) -> None:
        raise NotImplementedError  # the server's

    def _admit(self, sock: socket.socket, peer: str, listener: Listener,
               pending_since: Optional[float] = None) -> None:
        probation = self._full(peer)  # the bound reached, or None
        if probation:
            # At a bound, a newcomer whose whole request is there already takes
            # the place of the connection waiting longest at once; any other is
            # on probation: a few may wait beside the bound (the oldest of them
            # makes room for a newcomer once it has had its chance to be read)
            # and take a place once they have sent a whole request head.  When
            # probation is full too, a newcomer is looked at again a few times
            # in the next 50 ms (its request may be on its way) before it is
            # refused.  So a flood of slow or silent clients cannot push out
            # each other's newcomers, nor a scraper's.
            if _request_waiting(sock):
                if not self._make_room(peer):
                    sock.close()
                    return
                probation = None
            elif len(self._probation) >= self._max_probation and not self._evict_probation():
                now = self.loop.time()
                if pending_since is None or now - pending_since < _PENDING_SECONDS:
                    if len(self._pending) >= self._max_pending:  # the oldest has had its look
                        old = self._pending.pop(0)
                        self.counters.hit(probation, "connection from %s refused: at the "
                                          "bound, and no request from it", old[1])
                        old[0].close()
                    self._pending.append((sock, peer, listener, pending_since or now))
                    if len(self._pending) == 1:
                        self.loop.call_later(_PENDING_SECONDS / 10, self._recheck)
                    return
                self.counters.hit(probation, "connection from %s refused: at the bound, and "
                                  "%d others on probation", peer, len(self._probation))
                sock.close()
                return
        conn = Connection(cast("Server", self), listener.grpc_target, peer, probation)
        self._connections[conn] = None
        if probation:
            self._probation[conn] = None
        else:
            self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        self.loop.create_task(self._connect(conn, sock))

    def _recheck(self) -> None:
        pending, self._pending = self._pending, []
        for sock, peer, listener, since in pending:
            self._admit(sock, peer, listener, since)

    def _full(self, peer: str) -> Optional[str]:
        """The connection bound a newcomer from ``peer`` would pass, or None."""
        if len(self._connections) - len(self._probation) >= self.max_connections:
            return "max_connections"
        if self._per_peer.get(peer, 0) >= self.max_per_peer:
            return "max_connections_per_peer"
        return None

    def _refuse(self, peer: str, message: str) -> None:
        self.counters.hit(self._full(peer) or "max_connections", message)

    def _make_room(self, peer: str) -> bool:
        """Close the connection waiting longest, to make room for one from ``peer``."""
        if len(self._connections) - len(self._probation) >= self.max_connections \
                and not self._evict(None):
            self._refuse(peer, "connection from %s refused: every connection is busy" % peer)
            return False
        if self._per_peer.get(peer, 0) >= self.max_per_peer and not self._evict(peer):
            self._refuse(peer, "connection from %s refused: every connection from it is "
                         "busy" % peer)
            return False
        return True

    def promote(self, conn: Connection) -> bool:
        """A connection on probation sent a whole request head: a place for it, or False."""
        del self._probation[conn]
        if self._full(conn.peer) and not self._make_room(conn.peer):
            self._probation[conn] = None  # still on probation, until it is closed
            return False
        self._per_peer[conn.peer] = self._per_peer.get(conn.peer, 0) + 1
        self.moved(conn)
        return True

    def grpc_started(self, conn: Connection) -> bool:
        """``conn`` turned out gRPC: within its peer's bound, closing its quietest one."""
        peer = conn.peer
        if self._grpc_per_peer.get(peer, 0) >= self.limits.max_grpc_connections_per_peer:
            victim = next((c for c in self._waiting if c.grpc and c.peer == peer), None)
            cause = "max_grpc_connections_per_peer"
            if victim is None:  # pragma: no cover - gRPC connections always wait
                self.counters.hit(cause, "gRPC connection from %s refused", peer)
                return False
            self.counters.hit(cause, "%d gRPC connections from %s: its quietest was closed",
                              self._grpc_per_peer[peer], peer)
            self._forget(victim)
            victim.close()
        conn.grpc = True
        self._grpc_per_peer[peer] = self._grpc_per_peer.get(peer, 0) + 1
        return True

    def probation_over(self, conn: Connection) -> None:
        """A connection on probation sent no whole request head in time."""
        assert conn.probation
        self.counters.hit(conn.probation, "connection from %s closed: at the bound, and no "
                          "request head within %g s", conn.peer, PROBATION)
        self._forget(conn)
        conn.close()

    def _evict_probation(self) -> bool:
        """Close the oldest connection on probation, if it has had its chance to be read."""
        for conn in self._probation:
            if conn.transport is None or self.loop.time() - conn.since < PROBATION_FIRST_CHANCE:
                return False  # not read yet
            self.counters.hit(conn.probation or "max_connections", "connection from %s on "
                              "probation closed for a newer one", conn.peer)
            self._forget(conn)
            conn.close()
            return True
        return False

    async def _connect(self, conn: Connection, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: conn, sock)
        except OSError as exc:
            logger.debug("connection from %s lost at once: %s", conn.peer, exc)
            sock.close()
            self.closed(conn)

    def _evict(self, peer: Optional[str]) -> bool:
        """Close the connection that has waited longest (of ``peer``, if given)."""
        victim = None
        for conn in self._waiting:
            if peer is None or conn.peer == peer:
                victim = conn
                break
        if victim is None:
            return False
        cause = "max_connections" if peer is None else "max_connections_per_peer"
        self.counters.hit(cause, "%d connections open%s: the one from %s waiting longest "
                          "without a request was closed", len(self._connections) if peer is None
                          else self._per_peer[peer], "" if peer is None else " from " + peer,
                          victim.peer)
        self._forget(victim)
        victim.close()
        return True

    # -- the registry (Connection calls these) -----------------------------------

    def moved(self, conn: Connection) -> None:
        if conn not in self._connections or conn.probation:
            return
        if conn.phase in WAITING:
            self._waiting[conn] = None
            self._waiting.move_to_end(conn)
        else:
            self._waiting.pop(conn, None)

    def closed(self, conn: Connection) -> None:
        self._forget(conn)
        if self._paused_at is not None and self._retry is not None:
            self._retry.cancel()
            self._retry = self.loop.call_soon(self._resume_accepting)  # type: ignore[assignment]

    def _forget(self, conn: Connection) -> None:
        if self._connections.pop(conn, 0) is None:
            self._waiting.pop(conn, None)
            if conn.grpc:
                _decrement(self._grpc_per_peer, conn.peer)
            if self._probation.pop(conn, 0) is None:
                return
            _decrement(self._per_peer, conn.peer)

    def connection_count(self) -> int:
        return len(self._connections)
