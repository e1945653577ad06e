"""Suite-wide guards.

The stock OpenCensus stack probes cloud metadata servers (E2).  Every test in
this suite runs with ``socket.socket.connect`` (and friends) refusing any
address that is not loopback or a unix socket, and the refusal *fails the
test*, even where the code under test swallows the exception.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import Any, Iterator, List

import pytest

# Before any test module imports opencensus.stats: gotools_compat's clock patch
# (E13, made when metric loads the opencensus bridge) keeps opencensus's
# import-time datetime.utcnow() from warning on 3.12+, which is an error in this
# suite, so that each test module also runs alone.
import gotools_compat.metric  # noqa: F401,E402  isort: skip

# grpc/grpc#43055: while gRPC is in use, grpcio 1.80 and later (1.80 is the
# newest for Python 3.9) abort 1 to 3 in 100 children of fork() before they
# exec, in gRPC's own fork handler.  Python 3.9's subprocess forks (3.10+
# vforks, which runs no fork handler), so on 3.9 the test process turns gRPC's
# fork handling off for its own subprocesses; a test whose child forks a gRPC
# exporter gives that child the default back.
if sys.version_info < (3, 10):
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

_violations: List[str] = []
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto
_real_getaddrinfo = socket.getaddrinfo

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback_host(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]")
    if host in _LOCAL_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: Any) -> bool:
    # Resolving a literal address sends nothing; connecting to it is refused.
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
    except ValueError:
        return False
    return True


def _check(sock: socket.socket, address: Any) -> None:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback_host(host):
        message = "non-loopback network access refused by the test suite: %r" % (address,)
        _violations.append(message)
        raise ConnectionRefusedError(message)


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    _check(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    _check(self, address)
    return _real_connect_ex(self, address)


def _guarded_sendto(self: socket.socket, data: Any, *args: Any) -> Any:
    _check(self, args[-1])
    return _real_sendto(self, data, *args)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    # Name lookups of other hosts are how the metadata probe starts; refuse
    # them too, so no DNS traffic leaves the machine either.
    if host is not None and not _is_loopback_host(host) and not _is_ip_literal(host):
        message = "non-loopback name lookup refused by the test suite: %r" % (host,)
        _violations.append(message)
        raise socket.gaierror(socket.EAI_NONAME, message)
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.socket.sendto = _guarded_sendto  # type: ignore[method-assign,assignment]
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _no_foreign_network() -> Iterator[None]:
    del _violations[:]
    yield
    if _violations:
        found = list(_violations)
        del _violations[:]
        pytest.fail("code tried to reach the network beyond loopback: %s" % "; ".join(found))


# A fresh registry of metrics, measures and opencensus views for the test: the
# names it defines need not differ from other tests' (gotools_compat.testing).
# Opt-in (a module takes it for all its tests with
# ``pytestmark = pytest.mark.usefixtures("registry")``): tests whose metrics come
# from a module-scoped fixture or from the process's definitions go without it.
@pytest.fixture
def registry() -> Iterator[None]:
    from gotools_compat.testing import fresh_registry

    with fresh_registry():
        yield


# The front-door tests' server (tests/test_server_*.py): an echoing handler served
# with short timeouts on 127.0.0.1.
@pytest.fixture
def echo() -> Any:
    from tests.front_door import Echo

    return Echo()


@pytest.fixture
def served(echo: Any) -> Iterator[Any]:
    from tests.front_door import serving

    with serving(echo) as pair:
        yield pair


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # "No tests collected" (5) is not a failure of the product; a filtered
    # run (-k) that matches nothing must not fail CI.
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
