"""One client connection: HTTP/1.1 read strictly with h11, or bytes pumped to grpcio.

A connection's first bytes decide: the HTTP/2 preface (``PRI ``, sent first
by every gRPC client) on a listener that takes gRPC makes it a pipe to
grpcio's private socket; anything else is HTTP/1.1.  Partial first bytes
wait for more, driven by the event loop (no re-reading, no polling).

HTTP/1.1 framing is RFC 9112's, strictly: h11 refuses conflicting
``Content-Length`` headers, any transfer coding but ``chunked`` and chunk
sizes that are not plain hex, and this module refuses ``Content-Length``
beside ``Transfer-Encoding``; each gets 400 and the connection is closed.
A handler runs on a worker thread while the connection reads nothing more;
its response leaves through an :class:`~.outbox.Outbox`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING, List, Optional

import h11

from .messages import (Request, Response, error_response, h11_bytes, head_size,
                       header_dict, raw_response)
from .outbox import Outbox, Piece

if TYPE_CHECKING:
    from .server import Server

# Seconds a connection admitted beyond a connection bound has to send a whole
# request head (see Server._admit).
PROBATION = 1.0

logger = logging.getLogger(__name__)

# The HTTP/2 client preface; every gRPC connection starts with it.
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# A gRPC connection's place in the eviction order follows its client's bytes,
# refreshed at most this often.
_GRPC_ACTIVITY = 1.0
# After a final response the connection reads (and drops) what the client
# still sends, so that closing does not reset the response away.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 64 * 1024 * 1024

# Phases; the ones a limit may end early are "waiting" (a gRPC connection
# waits for its client between messages: grpcio answers what it sends).
FIRST, HEAD, BODY, HANDLING, WRITING, IDLE, GRPC, LINGER, CLOSED = range(9)
WAITING = frozenset((FIRST, HEAD, BODY, IDLE, GRPC, LINGER))


class Connection(asyncio.Protocol):
    """A client connection; the server holds it in its registry until it closes."""

    def __init__(self, server: "Server", grpc_target: Optional[str], peer: str,
                 probation: Optional[str] = None) -> None:
        self.server = server
        self.peer = peer
        self.probation = probation  # the connection bound it was admitted beyond (Server)
        self.grpc = False
        self.phase = FIRST
        self.since = 0.0
        self.transport: Optional[asyncio.Transport] = None
        self._grpc_target = grpc_target
        self._sniffed = b""
        self._h11: Optional[h11.Connection] = None
        self._head: Optional[h11.Request] = None
        self._body: List[bytes] = []
        self._body_size = 0
        self._timer: Optional[asyncio.TimerHandle] = None
        self._write_paused = False
        self._out: Optional[Outbox] = None
        self._close_after = False
        self._eof = False
        self._lingered = 0
        self.upstream: Optional[asyncio.Transport] = None

    # -- the registry's view ---------------------------------------------------

    def _enter(self, phase: int, timeout: Optional[float]) -> None:
        server = self.server
        self.phase = phase
        self.since = server.loop.time()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout is not None:
            if self.probation:
                timeout = min(timeout, PROBATION)
            self._timer = server.loop.call_at(self.since + timeout, self._timed_out)
        server.moved(self)

    def _timed_out(self) -> None:
        self._timer = None
        if self.probation:
            self.server.probation_over(self)
            return
        phase = self.phase
        limits = self.server.limits
        if phase == LINGER:
            self.close()
            return
        cause, seconds = {FIRST: ("header_timeout", limits.header_timeout),
                          HEAD: ("header_timeout", limits.header_timeout),
                          BODY: ("body_timeout", limits.body_timeout),
                          IDLE: ("idle_timeout", limits.idle_timeout),
                          WRITING: ("write_timeout", limits.write_timeout)}[phase]
        if phase != IDLE:  # an idle keep-alive connection ending is routine
            self.server.counters.hit(cause, "%s: connection closed after %g s (%s)",
                                     self.peer, seconds, cause)
        if phase in (HEAD, BODY):
            self._refuse(408, "request not received in time (%s)" % cause)
        else:
            self.close()

    def close(self) -> None:
        if self.transport is not None and self.phase != CLOSED:
            self.transport.abort()

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=256 * 1024)
        self._enter(FIRST, self.server.limits.header_timeout)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.phase = CLOSED
        if self.upstream is not None:
            self.upstream.close()
        self.server.closed(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.phase == GRPC and self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.phase == GRPC and self.upstream is not None:
            self.upstream.resume_reading()
        elif self.phase == WRITING:  # progress: the write timeout starts again
            self._enter(WRITING, self.server.limits.write_timeout)
            self._feed()

    def eof_received(self) -> Optional[bool]:
        if self.phase == GRPC:
            if self.upstream is not None and self.upstream.can_write_eof():
                self.upstream.write_eof()
            return True  # keep our side open until grpcio has answered
        if self._h11 is not None and self.phase in (HEAD, BODY):
            self._eof = True  # what h11 makes of it is no framing error of the client's
            self._h11.receive_data(b"")
            self._process()
        return None  # close

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == GRPC:
            assert self.upstream is not None
            self.upstream.write(data)
            now = self.server.loop.time()
            if now - self.since >= _GRPC_ACTIVITY:
                self.since = now
                self.server.moved(self)
        elif self._h11 is not None:
            if phase == LINGER:
                self._lingered += len(data)
                if self._lingered > _LINGER_BYTES:
                    self.close()
                return
            if phase == IDLE:
                self._enter(HEAD, self.server.limits.header_timeout)
            self._h11.receive_data(data)
            self._process()
        else:
            self._sniff(data)

    # -- the first bytes --------------------------------------------------------

    def _sniff(self, data: bytes) -> None:
        head = self._sniffed + data
        if self._grpc_target is not None:
            if len(head) < len(PREFACE) and PREFACE.startswith(head):
                self._sniffed = head  # a partial preface: the loop calls again with more
                return
            if head.startswith(PREFACE):
                self._sniffed = b""
                self._start_grpc(head)
                return
        self._sniffed = b""
        limits = self.server.limits
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self._enter(HEAD, limits.header_timeout)
        self._h11.receive_data(head)
        self._process()

    def _promoted(self) -> bool:
        """Off probation with a place of its own, else refused (and False)."""
        if self.server.promote(self):
            self.probation = None
            return True
        return False

    def _start_grpc(self, head: bytes) -> None:
        assert self.transport is not None and self._grpc_target is not None
        if (self.probation and not self._promoted()) or not self.server.grpc_started(self):
            self.close()
            return
        self.transport.pause_reading()
        self._enter(GRPC, None)
        self.server.start_pump(self, self._grpc_target, head)

    # -- HTTP/1.1 ----------------------------------------------------------------

    def _process(self) -> None:
        conn = self._h11
        assert conn is not None
        while self.phase in (HEAD, BODY, IDLE):
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = 431 if exc.error_status_hint == 431 else 400
                cause = "max_header_bytes" if status == 431 else "bad_framing"
                if self._eof:  # the client went away mid-request
                    logger.debug("%s: closed mid-request: %s", self.peer, exc)
                else:
                    self.server.counters.hit(cause, "%s: request refused (%d): %s",
                                             self.peer, status, exc)
                self._refuse(status, "invalid HTTP/1.1 request: %s" % exc)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            kind = type(event)
            if kind is h11.Request:
                self._on_head(event)  # type: ignore[arg-type]
            elif kind is h11.Data:
                self._on_data(event.data)  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                self._dispatch()
            elif kind is h11.ConnectionClosed:
                self.close()
                return

    def _on_head(self, head: h11.Request) -> None:
        self._head = head
        # h11 bounds only a head still incomplete; one that came whole is measured here.
        limit = self.server.limits.max_header_bytes
        size = head_size(head)
        if size > limit:
            self.server.counters.hit("max_header_bytes", "%s: request refused (431): head of "
                                     "%d bytes", self.peer, size)
            self._refuse(431, "request head exceeds the limit of %d bytes" % limit)
            return
        if self.probation and not self._promoted():
            self._refuse(503, "too many connections, all busy; try again")
            return
        headers = header_dict(head)
        if "transfer-encoding" in headers and "content-length" in headers:
            self.server.counters.hit("bad_framing", "%s: request refused (400): %s",
                                     self.peer, "Content-Length with Transfer-Encoding")
            self._refuse(400, "Content-Length and Transfer-Encoding together")
            return
        self._headers = headers
        self._body = []
        self._body_size = 0
        limit = self.server.limits.max_body_bytes
        length = int(headers.get("content-length") or 0)
        if length > limit:
            self._too_large(length)
            return
        early = self.server.handler.early(head.method.decode("ascii"),
                                          head.target.decode("ascii", "replace"))
        if early is not None:
            self._final(early)
            return
        if self._h11 is not None and self._h11.they_are_waiting_for_100_continue:
            self._write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])))
        self._enter(BODY, self.server.limits.body_timeout)

    def _on_data(self, data: bytes) -> None:
        self._body_size += len(data)
        if self._body_size > self.server.limits.max_body_bytes:
            self._too_large(None)
            return
        self._body.append(data)

    def _too_large(self, length: Optional[int]) -> None:
        limit = self.server.limits.max_body_bytes
        self.server.counters.hit("max_body_bytes", "%s: request body of %s refused (limit %d "
                                 "bytes)", self.peer, "%d bytes" % length if length is not None
                                 else "more bytes", limit)
        self._refuse(413, "request body %sexceeds the limit of %d bytes"
                     % ("of %d bytes " % length if length is not None else "", limit))

    def _dispatch(self) -> None:
        head = self._head
        assert head is not None and self.transport is not None
        body = b"".join(self._body)
        self._body = []
        request = Request(head.method.decode("ascii"), head.target.decode("ascii", "replace"),
                          self._headers, body, self.peer)
        self._head = None
        self.transport.pause_reading()
        self._enter(HANDLING, None)
        self.server.run_handler(self, request)

    def respond(self, request: Request, response: Response) -> None:
        """Called on the loop with the handler's response."""
        if self.phase != HANDLING:
            return  # closed meanwhile
        conn = self._h11
        assert conn is not None and self.transport is not None
        try:
            head, out, tail, size = h11_bytes(conn, response, request.method == "HEAD")
        except h11.LocalProtocolError as exc:  # a handler's bad header: not the client's fault
            logger.error("%s: response could not be sent: %s", self.peer, exc)
            self.close()
            return
        self._close_after = conn.our_state is h11.MUST_CLOSE or response.close
        self._out = Outbox(head, out, tail, size)
        self._feed()

    def _paused(self) -> bool:
        return self._write_paused

    def _feed(self) -> None:
        out = self._out
        assert out is not None
        if out.feed(self._write, self._paused) and not self._write_paused:
            self._out = None
            self._sent()
        elif self.phase != WRITING:
            # Also a client that does not read what was written: its next request waits,
            # under the write timeout (else pipelined responses pile up here without bound).
            self._enter(WRITING, self.server.limits.write_timeout)

    def _sent(self) -> None:
        if self._close_after:
            self._linger()
        else:
            self._next_request()

    def _next_request(self) -> None:
        conn = self._h11
        assert conn is not None and self.transport is not None
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            self._linger()
            return
        conn.start_next_cycle()
        self._enter(IDLE, self.server.limits.idle_timeout)
        self.transport.resume_reading()
        self._process()  # a pipelined request may be buffered already

    def _write(self, data: Piece) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _final(self, response: Response) -> None:
        """Answer without reading the body, then close."""
        response.close = True
        head = self._head  # None: refused before its head was read
        self._write(raw_response(response, head is not None and head.method == b"HEAD"))
        self._linger()

    def _refuse(self, status: int, message: str) -> None:
        self._final(error_response(status, message, close=True))

    def _linger(self) -> None:
        """Close once the client has read the response: half-close, drop what comes."""
        transport = self.transport
        assert transport is not None
        if self.phase == LINGER:
            return
        self._enter(LINGER, _LINGER_SECONDS)
        if self._h11 is None:
            self._h11 = h11.Connection(h11.SERVER)
        transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
        else:  # pragma: no cover - transports without half-close
            transport.close()
