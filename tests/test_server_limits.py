"""gotools_compat._server under held connections: timeouts, connection caps, the fd limit.

Each bound is seen from the client (what it receives, when it is closed), in
the server's counters, and by a request served afterwards.  The fd-limit
cases run the server in a child process with a low RLIMIT_NOFILE (a child
that does not import grpc, see tests/conftest.py).
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat import metric, stats
from gotools_compat._server import Limits, Server
from gotools_compat._server.http1 import PROBATION
from gotools_compat.export import prometheus
from tests.front_door import (FAST, Echo, Lines, child_process, connect, cpu_seconds, exchange,
                              finish, is_closed, parse, read_to_eof, readable, serving, statuses,
                              wait_closed, wait_until)

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
GET_CLOSE = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
SLACK = 3.0  # beyond a timeout, before a loaded box must have acted on it


# -- timeouts -------------------------------------------------------------------


def test_a_silent_connection_on_a_grpc_listener_is_closed_without_a_byte(
        echo: Echo, tmp_path: Path) -> None:
    with serving(echo, grpc_target=str(tmp_path / "none.sock")) as (server, port):
        with connect(port) as sock:
            data, seconds = wait_closed(sock, FAST.header_timeout + SLACK)
        assert data == b"" and seconds >= FAST.header_timeout * 0.9
        assert server.counters.items() == [("header_timeout", 1)]
        assert statuses(exchange(port, GET_CLOSE)) == [200]


def test_a_partial_head_gets_408_at_the_header_timeout(served: Tuple[Server, int]) -> None:
    server, port = served
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        data, seconds = wait_closed(sock, FAST.header_timeout + SLACK)
    [(status, _, body)] = parse(data)
    assert status == 408 and b"header_timeout" in body
    assert seconds >= FAST.header_timeout * 0.9
    assert server.counters.items() == [("header_timeout", 1)]


def test_a_trickled_head_is_closed_at_the_header_timeout_though_bytes_keep_coming(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 900
    start = time.monotonic()
    with connect(port) as sock:
        sent = 0
        try:
            while not readable(sock) and time.monotonic() - start < FAST.header_timeout + SLACK:
                sock.sendall(head[sent:sent + 1])
                sent += 1
                time.sleep(0.02)
        except OSError:  # the server's close, seen on send
            pass
        data = read_to_eof(sock)
    seconds = time.monotonic() - start
    assert FAST.header_timeout * 0.9 <= seconds < FAST.header_timeout + SLACK
    assert sent < len(head)  # closed while still sending, not at the head's end
    assert statuses(data) == [408] and echo.requests == []
    assert server.counters.get("header_timeout") == 1


def test_a_stalled_body_gets_408_at_the_body_timeout(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    with connect(port) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        data, seconds = wait_closed(sock, FAST.body_timeout + SLACK)
    [(status, _, body)] = parse(data)
    assert status == 408 and json.loads(body) == {
        "error": "request not received in time (body_timeout)"}
    assert seconds >= FAST.body_timeout * 0.9 and echo.requests == []
    assert server.counters.items() == [("body_timeout", 1)]


def test_an_idle_keep_alive_connection_is_closed_at_the_idle_timeout(
        served: Tuple[Server, int]) -> None:
    server, port = served
    with connect(port) as sock:
        sock.sendall(GET)
        first = b""
        while not first.endswith(b"hello"):
            first += sock.recv(65536)
        data, seconds = wait_closed(sock, FAST.idle_timeout + SLACK)
    assert statuses(first) == [200] and data == b""
    assert seconds >= FAST.idle_timeout * 0.9
    assert server.counters.items() == []  # routine, not a bound hit
    assert server.connection_count() == 0


def test_a_client_that_never_reads_a_large_response_is_closed_after_the_write_timeout(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    echo.big = b"x" * (16 * 1024 * 1024)
    with connect(port, rcvbuf=4096) as sock:
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: server.counters.get("write_timeout") == 1,
                   FAST.write_timeout + SLACK, "the write timeout")
        data = read_to_eof(sock)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Length: %d\r\n" % len(echo.big) in data
    assert len(data) < len(echo.big)  # cut off: it did not wait for the rest
    wait_until(lambda: server.connection_count() == 0, SLACK, "the connection to close")
    assert statuses(exchange(port, GET_CLOSE)) == [200]


def test_a_pipelining_client_that_never_reads_makes_no_more_responses_wait(
        served: Tuple[Server, int], echo: Echo) -> None:
    # Each response under 64 KiB leaves in one write; without back-pressure the
    # server answered all 20,000 requests into its own memory (1.2 GB).
    server, port = served
    with connect(port, rcvbuf=4096) as sock:
        sock.setblocking(False)
        requests = b"GET /medium HTTP/1.1\r\nHost: x\r\n\r\n" * 20000
        deadline = time.monotonic() + FAST.write_timeout + SLACK
        while requests and time.monotonic() < deadline:
            try:
                requests = requests[sock.send(requests):]
            except BlockingIOError:
                time.sleep(0.01)
            except OSError:  # closed by the write timeout
                break
        wait_until(lambda: server.counters.get("write_timeout") == 1,
                   FAST.write_timeout + SLACK, "the write timeout")
    assert len(echo.requests) < 500  # a few buffers' worth (about 4.3 MB), not all of them
    assert statuses(exchange(port, GET_CLOSE)) == [200]


# -- connection caps ------------------------------------------------------------


def _more_than(server: Server, cause: str, seen: int) -> bool:
    return server.connection_count() + server.counters.get(cause) > seen


def open_in_order(port: int, count: int, server: Server, source: str = "127.0.0.1",
                  cause: str = "max_connections") -> List[socket.socket]:
    """``count`` idle connections, each accepted before the next (so oldest first)."""
    socks = []
    for _ in range(count):
        seen = server.connection_count() + server.counters.get(cause)
        socks.append(connect(port, source))
        wait_until(functools.partial(_more_than, server, cause, seen), 10,
                   "the connection to be accepted")
    return socks


def test_at_max_connections_silent_newcomers_wait_on_probation_and_go(echo: Echo) -> None:
    # Beyond the bound, connections that send no request are on probation and
    # closed after PROBATION; the ones holding the places stay.
    limits = Limits(max_connections=8, header_timeout=30, workers=2)
    with serving(echo, limits) as (server, port):
        socks = open_in_order(port, 12, server)
        try:
            assert server.connection_count() == 12  # 8 in place, 4 on probation
            start = time.monotonic()
            for sock in socks[8:]:
                data, _ = wait_closed(sock, PROBATION + SLACK)
                assert data == b""
            assert time.monotonic() - start >= PROBATION * 0.5
            assert not any(is_closed(s) for s in socks[:8])
            assert server.counters.items() == [("max_connections", 4)]
        finally:
            for s in socks:
                s.close()


def test_at_max_connections_a_newcomer_with_a_request_takes_the_oldest_place(
        echo: Echo) -> None:
    limits = Limits(max_connections=8, header_timeout=30, workers=2)
    with serving(echo, limits) as (server, port):
        socks = open_in_order(port, 8, server)
        try:
            # A new client gets in (by closing the oldest idle one) and is served.
            assert statuses(exchange(port, GET_CLOSE)) == [200]
            wait_until(lambda: is_closed(socks[0]), SLACK, "the oldest closed")
            assert not any(is_closed(s) for s in socks[1:])
            assert server.counters.get("max_connections") == 1
            # And again, once the places are all taken again: the next oldest.
            wait_until(lambda: server.connection_count() == 7, SLACK, "the newcomer gone")
            socks.append(connect(port))
            wait_until(lambda: server.connection_count() == 8, SLACK, "8 in place again")
            assert statuses(exchange(port, GET_CLOSE)) == [200]
            wait_until(lambda: is_closed(socks[1]), SLACK, "the next oldest closed")
            assert server.counters.get("max_connections") == 2
            socks[-1].sendall(GET_CLOSE)  # the newest idle ones were kept, and work
            assert statuses(read_to_eof(socks[-1])) == [200]
        finally:
            for s in socks:
                s.close()


def test_a_flood_of_slow_newcomers_cannot_push_a_scrapers_request_out(echo: Echo) -> None:
    # 8 places held by tricklers, newcomers trickling too: each goes after its
    # probation, while a client that sends its request whole is served every time.
    limits = Limits(max_connections=8, header_timeout=30, workers=2)
    with serving(echo, limits) as (server, port):
        held = open_in_order(port, 8, server)
        flood: List[socket.socket] = []
        try:
            for round_ in range(5):
                for _ in range(20):
                    sock = connect(port)
                    sock.sendall(b"GET /slow HTTP/1.1\r\nX-")
                    flood.append(sock)
                assert statuses(exchange(port, GET_CLOSE)) == [200], round_
            assert echo.paths().count("/x") == 5
            assert "/slow" not in echo.paths()
        finally:
            for s in held + flood:
                s.close()


def test_when_every_connection_is_busy_a_new_one_is_closed_at_once(echo: Echo) -> None:
    limits = Limits(max_connections=4, header_timeout=30, workers=2)
    with serving(echo, limits) as (server, port):
        busy = [connect(port) for _ in range(4)]
        try:
            for i, sock in enumerate(busy):
                sock.sendall(b"POST /block HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                             b"Connection: close\r\n\r\n%d" % i)
            wait_until(lambda: server.connection_count() == 4, 10, "4 connections")
            time.sleep(0.1)  # every request read
            with connect(port) as late:
                data, seconds = wait_closed(late, SLACK)
            assert data == b"" and seconds < limits.header_timeout
            assert server.counters.items() == [("max_connections", 1)]
            echo.gate.set()  # the busy ones were kept, with their requests
            bodies = sorted(parse(read_to_eof(s))[0][2] for s in busy)
            assert bodies == [b"0", b"1", b"2", b"3"]
        finally:
            for s in busy:
                s.close()
        wait_until(lambda: server.connection_count() == 0, SLACK, "all closed")
        assert statuses(exchange(port, GET_CLOSE)) == [200]


def test_the_per_peer_cap_leaves_other_peers_alone(echo: Echo) -> None:
    limits = Limits(max_connections=100, max_connections_per_peer=3, header_timeout=30)
    with serving(echo, limits) as (server, port):
        cause = "max_connections_per_peer"
        mine = open_in_order(port, 3, server)
        theirs = open_in_order(port, 6, server, "127.0.0.2", cause)
        try:  # theirs beyond the bound go after their probation; no one else does
            wait_until(lambda: all(is_closed(s) for s in theirs[3:]), PROBATION + SLACK,
                       "theirs on probation closed")
            assert not any(is_closed(s) for s in theirs[:3] + mine)
            assert server.counters.items() == [(cause, 3)]
            for i, sock in enumerate(mine):
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                             b"Connection: close\r\n\r\n%d" % i)
                assert [(s, b) for s, _, b in parse(read_to_eof(sock))] == [(200, b"%d" % i)]
            assert server.counters.items() == [(cause, 3)]
        finally:
            for s in mine + theirs:
                s.close()


# -- the fd limit ---------------------------------------------------------------


BARE_SERVER = """
    import logging, resource, sys
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    from gotools_compat._server import Limits, Response, Server
    assert "grpc" not in sys.modules

    class Ok:
        def early(self, method, target):
            return None

        def handle(self, request):
            return Response(200, b"ok")

    server = Server(Ok(), Limits(max_connections=100000, header_timeout=60, idle_timeout=60))
    print(server.listen("127.0.0.1", 0), flush=True)
    server.start()
    sys.stdin.read()
    server.stop()
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_at_the_fd_limit_accepting_pauses_quietly_and_resumes() -> None:
    child = child_process(BARE_SERVER)
    assert child.stdout is not None and child.stderr is not None
    log = Lines(child.stderr)
    held: List[socket.socket] = []
    try:
        port = int(child.stdout.readline())
        for _ in range(200):  # over the 128 fds: the rest waits in the backlog
            held.append(connect(port))
        wait_until(lambda: bool(log.matching("^WARNING")), 10, "the fd-limit warning")
        before = cpu_seconds(child.pid)
        time.sleep(2.0)  # held at the limit
        spent = cpu_seconds(child.pid) - before
        assert spent < 0.3, "the child spun at the fd limit: %.2f s CPU in 2 s" % spent
        for sock in held:
            sock.close()
        held = []
        start = time.monotonic()
        reply = exchange(port, GET_CLOSE)
        assert time.monotonic() - start < SLACK
        assert [(s, b) for s, _, b in parse(reply)] == [(200, b"ok")]
        wait_until(lambda: bool(log.matching("accepting connections again")), 5, "the INFO")
        warnings = log.matching("^WARNING")
        assert len(warnings) == 1 and "accept paused at the open-files limit" in warnings[0]
        assert "counted as cause 'fd_limit'" in warnings[0]
        assert log.matching("^INFO gotools_compat._server.server accepting connections again")
        assert not log.matching("Traceback|ERROR")
    finally:
        for sock in held:
            sock.close()
        finish(child, log)


