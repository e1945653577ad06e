"""export/_prometheus_server.py: scrapes that arrive together share one rendering."""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

from gotools_compat._server import Request
from gotools_compat.export._prometheus_server import _Routes


class Counting:
    """A Scrapable that says how many renderings it made, and can hold one."""

    def __init__(self) -> None:
        self.renderings = 0
        self.gate = threading.Event()
        self.gate.set()

    def respond(self, accept: str = "", accept_encoding: str = ""
                ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        self.renderings += 1
        body = b"rendering %d for %s\n" % (self.renderings, accept.encode())
        self.gate.wait(10)
        return 200, [("Content-Type", "text/plain")], body


def get(accept: str = "") -> Request:
    return Request("GET", "/metrics", {"accept": accept}, b"", "127.0.0.1")


def test_a_scrape_after_another_renders_anew() -> None:
    scrapable = Counting()
    routes = _Routes(scrapable)
    assert routes.handle(get()).body == b"rendering 1 for \n"
    time.sleep(0.001)
    assert routes.handle(get()).body == b"rendering 2 for \n"


def test_scrapes_waiting_during_a_rendering_share_the_next_one() -> None:
    scrapable = Counting()
    routes = _Routes(scrapable)
    scrapable.gate.clear()
    first = threading.Thread(target=routes.handle, args=(get(),))
    first.start()  # rendering 1 starts, then is held
    time.sleep(0.05)
    waiting = [get() for _ in range(20)]  # they arrive after rendering 1 started
    answers: List[bytes] = []
    threads = [threading.Thread(target=lambda r=r: answers.append(routes.handle(r).body))
               for r in waiting]
    threads[0].start()  # rendering 2 starts after they all arrived
    time.sleep(0.05)
    scrapable.gate.set()
    threads[0].join(10)  # rendering 2 is in; the others now find it
    for thread in threads[1:]:
        thread.start()
    for thread in [first, *threads]:
        thread.join(10)
    # Each got a rendering that started after it arrived: the second, shared.
    assert answers == [b"rendering 2 for \n"] * 20
    assert scrapable.renderings == 2


def test_each_accept_header_has_its_own_rendering() -> None:
    scrapable = Counting()
    routes = _Routes(scrapable)
    late = get("text/plain")
    assert routes.handle(get("application/openmetrics-text")).body == \
        b"rendering 1 for application/openmetrics-text\n"
    assert routes.handle(late).body == b"rendering 2 for text/plain\n"
