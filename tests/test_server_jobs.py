"""Requests that may share an answer get one (gotools_compat._server.jobs), with real threads."""

from __future__ import annotations

import http.client
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Hashable, List, Optional, Tuple

import pytest

from gotools_compat._server import Limits, Request, Response
from gotools_compat._server.jobs import Jobs
from tests.front_door import Echo, serving, wait_until


class Conn:
    def __init__(self) -> None:
        self.answers: List[Tuple[Request, Response]] = []

    def respond(self, request: Request, response: Response) -> None:
        self.answers.append((request, response))


def request(path: str) -> Request:
    return Request("GET", path, {}, b"", "127.0.0.1")


def test_requests_of_one_key_that_wait_together_get_one_answer() -> None:
    gate = threading.Event()
    called: List[str] = []

    def call(req: Request) -> Response:
        called.append(req.path)
        if req.path == "/first":
            gate.wait(10)
        return Response(200, ("answer %d to %s" % (len(called), req.path)).encode())

    jobs = Jobs(call, lambda fn, *args: fn(*args))
    worker = threading.Thread(target=jobs.run)
    worker.start()
    conns = [Conn() for _ in range(5)]
    try:
        jobs.put(conns[0], request("/first"), "k")
        wait_until(lambda: called == ["/first"], what="the worker to take the first group")
        # The first group is closed: these wait for the next answer, not for its,
        # and go to a worker once it is out (one answer of a key in the making).
        jobs.put(conns[1], request("/a"), "k")
        jobs.put(conns[2], request("/b"), "k")
        jobs.put(conns[3], request("/c"), None)  # no key: its own answer
        jobs.put(conns[4], request("/d"), "other")
        gate.set()
        wait_until(lambda: all(c.answers for c in conns), what="every answer")
    finally:
        gate.set()
        jobs.stop(1)
        worker.join(10)
    assert called == ["/first", "/c", "/d", "/a"]
    bodies = [[(req.path, resp.body) for req, resp in c.answers] for c in conns]
    assert bodies == [[("/first", b"answer 1 to /first")], [("/a", b"answer 4 to /a")],
                      [("/b", b"answer 4 to /a")], [("/c", b"answer 2 to /c")],
                      [("/d", b"answer 3 to /d")]]
    assert not worker.is_alive()


def test_a_keys_next_answer_waits_for_what_its_last_one_cost() -> None:
    """After an answer that took c seconds of CPU, the key's next group goes c / budget
    after it began; requests that come meanwhile join that group; other keys never wait."""
    waits: List[Tuple[float, Callable[..., Any], Tuple[Any, ...]]] = []

    def call(req: Request) -> Response:
        cpu = time.thread_time()
        while time.thread_time() - cpu < 0.002:  # 2 ms of CPU: the next waits >= 2 s
            pass
        return Response(200, req.path.encode())

    jobs = Jobs(call, lambda fn, *args: fn(*args),
                lambda delay, fn, *args: waits.append((delay, fn, args)), budget=0.001)
    worker = threading.Thread(target=jobs.run)
    worker.start()
    conns = [Conn() for _ in range(5)]
    try:
        jobs.put(conns[0], request("/1"), "k")
        wait_until(lambda: conns[0].answers, what="the first answer")
        assert waits == []  # the first of its key goes at once
        jobs.put(conns[1], request("/2"), "k")
        jobs.put(conns[2], request("/3"), "k")  # joins the waiting group
        jobs.put(conns[3], request("/x"), "other")
        jobs.put(conns[4], request("/y"), None)
        wait_until(lambda: conns[3].answers and conns[4].answers, what="the other answers")
        assert [delay > 1.0 for delay, _, _ in waits] == [True]
        assert not conns[1].answers and not conns[2].answers
        _, function, args = waits[0]
        function(*args)  # the wait is over
        wait_until(lambda: conns[1].answers and conns[2].answers, what="the paced answer")
    finally:
        jobs.stop(1)
        worker.join(10)
    assert [[resp.body for _, resp in c.answers] for c in conns] == [
        [b"/1"], [b"/2"], [b"/2"], [b"/x"], [b"/y"]]


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.5, math.nan])
def test_a_share_budget_outside_0_to_1_is_refused(budget: float) -> None:
    with pytest.raises(ValueError, match="share_budget must be above 0 and at most 1"):
        Limits(share_budget=budget)


class Shared(Echo):
    """``/metrics`` is rendered once for every scrape that waits for it."""

    def __init__(self) -> None:
        super().__init__()
        self.renders = 0
        self.dispatched = 0  # requests handed to a worker (share_key runs on the loop then)

    def share_key(self, req: Request) -> Optional[Hashable]:
        self.dispatched += 1
        return ("metrics", req.headers.get("accept", "")) if req.path == "/metrics" else None

    def handle(self, req: Request) -> Response:
        if req.path != "/metrics":
            return super().handle(req)
        self.renders += 1
        return Response(200, b"rendering %d for %s" % (self.renders,
                                                     req.headers.get("accept", "").encode()))


def get(port: int, path: str, accept: str = "") -> Tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_scrapes_waiting_for_a_busy_worker_share_one_rendering_per_accept() -> None:
    handler = Shared()
    with serving(handler, Limits(workers=1)) as (_, port):
        with ThreadPoolExecutor(17) as pool:
            blocked = pool.submit(get, port, "/block")
            wait_until(lambda: handler.paths() == ["/block"], what="the worker to block")
            text = [pool.submit(get, port, "/metrics") for _ in range(12)]
            other = [pool.submit(get, port, "/metrics", "application/openmetrics-text")
                     for _ in range(4)]
            wait_until(lambda: handler.dispatched == 17, what="every scrape to be read")
            handler.gate.set()
            answers: List[Any] = [f.result() for f in text + other]
            assert blocked.result() == (200, b"hello")
    assert handler.renders == 2
    first, second = answers[0], answers[-1]
    assert answers == [first] * 12 + [second] * 4
    assert {first, second} == {
        (200, b"rendering 1 for "), (200, b"rendering 2 for application/openmetrics-text")} \
        or {first, second} == {
        (200, b"rendering 2 for "), (200, b"rendering 1 for application/openmetrics-text")}
