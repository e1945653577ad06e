"""A gRPC connection's bytes, piped to grpcio's private unix socket and back.

grpcio cannot share its port, so a connection that starts with the HTTP/2
preface is joined to a connection of grpcio's own; each side's write buffer
pauses the other side's reading (no unbounded buffering either way).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .http1 import Connection
    from .server import Server

logger = logging.getLogger(__name__)

OUT_OF_FDS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


class _Upstream(asyncio.Protocol):
    """grpcio's side of a gRPC connection: what it sends goes to the client."""

    def __init__(self, conn: "Connection") -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        transport = self.conn.transport
        if transport is not None:
            transport.write(data)

    def pause_writing(self) -> None:
        if self.conn.transport is not None:
            self.conn.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.conn.transport is not None:
            self.conn.transport.resume_reading()

    def eof_received(self) -> Optional[bool]:
        self.conn.close()
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.conn.close()


async def pump(server: "Server", conn: "Connection", target: str, head: bytes) -> None:
    """Join ``conn`` (its reading paused) to grpcio at ``target``, ``head`` first."""
    try:
        transport, _ = await server.loop.create_unix_connection(lambda: _Upstream(conn),
                                                                target)
    except OSError as exc:
        if exc.errno in OUT_OF_FDS:
            server.counters.hit("fd_limit", "gRPC connection from %s closed: %s",
                                conn.peer, exc.strerror or exc)
        else:
            logger.warning("cannot reach the gRPC server for %s: %s", conn.peer, exc)
        conn.close()
        return
    if conn.transport is None or conn.transport.is_closing():
        transport.close()
        return
    conn.upstream = transport
    transport.write(head)
    conn.transport.resume_reading()
