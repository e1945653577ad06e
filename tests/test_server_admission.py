"""gotools_compat._server.admission: who gets a connection at the bounds, directly.

Admission of a new socket (``Admission._admit``) is private and reached only
through a listener's accept, so each test serves on 127.0.0.1 with a
:class:`Server` subclass that hands the test every :class:`Connection` as it is
made (and then does what the server does).  The public registry methods
(``promote``, ``grpc_started``, ``probation_over``, ``moved``, ``closed``,
``connection_count``) are then called on the loop thread, one call or one
atomic group of calls at a time; nothing sleeps and nothing is timed.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Set, Tuple, TypeVar

import pytest

from gotools_compat._server import Limits, Request, Response, Server
from gotools_compat._server import http1
from gotools_compat._server.http1 import FIRST, Connection
from tests.front_door import connect, is_closed, parse, read_to_eof

T = TypeVar("T")
LOG = "gotools_compat._server.limits"  # where Counters warns


@pytest.fixture(autouse=True)
def long_probation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Probation ends by a timer after 1 s; the tests end it themselves
    # (probation_over), so a stalled machine must not end it first.
    monkeypatch.setattr(http1, "PROBATION", 60.0)


class Gate:
    """Answers ``ok:<path>``; ``/block`` waits for ``gate`` (``entered`` says it waits)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def early(self, method: str, target: str) -> Optional[Response]:
        return None

    def handle(self, request: Request) -> Response:
        if request.path == "/block":
            self.entered.set()
            self.gate.wait(30)
        return Response(200, b"ok:" + request.path.encode())


class Recording(Server):
    """A Server that also puts each connection in ``made`` when it is made."""

    def __init__(self, handler: Gate, limits: Limits) -> None:
        super().__init__(handler, limits, name="test-admission")
        self.made: "queue.Queue[Connection]" = queue.Queue()
        self.seen: Set[Connection] = set()

    def moved(self, conn: Connection) -> None:
        if conn.phase == FIRST and conn not in self.seen:  # connection_made
            self.seen.add(conn)
            self.made.put(conn)
        super().moved(conn)


@contextmanager
def serving(limits: Limits) -> Iterator[Tuple[Recording, int, Gate]]:
    handler = Gate()
    server = Recording(handler, limits)
    port = server.listen("127.0.0.1", 0)
    server.start()
    try:
        yield server, port, handler
    finally:
        handler.gate.set()
        server.stop()


def bounds(**kwargs: int) -> Limits:
    return Limits(header_timeout=30, idle_timeout=30, workers=2, **kwargs)


def on_loop(server: Server, fn: Callable[[], T]) -> T:
    """``fn()`` run on the server's loop thread, between two of its callbacks."""
    async def call() -> T:
        return fn()
    return asyncio.run_coroutine_threadsafe(call(), server.loop).result(10)


def arrive(server: Recording, port: int, socks: List[socket.socket],
           source: str = "127.0.0.1") -> Tuple[socket.socket, Connection]:
    """A new client socket (kept in ``socks``) and the server's connection of it, once made."""
    sock = connect(port, source)
    socks.append(sock)
    conn = server.made.get(timeout=10)
    assert conn.transport is not None
    assert conn.transport.get_extra_info("peername")[:2] == sock.getsockname()[:2]
    return sock, conn


def get(sock: socket.socket, path: bytes, close: bool = False) -> bytes:
    """One GET on ``sock``; its response (whole, the connection kept unless ``close``)."""
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n"
                 % (path, b"Connection: close\r\n" if close else b""))
    if close:
        return read_to_eof(sock)
    reply = b""
    while not reply.endswith(b"ok:" + path):
        chunk = sock.recv(65536)
        assert chunk, "closed after %r" % reply
        reply += chunk
    return reply


