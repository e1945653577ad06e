"""One listen address for gRPC and HTTP/1.1, as the original agent had.

grpcio cannot share its port, so the agent owns the TCP socket: each
connection's first bytes are peeked; HTTP/2 (the ``PRI * HTTP/2.0`` preface,
which every gRPC client sends first) is pumped to grpcio listening on a
private unix socket, everything else is served as HTTP/1.1 in the
connection's thread.
"""

from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from typing import Any, Callable, Optional, Set, Tuple

logger = logging.getLogger(__name__)

_PREFACE = b"PRI "
_BUFFER = 256 * 1024


def _peer(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host = address[0]
        return ("[%s]:%d" if ":" in host else "%s:%d") % (host, address[1])
    return str(address) or "local"


def _pipe(src: socket.socket, dst: socket.socket) -> int:
    """Copy until EOF or error; then end the writing side of dst."""
    buffer = bytearray(_BUFFER)
    view = memoryview(buffer)
    total = 0
    try:
        while True:
            n = src.recv_into(buffer)
            if not n:
                break
            dst.sendall(view[:n])
            total += n
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    return total


class Mux:
    """Accepts on ``listener``; gRPC to ``connect_grpc()``, HTTP/1.1 to ``serve_http``."""

    def __init__(self, listener: socket.socket, connect_grpc: Callable[[], socket.socket],
                 serve_http: Callable[[socket.socket, Any], None],
                 first_byte_timeout: float = 30.0) -> None:
        self._listener = listener
        self._connect_grpc = connect_grpc
        self._serve_http = serve_http
        self._first_byte_timeout = first_byte_timeout
        self._lock = threading.Lock()
        self._open: Set[socket.socket] = set()
        self._stopping = False
        self._waker_r, self._waker_w = socket.socketpair()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self._listener.setblocking(False)
        self._thread = threading.Thread(target=self._accept_loop, name="gotools-agent-accept",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and end every open connection."""
        with self._lock:
            self._stopping = True
            connections = list(self._open)
        try:
            self._waker_w.send(b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5.0)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._listener.close()
        self._waker_r.close()
        self._waker_w.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._waker_r, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self._waker_r:
                        return
                    try:
                        conn, address = self._listener.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:
                        logger.warning("accept failed: %s", exc)
                        continue
                    conn.setblocking(True)
                    with self._lock:
                        if self._stopping:
                            conn.close()
                            return
                        self._open.add(conn)
                    threading.Thread(target=self._serve, args=(conn, address), daemon=True,
                                     name="gotools-agent-conn").start()

    def _serve(self, conn: socket.socket, address: Any) -> None:
        peer = _peer(address)
        kind = "idle"
        try:
            head = self._peek(conn)
            if head is None:
                return
            if head.startswith(_PREFACE):
                kind = "grpc"
                logger.info("client %s connected (gRPC)", peer)
                self._pump(conn, peer)
            else:
                kind = "http"
                logger.info("client %s connected (HTTP/1.1)", peer)
                conn.settimeout(None)
                self._serve_http(conn, address)
        except OSError as exc:  # the peer went away, or stop() ended the connection
            if self._stopping:
                logger.debug("connection from %s ended by the stop: %s", peer, exc)
            else:
                logger.warning("connection from %s failed: %s", peer, exc)
        except Exception:  # a failing connection must never take the agent down
            logger.warning("connection from %s failed", peer, exc_info=True)
        finally:
            with self._lock:
                self._open.discard(conn)
            try:
                conn.close()
            except OSError:
                pass
            if kind == "idle":
                logger.info("client %s sent nothing: connection closed", peer)
            else:
                logger.info("client %s disconnected (%s)", peer,
                            "gRPC" if kind == "grpc" else "HTTP/1.1")

    def _peek(self, conn: socket.socket) -> Optional[bytes]:
        """The first bytes, or None when the client sent nothing in time."""
        deadline = time.monotonic() + self._first_byte_timeout
        head = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                conn.settimeout(remaining)
                head = conn.recv(len(_PREFACE), socket.MSG_PEEK)
                if not head:
                    return None
                if len(head) >= len(_PREFACE) or not _PREFACE.startswith(head):
                    return head
                time.sleep(0.005)  # a partial preface: wait for the rest
        except (socket.timeout, OSError):
            return None

    def _pump(self, conn: socket.socket, peer: str) -> None:
        conn.settimeout(None)
        try:
            upstream = self._connect_grpc()
        except OSError as exc:
            logger.warning("cannot reach the gRPC server for %s: %s", peer, exc)
            return
        with self._lock:
            self._open.add(upstream)
        try:
            for sock in (conn, upstream):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass  # unix sockets
            inbound = threading.Thread(target=_pipe, args=(conn, upstream), daemon=True,
                                       name="gotools-agent-pump")
            inbound.start()
            _pipe(upstream, conn)
            # grpcio has closed its side: nothing the client sends matters now.
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            inbound.join()
        finally:
            with self._lock:
                self._open.discard(upstream)
            upstream.close()


def bind(host: str, port: int) -> Tuple[socket.socket, int]:
    """A listening TCP socket; OSError (EADDRINUSE...) goes to the caller."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=128)
    return listener, listener.getsockname()[1]
