"""The server: listeners and connections on one event loop thread, handlers on a few workers.

Bounded everywhere a client could make it hold something: connections in
all and per peer (who gets one at the bound: :mod:`.admission`), the time of
each phase of a request, body and head sizes (see :class:`~.limits.Limits`).  At the fd
limit accepting pauses, retried every 100 ms and whenever a connection
closes, with one WARNING when the episode starts and one INFO when it ends.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from typing import Callable, Hashable, List, Optional, Protocol

from . import gil_sockets, grpc_pipe
from .admission import Admission, Listener
from .http1 import Connection
from .jobs import Jobs
from .limits import Counters, Limits
from .messages import Request, Response, error_response, peer_host

logger = logging.getLogger(__name__)

_RETRY_ACCEPT = 0.1
_ACCEPTS_PER_WAKEUP = 64
BACKLOG = 1024


class Handler(Protocol):
    """What a server serves; ``handle`` runs on a worker thread, ``early`` on the loop.

    It may also have ``share_key(request) -> Optional[Hashable]``, called on
    the loop: requests with one key (not None) that wait together get one
    answer (see :mod:`.jobs`).
    """

    def early(self, method: str, target: str) -> Optional[Response]:
        """A response to send instead of reading the body (then the connection closes)."""

    def handle(self, request: Request) -> Response: ...


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket; OSError (EADDRINUSE...) goes to the caller."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


class Server(Admission):
    """One event loop thread serving ``handler`` on any number of listeners."""

    def __init__(self, handler: Handler, limits: Optional[Limits] = None, *,
                 name: str = "gotools_compat", fds_per_connection: int = 1) -> None:
        self.handler = handler
        self.limits = limits = limits or Limits()
        self.counters = Counters()
        self.max_connections, self.max_per_peer = limits.connections(fds_per_connection)
        self.loop = gil_sockets.new_event_loop()
        self._name = name
        self._listeners: List[Listener] = []
        self._init_admission()
        self._jobs = Jobs(self._call, self.loop.call_soon_threadsafe, self.loop.call_later,
                          limits.share_budget)
        self._share_key: Callable[[Request], Optional[Hashable]] = getattr(
            handler, "share_key", lambda request: None)
        self._workers: List[threading.Thread] = []
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------

    def listen(self, host: str, port: int, grpc_target: Optional[str] = None) -> int:
        """Bind now (OSError to the caller), serve once started; the port bound.

        ``grpc_target``: a unix socket path of grpcio's server; connections that
        start with the HTTP/2 preface are piped there."""
        sock = bind(host, port)
        sock.setblocking(False)
        listener = Listener(sock, grpc_target)
        self._listeners.append(listener)
        if self._thread is not None:
            self.loop.call_soon_threadsafe(self._watch, listener)
        return int(sock.getsockname()[1])

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            for listener in self._listeners:
                self._watch(listener)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name=self._name + "-loop", daemon=True)
        self._thread.start()
        for i in range(self.limits.workers):
            worker = threading.Thread(target=self._jobs.run, name="%s-worker-%d" % (self._name, i),
                                      daemon=True)
            worker.start()
            self._workers.append(worker)
        ready.wait()

    def stop(self, grace: float = 2.0) -> None:
        """Close the listeners and every connection; idempotent."""
        thread = self._thread
        if thread is None:  # never started (or stopped): nothing runs on the loop
            for listener in self._listeners:
                listener.sock.close()
            self._listeners = []
            if not self.loop.is_closed() and not self.loop.is_running():
                self.loop.close()  # now, not in a __del__ at exit
            return
        self._thread = None
        done = threading.Event()

        def shut() -> None:
            for listener in self._listeners:
                self.loop.remove_reader(listener.sock.fileno())
                listener.sock.close()
            self._listeners = []
            for conn in list(self._connections):
                conn.close()
            for sock, _, _, _ in self._pending:
                sock.close()
            self._pending = []
            self.loop.call_soon(done.set)

        self.loop.call_soon_threadsafe(shut)
        done.wait(grace)
        self._jobs.stop(len(self._workers))
        for worker in self._workers:
            worker.join(grace)
        self._workers = []
        self.loop.call_soon_threadsafe(self.loop.stop)
        thread.join(grace)
        if not thread.is_alive():
            self.loop.close()

    # -- accepting ---------------------------------------------------------------

    def _watch(self, listener: Listener) -> None:
        self.loop.add_reader(listener.sock.fileno(), self._accept, listener)

    def _accept(self, listener: Listener) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                sock, address = gil_sockets.accept(listener.sock)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in grpc_pipe.OUT_OF_FDS:
                    self._pause_accepting(exc)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that client gave up already
                self.counters.hit("accept_error", "accept failed: %s", exc)
                return
            if self._paused_at is not None:
                logger.info("accepting connections again, after %.1f s at the open-files limit",
                            self.loop.time() - self._paused_at)
                self._paused_at = None
            self._admit(sock, peer_host(address), listener)

    def _pause_accepting(self, exc: OSError) -> None:
        for listener in self._listeners:
            self.loop.remove_reader(listener.sock.fileno())
        if self._paused_at is None:
            self._paused_at = self.loop.time()
            self.counters.hit("fd_limit", "accept paused at the open-files limit (%s), %d "
                              "connections open; it resumes by itself",
                              exc.strerror or exc, len(self._connections))
        if self._retry is None:
            self._retry = self.loop.call_later(_RETRY_ACCEPT, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._retry = None
        for listener in self._listeners:
            self._watch(listener)

    # -- handlers and gRPC pumps -------------------------------------------------

    def start_pump(self, conn: Connection, target: str, head: bytes) -> None:
        self.loop.create_task(grpc_pipe.pump(self, conn, target, head))

    def run_handler(self, conn: Connection, request: Request) -> None:
        self._jobs.put(conn, request, self._share_key(request))

    def _call(self, request: Request) -> Response:
        try:
            return self.handler.handle(request)
        except Exception:  # a handler's bug must not take the connection's loop down
            logger.exception("%s %s from %s failed", request.method, request.path, request.peer)
            return error_response(500, "internal error", close=True)
