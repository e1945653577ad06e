"""export/_exit.py: how long a close waits for its last export."""

from __future__ import annotations

import socket
import threading
import time

from gotools_compat.export import _exit


def test_without_an_address_the_last_export_is_waited_for_until_it_ends() -> None:
    # A console or custom exporter has no address to probe: wait for it, not 50 ms.
    ended = threading.Event()
    threading.Timer(0.3, ended.set).start()
    start = time.monotonic()
    assert _exit.wait(ended.wait, None, time.monotonic() + 5.0) is None
    assert ended.is_set() and 0.25 <= time.monotonic() - start < 4.0


def test_a_refused_address_gives_up_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        start = time.monotonic()
        why = _exit.wait(threading.Event().wait, ("127.0.0.1", port), time.monotonic() + 5.0)
    assert why is not None and "refused" in why
    assert time.monotonic() - start < 1.0


def test_an_address_that_accepts_waits_until_the_deadline() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        start = time.monotonic()
        why = _exit.wait(threading.Event().wait, listener.getsockname(),
                         time.monotonic() + 0.5)
    assert why is None and 0.45 <= time.monotonic() - start < 3.0