@pytest.fixture
def socks() -> Iterator[List[socket.socket]]:
    held: List[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


# -- admission at the bounds ---------------------------------------------------


def test_silent_newcomers_beyond_max_connections_are_on_probation_of_any_peer(
        socks: List[socket.socket]) -> None:
    with serving(bounds(max_connections=2)) as (server, port, _):
        placed = [arrive(server, port, socks)[1] for _ in range(2)]
        _, mine = arrive(server, port, socks)
        _, theirs = arrive(server, port, socks, "127.0.0.2")
        assert [c.probation for c in placed] == [None, None]
        # The bound in all holds for another peer too; no one is closed for them.
        assert (mine.probation, theirs.probation) == ("max_connections", "max_connections")
        assert on_loop(server, server.connection_count) == 4
        assert server.counters.items() == []
        assert not any(is_closed(s) for s in socks)


def test_the_per_peer_bound_puts_only_that_peers_newcomer_on_probation(
        socks: List[socket.socket]) -> None:
    with serving(bounds(max_connections=10, max_connections_per_peer=1)) as (server, port, _):
        _, first = arrive(server, port, socks)
        _, second = arrive(server, port, socks)
        _, other = arrive(server, port, socks, "127.0.0.2")
        assert (first.probation, second.probation, other.probation) == (
            None, "max_connections_per_peer", None)
        assert on_loop(server, server.connection_count) == 3
        assert server.counters.items() == []


def test_probation_over_closes_it_counts_its_bound_and_frees_no_place(
        socks: List[socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    with serving(bounds(max_connections=10, max_connections_per_peer=1)) as (server, port, _):
        held, _ = arrive(server, port, socks)
        late, conn = arrive(server, port, socks)
        assert conn.probation == "max_connections_per_peer"

        def over() -> Tuple[List[Tuple[str, int]], int]:
            server.probation_over(conn)
            return server.counters.items(), server.connection_count()

        assert on_loop(server, over) == ([("max_connections_per_peer", 1)], 1)
        assert read_to_eof(late) == b""
        assert not is_closed(held)
        assert [r.getMessage() for r in caplog.records if r.name == LOG] == [
            "connection from 127.0.0.1 closed: at the bound, and no request head within 1 s; "
            "counted as cause 'max_connections_per_peer'"]
        # It never held a place of its peer's: the next one waits on probation too.
        _, after = arrive(server, port, socks)
        assert after.probation == "max_connections_per_peer"


def test_a_connection_closed_twice_is_forgotten_once_and_frees_one_place(
        socks: List[socket.socket]) -> None:
    with serving(bounds(max_connections=10, max_connections_per_peer=2)) as (server, port, _):
        (_, a), (_, _b) = arrive(server, port, socks), arrive(server, port, socks)

        def evict() -> int:
            server.closed(a)  # forgotten, as _evict does, then closed: closed() once more
            a.close()
            return server.connection_count()

        assert on_loop(server, evict) == 1
        assert read_to_eof(socks[0]) == b""
        assert on_loop(server, server.connection_count) == 1  # after its connection_lost
        _, c = arrive(server, port, socks)
        _, d = arrive(server, port, socks)
        # One place freed, not two: b and c hold the peer's two places.
        assert (c.probation, d.probation) == (None, "max_connections_per_peer")
        assert on_loop(server, server.connection_count) == 3


# -- making room -----------------------------------------------------------------


def test_a_promoted_newcomer_closes_the_connection_waiting_longest_not_the_oldest(
        socks: List[socket.socket]) -> None:
    with serving(bounds(max_connections=2)) as (server, port, _):
        oldest, _ = arrive(server, port, socks)
        waiting, _ = arrive(server, port, socks)
        # The oldest is served, so it waits again since after the other one.
        [(status, _, body)] = parse(get(oldest, b"/a"))
        assert (status, body) == (200, b"ok:/a")
        newcomer, conn = arrive(server, port, socks)
        assert conn.probation == "max_connections"
        [(status, _, body)] = parse(get(newcomer, b"/b", close=True))
        assert (status, body) == (200, b"ok:/b")
        assert read_to_eof(waiting) == b""
        assert not is_closed(oldest)
        assert server.counters.items() == [("max_connections", 1)]


def test_a_newcomer_at_its_peers_bound_closes_that_peers_longest_waiting_only(
        socks: List[socket.socket]) -> None:
    limits = bounds(max_connections=10, max_connections_per_peer=2)
    with serving(limits) as (server, port, _):
        theirs, _ = arrive(server, port, socks, "127.0.0.2")  # waiting longest of all
        first, _ = arrive(server, port, socks)
        second, _ = arrive(server, port, socks)
        newcomer = connect(port)
        socks.append(newcomer)
        # On probation or straight in (its head may be there at accept): the same room made.
        [(status, _, body)] = parse(get(newcomer, b"/n", close=True))
        assert (status, body) == (200, b"ok:/n")
        assert read_to_eof(first) == b""
        assert not is_closed(theirs) and not is_closed(second)
        assert server.counters.items() == [("max_connections_per_peer", 1)]


def test_promote_is_refused_while_every_place_is_busy_and_granted_once_one_waits(
        socks: List[socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    with serving(bounds(max_connections=1)) as (server, port, handler):
        busy, _ = arrive(server, port, socks)
        busy.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        assert handler.entered.wait(10)
        _, conn = arrive(server, port, socks)
        assert conn.probation == "max_connections"

        def promote() -> Tuple[bool, List[Tuple[str, int]], int]:
            return server.promote(conn), server.counters.items(), server.connection_count()

        assert on_loop(server, promote) == (False, [("max_connections", 1)], 2)
        assert [r.getMessage() for r in caplog.records if r.name == LOG] == [
            "connection from 127.0.0.1 refused: every connection is busy; "
            "counted as cause 'max_connections'"]
        handler.gate.set()
        reply = b""
        while not reply.endswith(b"ok:/block"):  # answered, kept alive: waiting now
            reply += busy.recv(65536)
        # Still on probation after the refusal, so it may be promoted again.
        assert on_loop(server, promote) == (True, [("max_connections", 2)], 1)
        assert read_to_eof(busy) == b""


def test_promote_at_the_per_peer_bound_leaves_other_peers_idle_connections_alone(
        socks: List[socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    limits = bounds(max_connections=10, max_connections_per_peer=1)
    with serving(limits) as (server, port, handler):
        theirs, _ = arrive(server, port, socks, "127.0.0.2")
        busy, _ = arrive(server, port, socks)
        busy.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\n\r\n")
        assert handler.entered.wait(10)
        _, conn = arrive(server, port, socks)
        assert conn.probation == "max_connections_per_peer"
        result = on_loop(server, lambda: (server.promote(conn), server.counters.items()))
        assert result == (False, [("max_connections_per_peer", 1)])
        assert [r.getMessage() for r in caplog.records if r.name == LOG] == [
            "connection from 127.0.0.1 refused: every connection from it is busy; "
            "counted as cause 'max_connections_per_peer'"]
        assert not is_closed(theirs)


def test_a_silent_newcomer_with_probation_full_takes_the_oldest_probation_place(
        socks: List[socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    # At most max(4, max_connections // 8) on probation: the fifth waits (the
    # pending look) until the oldest has had its first chance, then replaces it.
    with serving(bounds(max_connections=1)) as (server, port, _):
        held, _ = arrive(server, port, socks)
        probation = [arrive(server, port, socks) for _ in range(4)]
        assert [c.probation for _, c in probation] == ["max_connections"] * 4
        _, fifth = arrive(server, port, socks)
        assert fifth.probation == "max_connections"
        assert on_loop(server, lambda: (server.counters.items(), server.connection_count())) \
            == ([("max_connections", 1)], 5)
        assert read_to_eof(probation[0][0]) == b""
        assert not any(is_closed(s) for s, _ in probation[1:]) and not is_closed(held)
        assert [r.getMessage() for r in caplog.records if r.name == LOG] == [
            "connection from 127.0.0.1 on probation closed for a newer one; "
            "counted as cause 'max_connections'"]


# -- gRPC connections per peer -------------------------------------------------------


def test_a_grpc_connection_beyond_its_peers_bound_closes_that_peers_quietest_one(
        socks: List[socket.socket]) -> None:
    with serving(bounds(max_connections=10, max_grpc_connections_per_peer=2)) as (
            server, port, _):
        _, plain = arrive(server, port, socks)  # waiting longest, but not gRPC
        _, other = arrive(server, port, socks, "127.0.0.2")  # gRPC, of another peer
        (s1, g1), (s2, g2), (s3, g3) = [arrive(server, port, socks) for _ in range(3)]

        def start() -> Tuple[List[bool], List[Tuple[str, int]], int]:
            started = [server.grpc_started(c) for c in (other, g1, g2)]
            server.moved(g1)  # g1's client sent bytes: g2 is the quietest now
            started.append(server.grpc_started(g3))
            return started, server.counters.items(), server.connection_count()

        assert on_loop(server, start) == (
            [True, True, True, True], [("max_grpc_connections_per_peer", 1)], 4)
        assert (plain.grpc, other.grpc, g1.grpc, g3.grpc) == (False, True, True, True)
        assert read_to_eof(s2) == b""
        assert not any(is_closed(s) for s in socks if s is not s2)


def test_a_closed_grpc_connection_no_longer_counts_against_its_peer(
        socks: List[socket.socket]) -> None:
    with serving(bounds(max_grpc_connections_per_peer=1)) as (server, port, _):
        (s1, g1), (s2, g2) = arrive(server, port, socks), arrive(server, port, socks)

        def start_and_close() -> bool:
            started = server.grpc_started(g1)
            g1.close()  # its connection_lost (closed()) runs before the next call below
            return started

        assert on_loop(server, start_and_close) is True
        assert on_loop(server, lambda: (server.grpc_started(g2), server.counters.items(),
                                        server.connection_count())) == (True, [], 1)
        assert read_to_eof(s1) == b""
        assert not is_closed(s2)
