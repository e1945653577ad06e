"""Sockets and a selector whose non-blocking calls keep the GIL, for the loop thread.

CPython releases the GIL around every socket and epoll call, also one that
cannot block.  In an application whose own thread keeps a core busy, that
thread may take the GIL at any release, and the loop thread then waits up
to the switch interval (5 ms) to have it back; over the dozen calls of a
scrape, and the thousands a second of a slow-client flood, that added up to
seconds (``benchmarks/bench_hostile.py --only serve``).  On Linux the loop
thread's non-blocking calls (accept4, recv, send, shutdown, close,
setsockopt, getsockname, epoll_ctl, and epoll_wait with a zero timeout) go
to libc through ``ctypes.PyDLL``, which keeps the GIL: they return at once,
so nothing else could have run.
Only the loop's blocking wait lets the GIL go, once for every batch of ready
connections.  Elsewhere, or if libc lacks a call, the stock socket and
selector are used, and behave the same.

Only what asyncio's selector transports and the server call is replaced; a
call given anything else (a buffer that is not bytes, an option value that
is not an int) takes the stock path.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import select
import selectors
import socket
import struct
import sys
import threading
from typing import Any, Callable, List, Optional, Tuple

_NONBLOCK = getattr(socket, "SOCK_NONBLOCK", 0)
_CLOEXEC = getattr(socket, "SOCK_CLOEXEC", 0)
_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)
_ADDRESS_BYTES = 128  # sizeof(struct sockaddr_storage)
_MAX_EVENTS = 1024

_c_int, _c_size, _c_void_p = ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p


class _Libc:
    """The libc calls, bound with their C types; the GIL is kept across each."""

    def __init__(self) -> None:
        lib = ctypes.PyDLL(None, use_errno=True)

        def bind(name: str, restype: Any, *argtypes: Any) -> Any:
            function = getattr(lib, name)
            function.restype, function.argtypes = restype, argtypes
            return function

        self.recv = bind("recv", ctypes.c_ssize_t, _c_int, _c_void_p, _c_size, _c_int)
        self.send = bind("send", ctypes.c_ssize_t, _c_int, ctypes.c_char_p, _c_size, _c_int)
        self.accept4 = bind("accept4", _c_int, _c_int, _c_void_p,
                            ctypes.POINTER(ctypes.c_uint32), _c_int)
        self.getsockname = bind("getsockname", _c_int, _c_int, _c_void_p,
                                ctypes.POINTER(ctypes.c_uint32))
        self.shutdown = bind("shutdown", _c_int, _c_int, _c_int)
        self.close = bind("close", _c_int, _c_int)
        self.setsockopt = bind("setsockopt", _c_int, _c_int, _c_int, _c_int,
                               ctypes.POINTER(_c_int), ctypes.c_uint32)
        self.epoll_ctl = bind("epoll_ctl", _c_int, _c_int, _c_int, _c_int, _c_void_p)
        self.epoll_wait = bind("epoll_wait", _c_int, _c_int, _c_void_p, _c_int, _c_int)


_lock = threading.Lock()
_loaded: List[Optional[_Libc]] = []


def _libc() -> Optional[_Libc]:
    """libc, loaded on first use (no import-time cost); None where it cannot be."""
    if not _loaded:
        with _lock:
            if not _loaded:
                found = None
                if sys.platform.startswith("linux") and _NONBLOCK:
                    try:
                        found = _Libc()
                    except (OSError, AttributeError):  # not glibc/musl, or a call missing
                        found = None
                _loaded.append(found)
    return _loaded[0]


def _raise() -> None:
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code))  # the errno's subclass: BlockingIOError...


class _Buffers(threading.local):
    def __init__(self) -> None:
        self.data = ctypes.create_string_buffer(64 * 1024)
        self.address = ctypes.create_string_buffer(_ADDRESS_BYTES)
        self.length = ctypes.c_uint32(0)

    def of(self, size: int) -> Any:
        if len(self.data) < size:
            self.data = ctypes.create_string_buffer(size)
        return self.data


_buffers = _Buffers()


def _address(family: int, raw: bytes) -> Any:
    """A sockaddr as Python's socket module spells it."""
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), struct.unpack("!H", raw[2:4])[0]
    if family == socket.AF_INET6 and len(raw) >= 28:
        port, flowinfo = struct.unpack("!HI", raw[2:8])
        scope_id = struct.unpack("=I", raw[24:28])[0]
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, flowinfo, scope_id
    return raw


