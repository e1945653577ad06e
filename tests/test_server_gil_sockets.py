"""_server.gil_sockets: the loop's socket and epoll calls, against the stock ones."""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import threading
from typing import Any, Iterator, List, Tuple

import pytest

from gotools_compat._server import gil_sockets

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the GIL-keeping calls are Linux's")


def listener(family: int = socket.AF_INET) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    return sock


@pytest.fixture
def pair() -> Iterator[Tuple[socket.socket, socket.socket]]:
    """(client, the server's accepted end through gil_sockets.accept)."""
    with listener() as lst:
        client = socket.create_connection(lst.getsockname())
        select.select([lst], [], [], 5.0)
        served, _ = gil_sockets.accept(lst)
    yield client, served
    client.close()
    served.close()


def test_accept_gives_a_non_blocking_stream_with_the_peer_the_stock_call_names() -> None:
    with listener() as lst:
        with pytest.raises(BlockingIOError):
            gil_sockets.accept(lst)  # none waits
        client = socket.create_connection(lst.getsockname())
        select.select([lst], [], [], 5.0)
        served, peer = gil_sockets.accept(lst)
        with client, served:
            assert peer == client.getsockname() == served.getpeername()
            assert served.getsockname() == client.getpeername()
            assert served.getsockname() == socket.socket.getsockname(served)  # the stock call
            assert (served.family, served.type) == (socket.AF_INET, socket.SOCK_STREAM)
            assert served.gettimeout() == 0.0
            assert os.get_blocking(served.fileno()) is False
            assert os.get_inheritable(served.fileno()) is False  # close-on-exec


def test_an_ipv6_peer_is_spelled_as_the_socket_module_does() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        lst = listener(socket.AF_INET6)
    except OSError as exc:  # a kernel without ::1
        pytest.skip("no IPv6 loopback: %s" % exc)
    with lst:
        client = socket.create_connection(lst.getsockname()[:2])
        select.select([lst], [], [], 5.0)
        served, peer = gil_sockets.accept(lst)
        with client, served:
            assert peer == client.getsockname() == socket.socket.getpeername(served)
            assert served.getsockname() == socket.socket.getsockname(served)


def test_bytes_go_both_ways_peek_included(pair: Tuple[socket.socket, socket.socket]) -> None:
    client, served = pair
    with pytest.raises(BlockingIOError):
        served.recv(100)  # nothing sent yet
    with pytest.raises(ValueError, match="negative buffersize"):
        served.recv(-1)  # never a size_t of 2**64 - 1 for a 64 KiB buffer
    message = bytes(range(256)) * 800  # 204,800 bytes, NULs included
    client.sendall(message)
    got = b""
    peeked = b""
    while len(got) < len(message):
        select.select([served], [], [], 5.0)
        if not peeked:
            peeked = served.recv(16, socket.MSG_PEEK)
            assert peeked == message[:len(peeked)]
        got += served.recv(256 * 1024)
    assert got == message
    sent = 0
    while sent < len(message):  # the bytes path, then a memoryview (the stock call)
        select.select([], [served], [], 5.0)
        data = message[sent:] if sent == 0 else memoryview(message)[sent:]
        sent += served.send(data)
    back = b""
    while len(back) < len(message):
        back += client.recv(len(message))
    assert back == message
    client.shutdown(socket.SHUT_WR)
    select.select([served], [], [], 5.0)
    assert served.recv(100) == b""  # the peer's end of stream


def test_shutdown_then_close_frees_the_descriptor(
        pair: Tuple[socket.socket, socket.socket]) -> None:
    client, served = pair
    served.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert served.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    served.setblocking(False)  # already: nothing to do, and nothing changes
    assert served.gettimeout() == 0.0
    served.shutdown(socket.SHUT_WR)
    assert client.recv(10) == b""
    fd = served.fileno()
    served.close()
    assert served.fileno() == -1
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF
    with pytest.raises(OSError) as info:
        served.recv(10)
    assert info.value.errno == errno.EBADF


def test_send_to_a_reset_peer_raises_and_raises_no_signal(
        pair: Tuple[socket.socket, socket.socket]) -> None:
    client, served = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    client.close()  # linger 0: a reset
    select.select([served], [], [], 5.0)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        for _ in range(3):
            served.send(b"x" * 1000)


def test_the_selector_sees_what_the_stock_epoll_sees() -> None:
    epoll = gil_sockets.Epoll()
    a, b = socket.socketpair()
    with a, b:
        epoll.register(a.fileno(), select.EPOLLIN)
        with pytest.raises(FileExistsError):
            epoll.register(a.fileno(), select.EPOLLIN)
        assert epoll.poll(0, 8) == []
        b.send(b"x")
        assert epoll.poll(0, 8) == [(a.fileno(), select.EPOLLIN)]
        assert epoll.poll(1.0, 8) == [(a.fileno(), select.EPOLLIN)]  # the stock wait
        epoll.modify(a.fileno(), select.EPOLLOUT)
        assert epoll.poll(0, 8) == [(a.fileno(), select.EPOLLOUT)]
        epoll.unregister(a.fileno())
        assert epoll.poll(0, 8) == []
        with pytest.raises(FileNotFoundError):
            epoll.unregister(a.fileno())
    epoll.close()
    assert epoll.closed


def test_the_loop_serves_through_the_gil_keeping_calls() -> None:
    import asyncio

    loop = gil_sockets.new_event_loop()
    got: List[bytes] = []

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            got.append(data)
            self.transport.write(data.upper())
            self.transport.write_eof()

    with listener() as lst:
        client = socket.create_connection(lst.getsockname())
        with client:
            client.sendall(b"hello")
            select.select([lst], [], [], 5.0)
            served, _ = gil_sockets.accept(lst)
            loop.run_until_complete(loop.connect_accepted_socket(Echo, served))
            client.settimeout(5.0)
            answer = b""
            while True:
                loop.run_until_complete(asyncio.sleep(0.01))
                try:
                    chunk = client.recv(100, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                if not chunk:
                    break
                answer += chunk
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert (got, answer) == ([b"hello"], b"HELLO")


def test_no_call_lets_another_thread_run(pair: Tuple[socket.socket, socket.socket]) -> None:
    """The point of the module: a thread that waits for the GIL waits through them all."""
    import asyncio

    client, served = pair
    loop = gil_sockets.new_event_loop()
    client.sendall(b"ping" * 200)  # before: the client's stock calls let the GIL go
    ran: List[int] = []
    go = threading.Event()

    def other() -> None:
        go.wait()
        ran.append(1)

    readable: List[int] = []
    lengths: List[int] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)  # no forced switch while the calls run
    thread = threading.Thread(target=other)
    try:
        thread.start()
        go.set()  # from here the thread waits for the GIL, which this one holds
        for _ in range(200):
            loop.add_reader(served.fileno(), readable.append, 1)  # epoll_ctl
            loop.run_until_complete(asyncio.sleep(0))  # epoll_wait, zero timeout
            lengths.append(len(served.recv(4)))
            served.send(b"pong")
            served.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            served.getsockname()
            loop.remove_reader(served.fileno())
        during = list(ran)
    finally:
        sys.setswitchinterval(interval)
        thread.join()
        loop.close()
    assert (during, ran) == ([], [1])
    assert lengths == [4] * 200 and len(readable) >= 200  # the loop saw it readable
    got = b""
    while len(got) < 800:
        got += client.recv(800)
    assert got == b"pong" * 200
