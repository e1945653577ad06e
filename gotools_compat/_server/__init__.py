"""The network front door shared by ``gotools-agent`` and the in-process ``serve()``.

An asyncio event loop on one thread holds every connection; HTTP/1.1 is read
with h11 (strict RFC 9112 framing), gRPC connections on a listener that takes
them are piped to grpcio; handlers run on a small pool of worker threads.
Everything a client can make the server hold is bounded (:class:`Limits`).
"""

from .messages import Request, Response, error_response
from .limits import Counters, Limits, fd_limit, raise_fd_limit
from .server import Handler, Server, bind

__all__ = ["Counters", "Handler", "Limits", "Request", "Response", "Server", "bind",
           "error_response", "fd_limit", "raise_fd_limit"]
