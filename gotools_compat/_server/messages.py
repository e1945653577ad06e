"""What a handler sees and returns (a request read whole, and its response), and their bytes."""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import parse_qs, urlsplit

import h11

REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            408: b"Request Timeout", 411: b"Length Required", 413: b"Content Too Large",
            431: b"Request Header Fields Too Large", 500: b"Internal Server Error",
            503: b"Service Unavailable"}


class Request:
    """A complete request as a handler sees it."""

    __slots__ = ("method", "target", "path", "headers", "body", "peer", "received")

    def __init__(self, method: str, target: str, headers: Dict[str, str], body: bytes,
                 peer: str) -> None:
        self.received = time.monotonic()  # when it was read whole
        self.method = method
        self.target = target
        self.path = urlsplit(target).path
        self.headers = headers  # names in lower case; repeated headers joined with ", "
        self.body = body
        self.peer = peer

    def query(self, name: str, default: str = "") -> str:
        values = parse_qs(urlsplit(self.target).query).get(name)
        return values[0] if values else default


class Response:
    """What a handler returns; ``close`` ends the connection after it.

    ``body`` may be a list of pieces: they are sent one after the other,
    never joined (a large exposition is never copied whole)."""

    __slots__ = ("status", "headers", "body", "close")

    def __init__(self, status: int, body: Union[bytes, List[bytes]] = b"",
                 headers: Optional[List[Tuple[str, str]]] = None, close: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        self.close = close


def error_response(status: int, message: str, close: bool = False) -> Response:
    body = json.dumps({"error": message}).encode("utf-8") + b"\n"
    return Response(status, body, [("Content-Type", "application/json")], close)


def raw_response(response: Response, head_request: bool) -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (response.status, REASONS.get(response.status, b""))]
    lines += [b"%s: %s" % (k.encode("latin-1"), v.encode("latin-1"))
              for k, v in response.headers]
    body = response.body if isinstance(response.body, bytes) else b"".join(response.body)
    lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head_request else body)


def h11_bytes(conn: h11.Connection, response: Response, head_request: bool
              ) -> Tuple[bytes, List[Any], bytes, int]:
    """``response`` through ``conn``'s state machine: (head, body pieces, tail, body size).

    The pieces are h11's, not joined.  Raises ``h11.LocalProtocolError`` for a
    header h11 refuses (a handler's bug)."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    pieces = [response.body] if isinstance(response.body, bytes) else response.body
    size = sum(map(len, pieces))
    headers.append((b"Content-Length", b"%d" % size))
    if response.close:
        headers.append((b"Connection", b"close"))
    head = conn.send(h11.Response(status_code=response.status, headers=headers,
                                  reason=REASONS.get(response.status, b"")))
    out: List[Any] = []
    for piece in pieces if not head_request else ():
        if piece:
            out += conn.send_with_data_passthrough(h11.Data(data=piece)) or ()
    tail = conn.send(h11.EndOfMessage())
    assert head is not None
    return head, out, tail or b"", size


def head_size(head: h11.Request) -> int:
    """A request head's bytes as sent (h11 bounds only a head still incomplete)."""
    return len(head.method) + len(head.target) + 14 + sum(
        len(n) + len(v) + 4 for n, v in head.headers)


def header_dict(head: h11.Request) -> Dict[str, str]:
    """A request's headers by lower-case name, repeated ones joined with ", "."""
    headers: Dict[str, str] = {}
    for name, value in head.headers:
        key = name.decode("ascii")
        text = value.decode("latin-1")
        headers[key] = headers[key] + ", " + text if key in headers else text
    return headers


def peer_host(address: Any) -> str:
    """The host part of a peer's address ("local" for a unix socket's)."""
    if isinstance(address, tuple) and address:
        return str(address[0])
    return "local"
