"""Raw-socket clients and a tiny handler for the tests of :mod:`gotools_compat._server`."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Dict, Iterator, List, Optional, Tuple

from gotools_compat._server import Limits, Request, Response, Server, error_response

# Bounds small enough for the timeouts to be seen in a test, large enough for a loaded box.
FAST = Limits(header_timeout=1.0, body_timeout=1.0, idle_timeout=1.0, write_timeout=1.0,
              max_body_bytes=1000, max_header_bytes=1024, workers=2)

Reply = Tuple[int, Dict[str, str], bytes]
ROOT = Path(__file__).resolve().parent.parent


class Echo:
    """Answers every request with its body (GET: "hello"); ``/boom`` raises, ``/block``
    waits for ``gate``, ``/big`` is answered with ``big``."""

    def __init__(self) -> None:
        self.requests: List[Request] = []
        self.gate = threading.Event()
        self.big = b""

    def early(self, method: str, target: str) -> Optional[Response]:
        if method not in ("GET", "HEAD", "POST"):
            return error_response(405, "method %s not allowed" % method)
        return None

    def handle(self, request: Request) -> Response:
        self.requests.append(request)
        if request.path == "/boom":
            raise RuntimeError("a handler's bug")
        if request.path == "/block":
            self.gate.wait(30)
        if request.path == "/big":
            return Response(200, self.big)
        if request.path == "/medium":  # one segment: under the size sent a chunk at a time
            return Response(200, b"m" * 60000)
        body = request.body if request.method == "POST" else b"hello"
        return Response(200, body, [("X-Path", request.path), ("X-Method", request.method)])

    def paths(self) -> List[str]:
        return [r.path for r in self.requests]


@contextmanager
def serving(handler: Echo, limits: Limits = FAST,
            grpc_target: Optional[str] = None) -> Iterator[Tuple[Server, int]]:
    server = Server(handler, limits, name="test-front-door")
    port = server.listen("127.0.0.1", 0, grpc_target)
    server.start()
    try:
        yield server, port
    finally:
        handler.gate.set()
        server.stop()


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10.0,
            rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything until the peer closes (a reset after the data counts as the close)."""
    chunks: List[bytes] = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def exchange(port: int, data: bytes, half_close: bool = False, source: str = "127.0.0.1") -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with connect(port, source) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)


def wait_closed(sock: socket.socket, within: float) -> Tuple[bytes, float]:
    """What the server sent before it closed ``sock``, and after how many seconds it did."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        data = read_to_eof(sock)
    except socket.timeout:
        raise AssertionError("still open after %.1f s" % within) from None
    return data, time.monotonic() - start


def readable(sock: socket.socket) -> bool:
    """Whether the server has sent something or closed ``sock`` (without waiting)."""
    return bool(select.select([sock], [], [], 0)[0])


def is_closed(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (without waiting or reading)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(10)


def parse(data: bytes, head_request: bool = False) -> List[Reply]:
    """The responses in ``data``, framed by Content-Length; the bytes after must be none."""
    replies: List[Reply] = []
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, "an incomplete response head: %r" % head
        lines = head.decode("latin-1").split("\r\n")
        version, status, _ = (lines[0] + " ").split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(status)
        length = 0 if code < 200 or head_request else int(headers.get("content-length", "0"))
        if code >= 200:
            head_request = False
        assert len(data) >= length, "a short body: %d of %d bytes" % (len(data), length)
        replies.append((code, headers, data[:length]))
        data = data[length:]
    return replies


def statuses(data: bytes) -> List[int]:
    return [status for status, _, _ in parse(data)]


def wait_until(predicate: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "not within %.0f s: %s" % (within, what)
        time.sleep(0.01)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` (Linux /proc)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_process(code: str) -> "subprocess.Popen[str]":
    """``python -c code`` with this checkout importable, its three streams piped (text)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=str(ROOT),
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


class Lines:
    """The lines of a child's stream, read on a thread."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: List[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def matching(self, pattern: str) -> List[str]:
        return [line for line in list(self.lines) if re.search(pattern, line)]

    def join(self) -> None:
        self._thread.join(10)


def finish(child: "subprocess.Popen[str]", log: Optional[Lines] = None) -> None:
    try:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if log is not None:
            log.join()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
