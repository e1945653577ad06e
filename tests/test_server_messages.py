"""_server.messages: a request head read, a response written, without sockets."""

from __future__ import annotations

import h11

from gotools_compat._server.messages import (Response, h11_bytes, head_size, header_dict,
                                             peer_host)

RAW = (b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept: text/plain\r\n"
       b"accept: application/json\r\n\r\n")


def read_head(raw: bytes = RAW) -> h11.Request:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    return event


def test_headers_by_lower_case_name_repeated_ones_joined() -> None:
    assert header_dict(read_head()) == {"host": "a", "accept": "text/plain, application/json"}


def test_head_size_is_the_bytes_the_client_sent() -> None:
    assert head_size(read_head()) == len(RAW)


def answered(method: bytes) -> h11.Connection:
    """A server connection that has read a whole request and owes its response."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(RAW.replace(b"GET", method))
    conn.next_event()
    conn.next_event()  # EndOfMessage
    return conn


def test_a_response_in_pieces_keeps_its_pieces_and_counts_their_length() -> None:
    response = Response(200, [b"ab", b"", b"cde"], [("Content-Type", "x/y")])
    head, pieces, tail, size = h11_bytes(answered(b"GET"), response, False)
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Type: x/y\r\nContent-Length: 5\r\n\r\n")
    assert (b"".join(pieces), len(pieces), tail, size) == (b"abcde", 2, b"", 5)


def test_a_head_request_gets_the_length_but_no_body_and_close_is_said() -> None:
    conn = answered(b"HEAD")
    head, pieces, tail, size = h11_bytes(conn, Response(200, b"hello", close=True), True)
    assert head == (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
    assert (pieces, tail, size) == ([], b"", 5)
    assert conn.our_state is h11.MUST_CLOSE


def test_a_peer_is_its_host_or_local() -> None:
    assert [peer_host(("127.0.0.2", 5)), peer_host(("::1", 5, 0, 0)), peer_host(""),
            peer_host(None)] == ["127.0.0.2", "::1", "local", "local"]
