"""gotools_compat._server.http1: RFC 9112 framing, sizes, Expect, pipelining, HEAD, errors.

A tiny echoing handler on a bare :class:`Server`; every refusal is checked for
its status, for the connection being closed and for the bytes after it never
reaching a handler (no request smuggling).
"""

from __future__ import annotations

import json
import socket
import threading
from typing import List, Tuple

import pytest

from gotools_compat._server import Server
from tests.front_door import Echo, connect, exchange, parse, read_to_eof, statuses

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: x\r\n"


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


BAD_FRAMING = {
    "content-lengths-differ": b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "content-length-and-chunked": b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  + chunked(b"abc"),
    "xchunked": b"Transfer-Encoding: xchunked\r\n\r\n" + chunked(b"abc"),
    "chunked-gzip": b"Transfer-Encoding: chunked, gzip\r\n\r\n" + chunked(b"abc"),
    "gzip-chunked": b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(b"abc"),
    "chunk-size--1": b"Transfer-Encoding: chunked\r\n\r\n-1\r\nabcde\r\n0\r\n\r\n",
    "chunk-size-0x10": b"Transfer-Encoding: chunked\r\n\r\n0x10\r\n" + b"a" * 16
                       + b"\r\n0\r\n\r\n",
    "chunk-size-+5": b"Transfer-Encoding: chunked\r\n\r\n+5\r\nabcde\r\n0\r\n\r\n",
    "chunk-size-1_0": b"Transfer-Encoding: chunked\r\n\r\n1_0\r\n" + b"a" * 16
                      + b"\r\n0\r\n\r\n",
    "chunk-size-space-5": b"Transfer-Encoding: chunked\r\n\r\n 5\r\nabcde\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMING))
def test_bad_framing_is_400_and_the_connection_closed(
        served: Tuple[Server, int], echo: Echo, case: str) -> None:
    server, port = served
    # read_to_eof returns only once the server has closed the connection.
    reply = exchange(port, POST + BAD_FRAMING[case] + SMUGGLED)
    [(status, headers, body)] = parse(reply)  # one response: the rest was never read
    assert status == 400 and headers["connection"] == "close"
    assert json.loads(body)["error"]
    assert echo.requests == []  # neither the body nor the smuggled request reached a handler
    assert server.counters.get("bad_framing") == 1
    after = b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert statuses(exchange(port, after)) == [200]
    assert echo.paths() == ["/after"]


def test_a_repeated_content_length_of_the_same_value_is_accepted(
        served: Tuple[Server, int], echo: Echo) -> None:
    reply = exchange(port=served[1], data=POST + b"Content-Length: 3\r\nContent-Length: 3\r\n"
                     b"Connection: close\r\n\r\nabc")
    assert [(s, b) for s, _, b in parse(reply)] == [(200, b"abc")]
    assert echo.requests[0].body == b"abc"


def test_a_chunked_body_is_received_whole(served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    body = chunked(b"abc", b"d" * 300, b"\r\n0\r\n", b"e")
    with connect(port) as sock:
        head = POST + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        sock.sendall(head + body[:7])
        for i in range(7, len(body), 97):  # split across chunk boundaries and sizes
            sock.sendall(body[i:i + 97])
        reply = read_to_eof(sock)
    expected = b"abc" + b"d" * 300 + b"\r\n0\r\n" + b"e"
    assert [(s, b) for s, _, b in parse(reply)] == [(200, expected)]
    assert echo.requests[0].body == expected
    assert server.counters.items() == []


def test_a_chunked_body_over_the_limit_is_413(served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    reply = exchange(port, POST + b"Transfer-Encoding: chunked\r\n\r\n"
                     + chunked(b"a" * 600, b"b" * 600) + SMUGGLED)
    [(status, _, body)] = parse(reply)
    assert status == 413
    assert json.loads(body) == {"error": "request body exceeds the limit of 1000 bytes"}
    # One huge chunk is refused as soon as the bytes over the bound arrive.
    reply = exchange(port, POST + b"Transfer-Encoding: chunked\r\n\r\nfffffffffff\r\n"
                     + b"a" * 1001)
    assert statuses(reply) == [413]
    assert echo.requests == [] and server.counters.get("max_body_bytes") == 2


def test_a_negative_chunk_size_never_passes_the_bound(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    reply = exchange(port, POST + b"Transfer-Encoding: chunked\r\n\r\n-1\r\n" + b"a" * 5000
                     + b"\r\n0\r\n\r\n")
    assert statuses(reply) == [400]
    assert echo.requests == [] and server.counters.get("max_body_bytes") == 0


def test_a_content_length_over_the_limit_is_413_before_the_body_is_sent(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    with connect(port) as sock:
        sock.sendall(POST + b"Content-Length: 1001\r\n\r\n")  # and not one byte of the body
        reply = read_to_eof(sock)
    [(status, _, body)] = parse(reply)
    assert status == 413
    assert json.loads(body) == {"error": "request body of 1001 bytes exceeds the limit of "
                                         "1000 bytes"}
    assert echo.requests == [] and server.counters.get("max_body_bytes") == 1


def test_the_413_reaches_a_client_that_keeps_sending(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    size = 4 * 1024 * 1024
    errors: List[BaseException] = []
    with connect(port) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % size)

        def send_body() -> None:
            try:
                sock.sendall(b"x" * size)
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:  # a reset: the response would be lost with it
                errors.append(exc)

        sender = threading.Thread(target=send_body)
        sender.start()
        sender.join(30)
        reply = read_to_eof(sock)
    assert errors == []
    [(status, _, body)] = parse(reply)
    assert status == 413 and b"exceeds the limit of 1000 bytes" in body
    assert echo.requests == []


def test_a_head_over_max_header_bytes_is_431(served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    big = b"X-Big: " + b"a" * 2000 + b"\r\n"
    # Whole in one segment, and trickled so that h11 sees it incomplete.
    assert statuses(exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")) == [431]
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for i in range(0, len(big), 500):
            sock.sendall(big[i:i + 500])
        reply = read_to_eof(sock)
    [(status, _, body)] = parse(reply)
    assert status == 431 and b"invalid HTTP/1.1 request" in body
    assert echo.requests == [] and server.counters.get("max_header_bytes") == 2
    # Just under the bound is served.
    fits = b"X-Fits: " + b"a" * 900 + b"\r\n"
    reply = exchange(port, b"GET /fits HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + fits
                     + b"\r\n")
    assert statuses(reply) == [200] and echo.paths() == ["/fits"]


def test_expect_100_continue_gets_100_then_the_response(
        served: Tuple[Server, int], echo: Echo) -> None:
    _, port = served
    with connect(port) as sock:
        sock.sendall(POST + b"Content-Length: 5\r\nExpect: 100-continue\r\n"
                     b"Connection: close\r\n\r\n")
        interim = sock.recv(65536)  # before any byte of the body was sent
        assert interim.startswith(b"HTTP/1.1 100 ") and interim.endswith(b"\r\n\r\n")
        sock.sendall(b"hello")
        reply = read_to_eof(sock)
    assert [(s, b) for s, _, b in parse(interim + reply)] == [(100, b""), (200, b"hello")]
    assert echo.requests[0].body == b"hello"


def test_expect_100_continue_over_the_limit_gets_413_and_no_100(
        served: Tuple[Server, int], echo: Echo) -> None:
    reply = exchange(served[1], POST + b"Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
    assert statuses(reply) == [413] and echo.requests == []


def test_pipelined_requests_are_answered_in_order(
        served: Tuple[Server, int], echo: Echo) -> None:
    _, port = served
    reply = exchange(port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nbb"
                           b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunked(b"c", b"cc")
                     + b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    replies = parse(reply)
    assert [(s, h["x-path"], b) for s, h, b in replies] == [
        (200, "/a", b"hello"), (200, "/b", b"bb"), (200, "/c", b"ccc"), (200, "/d", b"hello")]
    assert echo.paths() == ["/a", "/b", "/c", "/d"]


def test_head_gets_the_headers_with_content_length_and_no_body(
        served: Tuple[Server, int], echo: Echo) -> None:
    _, port = served
    reply = exchange(port, b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, sep, rest = reply.partition(b"\r\n\r\n")
    assert sep and b"\r\nContent-Length: 5" in head and b"X-Method: HEAD" in head
    # The next response follows the head at once: the HEAD response had no body.
    assert rest.startswith(b"HTTP/1.1 200 ")
    assert [(s, b) for s, _, b in parse(rest)] == [(200, b"hello")]
    assert echo.paths() == ["/h", "/g"]


def test_a_refused_head_request_gets_no_body_either(
        served: Tuple[Server, int], echo: Echo) -> None:
    _, port = served
    for data, status in ((b"HEAD / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          b"-1\r\n", 400),
                         (b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413),
                         (b"HEAD / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431)):
        reply = exchange(port, data)
        [(got, headers, body)] = parse(reply, head_request=True)  # nothing after the head
        assert got == status and int(headers["content-length"]) > 0 and body == b""
        assert headers["connection"] == "close"
    assert echo.requests == []


def test_a_handler_exception_is_500_and_the_next_connection_works(
        served: Tuple[Server, int], echo: Echo, caplog: pytest.LogCaptureFixture) -> None:
    _, port = served
    reply = exchange(port, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /lost HTTP/1.1\r\n"
                           b"Host: x\r\n\r\n")
    [(status, headers, body)] = parse(reply)
    assert status == 500 and headers["connection"] == "close"
    assert json.loads(body) == {"error": "internal error"}
    assert "GET /boom from 127.0.0.1 failed" in caplog.text
    reply = exchange(port, b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [(s, b) for s, _, b in parse(reply)] == [(200, b"hello")]
    assert echo.paths() == ["/boom", "/next"]


def test_an_unknown_method_is_405_from_early_without_reading_the_body(
        served: Tuple[Server, int], echo: Echo) -> None:
    _, port = served
    with connect(port) as sock:
        sock.sendall(b"BREW /pot HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n")
        reply = read_to_eof(sock)  # answered though the body never comes
    [(status, _, body)] = parse(reply)
    assert status == 405 and json.loads(body) == {"error": "method BREW not allowed"}
    assert echo.requests == []


def test_keep_alive_serves_requests_one_after_another(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    with connect(port) as sock:
        for i in range(3):
            sock.sendall(POST + b"Content-Length: 1\r\n\r\n%d" % i)
            reply = b""
            while not reply.endswith(b"%d" % i):
                reply += sock.recv(65536)
            assert [(s, b) for s, _, b in parse(reply)] == [(200, b"%d" % i)]
        assert server.connection_count() == 1
    assert [r.body for r in echo.requests] == [b"0", b"1", b"2"]


def test_a_client_leaving_mid_request_is_no_framing_error(
        served: Tuple[Server, int], echo: Echo) -> None:
    server, port = served
    for partial in (b"GET /x HTTP/1.1\r\nHo", b"POST /x HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 10\r\n\r\nabc"):
        reply = exchange(port, partial, half_close=True)
        assert statuses(reply) in ([], [400])  # answered or not: it has gone
    reply = exchange(port, b"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                           b"Content-Length: 2\r\n\r\n", half_close=True)
    assert statuses(reply) == [400]
    assert server.counters.items() == [("bad_framing", 1)]  # the last one only
    assert echo.paths() == []
