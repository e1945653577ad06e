"""The last export, at close and at interpreter exit: how long to wait for it.

A close waits for its last export at most its ``timeout``, and only while
the export could still arrive.  An agent that refuses the connection
(nothing listens on its port), that has no route, or whose name does not
resolve will not take it however long we wait, while the transports keep
retrying until their deadline (gRPC waits for the channel to be ready, the
OTLP exporters back off and retry).  So when the last export is not done
after :data:`PROBE_AFTER`, one plain TCP connection to the address tells
which case it is (:func:`refusal`).  Refused (or no route, no such name):
the close gives up at once.  Accepted (a hung or stopped agent accepts, or
the kernel does for it) or unanswered: the export may still arrive, and the
close waits for it until the timeout.

Also here: the exit path of Pythons that start no thread at exit
(:func:`threads_can_start`, :func:`post`).
"""

from __future__ import annotations

import errno
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.parse
from typing import Callable, List, Optional, Sequence, Tuple

# A last export that takes longer than this is checked on.  A working agent
# on this machine answers well within it, so it sees no probe.
PROBE_AFTER = 0.05

Address = Tuple[str, int]

# connect() errors after which nothing can arrive (ECONNREFUSED is
# ConnectionRefusedError).  A timeout is not one: the agent may yet answer.
_GONE = {getattr(errno, name) for name in (
    "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "EHOSTDOWN", "EADDRNOTAVAIL")
    if hasattr(errno, name)}


def left(deadline: float, most: Optional[float] = None) -> float:
    """Seconds until ``deadline`` (at least 0, at most ``most``)."""
    seconds = max(deadline - time.monotonic(), 0.0)
    return seconds if most is None else min(seconds, most)


def address(endpoint: Optional[str]) -> Optional[Address]:
    """``(host, port)`` of ``host:port``, ``[v6]:port`` or a URL; None when it has no port."""
    if not endpoint:
        return None
    if "://" in endpoint:
        try:
            url = urllib.parse.urlsplit(endpoint)
            port = url.port or {"http": 80, "https": 443}.get(url.scheme.lower())
        except ValueError:
            return None
        return (url.hostname, port) if url.hostname and port else None
    host, _, port_text = endpoint.rpartition(":")
    host = host.strip("[]")
    return (host, int(port_text)) if host and port_text.isdigit() else None


def wait(done: Callable[[float], bool], where: Optional[Address],
         deadline: float) -> Optional[str]:
    """Wait for the last export until ``deadline``; why it cannot arrive, or None.

    ``done(seconds)`` waits at most that long and says whether the export
    ended.  None: it ended, or the deadline passed.  A string: ``where``
    refused the connection (or cannot be reached at all), returned at once.
    """
    if done(left(deadline, PROBE_AFTER)):
        return None
    if where is None:  # no address to ask: the export may still arrive
        done(left(deadline))
        return None
    why = refusal(where[0], where[1], deadline)
    if why is not None and not done(0.0):
        return why
    done(left(deadline))
    return None


def refusal(host: str, port: int, deadline: float) -> Optional[str]:
    """Why no connection to ``host:port`` can be made now, or None if one can (or may).

    A name's lookup may hang: it runs on a thread, which is given up at the
    deadline (inline where no thread can start).  An IP address is
    connected to from this thread.
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return _probe(host, port, deadline)
    found: List[Optional[str]] = []
    finished = threading.Event()

    def run() -> None:
        try:
            found.append(_probe(host, port, deadline))
        finally:
            finished.set()

    try:
        threading.Thread(target=run, name="gotools-reach", daemon=True).start()
    except RuntimeError:  # at exit on 3.12.0 and 3.12.1
        return _probe(host, port, deadline)
    finished.wait(left(deadline))
    return found[0] if found else None


def _probe(host: str, port: int, deadline: float) -> Optional[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return "cannot resolve %s: %s" % (host, e.strerror or e)
    except OSError:
        return None
    reasons = []
    for family, type_, proto, _, sockaddr in infos:
        seconds = left(deadline)
        if seconds <= 0:
            return None
        try:
            with socket.socket(family, type_, proto) as sock:
                sock.settimeout(seconds)
                sock.connect(sockaddr)
        except OSError as e:
            if not isinstance(e, ConnectionRefusedError) and e.errno not in _GONE:
                return None  # a timeout, or nothing we know: it may still answer
            reasons.append("%s port %d: %s" % (sockaddr[0], port,
                                               (e.strerror or str(e)).lower()))
            continue
        return None  # something listens there
    return "; ".join(reasons) or None


def joined(thread: threading.Thread) -> Callable[[float], bool]:
    """A ``done`` for :func:`wait`: joins ``thread`` for that long; True once it ended."""

    def done(seconds: float) -> bool:
        thread.join(seconds)
        return not thread.is_alive()

    return done


def threads_can_start() -> bool:
    """False at interpreter exit on the Pythons that then refuse new threads.

    CPython 3.12.0 and 3.12.1 refuse them even in exit hooks, and every gRPC
    call on an idle channel starts one (a fixed bug from 3.12.2 on).
    """
    try:
        thread = threading.Thread(target=lambda: None, name="gotools-probe")
        thread.start()
    except RuntimeError:
        return False
    thread.join()
    return True


def post(target: str, tls: bool, ca_file: Optional[str], headers: Sequence[Tuple[str, str]],
         metrics: Sequence[bytes], trace: Sequence[bytes], deadline: float) -> Optional[str]:
    """The ocagent request bodies over HTTP/1.1, on this thread; None, or why not all went.

    Binary protobuf, ``POST /v1/metrics`` and ``/v1/trace``, as gotools-agent
    takes them on its one port: the exit path for when gRPC cannot start
    its threads.  A refusal fails at once; the whole ends by ``deadline``.
    """
    requests = [("/v1/metrics", metrics), ("/v1/trace", trace)]
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    conn: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context(cafile=ca_file)
        conn = http.client.HTTPSConnection(host, int(port), timeout=left(deadline),
                                           context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=left(deadline))
    sent = dict(headers)
    sent["Content-Type"] = "application/x-protobuf"
    try:
        for path, bodies in requests:
            for body in bodies:
                seconds = left(deadline)
                if seconds <= 0:
                    return "no answer by the deadline"
                conn.timeout = seconds
                if conn.sock is not None:
                    conn.sock.settimeout(seconds)
                conn.request("POST", path, body=body, headers=sent)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    return "HTTP %d from POST %s" % (response.status, path)
    except (OSError, http.client.HTTPException) as e:
        return "POST %s: %s" % (path, e)
    finally:
        conn.close()
    return None