SERVE = """
    import json, resource, sys
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    from gotools_compat.export import prometheus
    server = prometheus.new(namespace="fd").serve(port=0)
    print(server.port, flush=True)
    for line in sys.stdin:
        if line.strip() == "open":
            files = [open(sys.executable, "rb") for _ in range(10)]
            print("opened %d" % len(files), flush=True)
            for f in files:
                f.close()
        elif line.strip() == "counters":
            print(json.dumps(dict(server.counters.items())), flush=True)
    server.stop()
"""


def test_serve_leaves_the_application_its_fds_under_a_64_fd_limit() -> None:
    child = child_process(SERVE)
    held: List[socket.socket] = []
    try:
        assert child.stdout is not None and child.stdin is not None
        port = int(child.stdout.readline())
        for _ in range(70):
            held.append(connect(port))
        time.sleep(0.3)  # all accepted (or refused)
        child.stdin.write("open\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "opened 10"  # no EMFILE for the app
        reply = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        [(status, headers, body)] = parse(reply)
        assert status == 200 and headers["content-type"].startswith("text/plain")
        list(text_string_to_metric_families(body.decode()))
        time.sleep(PROBATION + 0.5)  # those on probation are gone too
        child.stdin.write("counters\n")
        child.stdin.flush()
        counters = json.loads(child.stdout.readline())
        # 16 connections in place (a quarter of 64); of the 54 beyond, some
        # waited on probation, the rest were refused; the scrape took the
        # oldest place (one more hit).
        assert counters == {"max_connections": 70 - 16 + 1}
    finally:
        for sock in held:
            sock.close()
        finish(child)


# -- serve() and many slow clients ------------------------------------------------


@pytest.mark.usefixtures("registry")
def test_serve_holds_700_slow_clients_on_a_few_threads() -> None:
    name = "slow_hits"
    hits = stats.Int64(name, "hits", "1")
    metric.Scalar(name, "hits").count_int64(hits)
    hits.record(None, 7)
    threads_before = threading.active_count()
    limits = Limits(max_connections=50, header_timeout=30, workers=2)
    with prometheus.new(namespace="slow").serve(port=0, limits=limits) as server:
        slow: List[socket.socket] = []
        stop = threading.Event()
        sender: Optional[threading.Thread] = None
        head = b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 1000

        def trickle() -> None:
            alive = list(slow)
            for i in range(len(head)):
                for sock in list(alive):
                    try:
                        sock.send(head[i:i + 1])
                    except OSError:  # closed to make room
                        alive.remove(sock)
                if stop.wait(0.1):
                    return

        try:
            for _ in range(700):
                slow.append(connect(server.port))
            wait_until(lambda: server.counters.get("max_connections") == 650, 10, "650 closed")
            sender = threading.Thread(target=trickle)
            sender.start()
            time.sleep(0.3)
            assert threading.active_count() <= min(32, threads_before + 4)  # loop, 2 workers
            start = time.monotonic()
            reply = exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: close\r\n\r\n")
            assert time.monotonic() - start < 10
            [(status, _, body)] = parse(reply)
            assert status == 200 and b"\nslow_%s_total 1\n" % name.encode() in body
            assert server.counters.items() == [("max_connections", 651)]
            assert threading.active_count() <= min(32, threads_before + 4)
        finally:
            stop.set()
            if sender is not None:
                sender.join(10)
            for sock in slow:
                sock.close()