class _Socket(socket.socket):
    """A connected, non-blocking socket whose calls of the loop keep the GIL."""

    __slots__ = ("_libc", "_peer")

    _libc: _Libc
    _peer: Any

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")  # as the stock call says
        buffer = _buffers.of(bufsize)
        recv, fd = self._libc.recv, self.fileno()
        while True:
            got = recv(fd, buffer, bufsize, flags)
            if got >= 0:
                return ctypes.string_at(buffer, got)
            if ctypes.get_errno() != errno.EINTR:
                _raise()

    def send(self, data: Any, flags: int = 0) -> int:
        if data.__class__ is not bytes:  # a memoryview of a buffered write: the stock call
            return super().send(data, flags)
        send, fd = self._libc.send, self.fileno()
        while True:
            sent = send(fd, data, len(data), flags | _NOSIGNAL)
            if sent >= 0:
                return int(sent)
            if ctypes.get_errno() != errno.EINTR:
                _raise()

    def shutdown(self, how: int) -> None:
        if self._libc.shutdown(self.fileno(), how) < 0:
            _raise()

    def close(self) -> None:
        fd = self.detach()  # marks the object closed, as socket.close() does
        if fd >= 0:
            self._libc.close(fd)  # Linux frees the fd also when close reports an error

    def setsockopt(self, level: int, option: int, value: Any, *rest: Any) -> None:
        if rest or value.__class__ is not int:
            super().setsockopt(level, option, value, *rest)
            return
        if self._libc.setsockopt(self.fileno(), level, option, ctypes.byref(_c_int(value)),
                                 ctypes.sizeof(_c_int)) < 0:
            _raise()

    def setblocking(self, flag: bool) -> None:
        if flag or self.gettimeout() != 0.0:  # it is non-blocking from accept4 on
            super().setblocking(flag)

    def getsockname(self) -> Any:
        buffers = _buffers
        buffers.length.value = _ADDRESS_BYTES
        if self._libc.getsockname(self.fileno(), buffers.address,
                                  ctypes.byref(buffers.length)) < 0:
            _raise()
        return _address(self.family, buffers.address.raw[:buffers.length.value])

    def getpeername(self) -> Any:
        return self._peer


def accept(listener: socket.socket) -> Tuple[socket.socket, Any]:
    """``listener.accept()`` with a non-blocking socket whose loop calls keep the GIL.

    The socket is non-blocking either way.  Raises what ``socket.accept``
    raises (BlockingIOError when none waits)."""
    libc = _libc()
    if libc is None:
        sock, address = listener.accept()
        sock.setblocking(False)
        return sock, address
    buffers = _buffers
    buffers.length.value = _ADDRESS_BYTES
    while True:
        fd = libc.accept4(listener.fileno(), buffers.address, ctypes.byref(buffers.length),
                          _NONBLOCK | _CLOEXEC)
        if fd >= 0:
            break
        if ctypes.get_errno() != errno.EINTR:
            _raise()
    peer = _address(listener.family, buffers.address.raw[:buffers.length.value])
    try:
        # SOCK_NONBLOCK in the type tells the socket object so without a syscall.
        sock = _Socket(listener.family, socket.SOCK_STREAM | _NONBLOCK, listener.proto,
                       fileno=fd)
    except BaseException:
        libc.close(fd)
        raise
    sock._libc = libc
    sock._peer = peer
    return sock, peer


class _EpollEvent(ctypes.Structure):
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


if sys.platform.startswith("linux") and os.uname().machine in ("x86_64", "amd64"):
    class _EpollEvent(ctypes.Structure):  # type: ignore[no-redef]
        # struct epoll_event is packed on x86-64 only (EPOLL_PACKED in <sys/epoll.h>).
        _pack_ = 1
        _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]


class Epoll:
    """``select.epoll`` whose changes and zero-timeout polls keep the GIL."""

    def __init__(self) -> None:
        libc = _libc()
        assert libc is not None, "only made where libc loaded"
        self._epoll = select.epoll()
        self._fd = self._epoll.fileno()
        self._ctl: Callable[..., int] = libc.epoll_ctl
        self._wait: Callable[..., int] = libc.epoll_wait
        self._event = _EpollEvent()
        self._events = (_EpollEvent * _MAX_EVENTS)()

    def _change(self, op: int, fd: int, mask: int) -> None:
        event = self._event
        event.events, event.data = mask, fd  # data.fd, as select.epoll stores it
        if self._ctl(self._fd, op, fd, ctypes.byref(event)) < 0:
            _raise()

    def register(self, fd: int, mask: int) -> None:
        self._change(1, fd, mask)  # EPOLL_CTL_ADD

    def unregister(self, fd: int) -> None:
        self._change(2, fd, 0)  # EPOLL_CTL_DEL

    def modify(self, fd: int, mask: int) -> None:
        self._change(3, fd, mask)  # EPOLL_CTL_MOD

    def poll(self, timeout: float = -1, maxevents: int = -1) -> List[Tuple[int, int]]:
        if timeout != 0:
            return self._epoll.poll(timeout, maxevents)
        events = self._events
        count = self._wait(self._fd, events, min(_MAX_EVENTS, max(1, maxevents)), 0)
        if count < 0:
            if ctypes.get_errno() == errno.EINTR:
                return []
            _raise()
        return [(events[i].data & 0xFFFFFFFF, events[i].events) for i in range(count)]

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        self._epoll.close()

    @property
    def closed(self) -> bool:
        return self._epoll.closed


if hasattr(selectors, "EpollSelector"):  # Linux
    class _Selector(selectors.EpollSelector):
        _selector_cls = Epoll


def new_event_loop() -> asyncio.AbstractEventLoop:
    """An asyncio loop whose selector keeps the GIL where it cannot block."""
    # select.epoll reads data.fd, the low half of the union: little-endian only.
    if _libc() is None or sys.byteorder != "little" or not hasattr(selectors, "EpollSelector"):
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(_Selector())
