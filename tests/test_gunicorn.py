"""examples/wsgi_app.py under a real gunicorn with 4 workers, exporting to a real agent.

Each request answers with the pid of the worker that served it, so the test
knows how many requests every worker served and checks the agent's series
against that, worker by worker.  A SIGKILLed worker cannot flush: the test
waits until the agent shows every request before the kill, so nothing the
killed worker recorded is lost (what a SIGKILL can lose is what was recorded
since the worker's last export).
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Counter, Dict, Iterator, List, Optional, Tuple

import gunicorn  # noqa: F401  (the test extra; a missing one fails here, not later)
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat.agent import Agent

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
WORKERS = 4
DEADLINE = 20.0


class Gunicorn:
    """``gunicorn -w 4 wsgi_app:app`` on 127.0.0.1, exporting to the agent at ``agent_port``."""

    def __init__(self, tmp: Path, agent_port: int, preload: bool) -> None:
        self.log = tmp / "gunicorn.log"
        self.log.write_text("")
        config = tmp / "gunicorn.conf.py"
        # gunicorn 24+ opens a control socket in ~/.gunicorn; older ones ignore the setting.
        config.write_text("control_socket_disable = True\n")
        env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
        env.update(WSGI_APP_AGENT="http://127.0.0.1:%d" % agent_port, WSGI_APP_RATE="0.2",
                   WSGI_APP_SERVICE="wsgi_app")
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(config), "-w", str(WORKERS),
               "-b", "127.0.0.1:0", "--pythonpath", str(EXAMPLES), "--error-logfile",
               str(self.log), "--graceful-timeout", "5"]
        self.process = subprocess.Popen(cmd + (["--preload"] if preload else []) +
                                        ["wsgi_app:app"], env=env, cwd=str(tmp))
        self.port = 0
        end = time.monotonic() + DEADLINE
        while True:
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", self.log.read_text())
            if found and len(self.booted()) >= WORKERS:
                self.port = int(found.group(1))
                return
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < end, "gunicorn did not start:\n" + self.log.read_text()
            time.sleep(0.05)

    def booted(self) -> List[int]:
        """The pids of every worker booted so far, in order."""
        return [int(pid) for pid in
                re.findall(r"Booting worker with pid: (\d+)", self.log.read_text())]

    def get(self, count: int) -> Counter[int]:
        """``count`` requests from 8 threads; how many each worker pid served."""

        def one(i: int) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                conn.request("GET", "/items/%d" % (i % 3))
                response = conn.getresponse()
                assert response.status == 200
                return int(response.read())
            finally:
                conn.close()

        with ThreadPoolExecutor(8) as pool:
            return collections.Counter(pool.map(one, range(count)))

    def kill(self, pid: int) -> None:
        """SIGKILL one worker and wait until gunicorn has booted its replacement."""
        before = len(self.booted())
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + DEADLINE
        while len(self.booted()) == before:
            assert time.monotonic() < end, "no worker replaced:\n" + self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(DEADLINE)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung gunicorn
            self.process.kill()
            self.process.wait()


@pytest.fixture
def agent_and_server(request: pytest.FixtureRequest,
                     tmp_path: Path) -> Iterator[Tuple[Agent, Gunicorn]]:
    preload, merge = request.param
    agent = Agent("127.0.0.1:0", "127.0.0.1:0", merge_instances=merge).start()
    try:
        server = Gunicorn(tmp_path, agent.port, preload)
        try:
            yield agent, server
        finally:
            server.stop()
    finally:
        agent.stop()


Series = Dict[Tuple[str, Optional[int], str], float]


def series(agent: Agent) -> Series:
    """(sample name, worker pid or None when merged, route) -> value, of the app's series."""
    found: Series = {}
    conn = http.client.HTTPConnection("127.0.0.1", agent.prometheus_port or 0, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("promdemo_http_requests_total", "promdemo_http_latency_ms_count"):
                assert s.labels["job"] == "wsgi_app"
                instance = s.labels.get("instance")
                pid = int(instance.rsplit(":", 1)[1]) if instance else None
                found[(s.name, pid, s.labels["route"])] = s.value
    return found


def merged(routes: Counter[str]) -> Series:
    """What a merging agent should show: per route, the requests of every worker."""
    return {(name, None, route): n for route, n in routes.items()
            for name in ("promdemo_http_requests_total", "promdemo_http_latency_ms_count")}


def per_worker(found: Series) -> Counter[int]:
    totals: Counter[int] = collections.Counter()
    for (name, pid, _), value in found.items():
        if name == "promdemo_http_requests_total" and pid is not None:
            totals[pid] += int(value)
    return totals


def wait_for(agent: Agent, done: Callable[[Series], bool]) -> Series:
    end = time.monotonic() + DEADLINE
    while True:
        found = series(agent)
        if done(found) or time.monotonic() > end:
            return found
        time.sleep(0.05)


def routes_of(count: int) -> Counter[str]:
    """The routes :meth:`Gunicorn.get` asks for, ``count`` requests."""
    return collections.Counter("/items/%d" % (i % 3) for i in range(count))


@pytest.mark.parametrize("agent_and_server", [(False, False), (True, False)],
                         ids=["workers-import", "preload"], indirect=True)
def test_each_worker_exports_its_own_series_and_they_add_up(
        agent_and_server: Tuple[Agent, Gunicorn]) -> None:
    agent, server = agent_and_server
    first = 240
    served = server.get(first)
    assert sum(served.values()) == first and len(served) >= 2  # 8 clients, 4 workers
    assert set(served) <= set(server.booted())
    found = wait_for(agent, lambda f: per_worker(f) == served)
    assert per_worker(found) == served
    # Every route of every worker: the counter and the histogram's count agree.
    for (_, pid, route), value in found.items():
        assert found[("promdemo_http_latency_ms_count", pid, route)] == value
    assert sum(v for (n, _, r), v in found.items()
               if n == "promdemo_http_requests_total" and r == "/items/0") == routes_of(first)[
        "/items/0"]
    # The gunicorn master (with --preload, it imported the app and connected) sends no series.
    assert server.process.pid not in per_worker(found)

    victim = served.most_common(1)[0][0]
    server.kill(victim)
    assert len(server.booted()) == WORKERS + 1
    more = 160
    served_after = server.get(more)
    assert victim not in served_after
    total = served + served_after
    found = wait_for(agent, lambda f: per_worker(f) == total)
    # The killed worker's series stay as it last sent them (all it served), the others grew.
    assert per_worker(found) == total
    assert sum(per_worker(found).values()) == first + more


@pytest.mark.parametrize("agent_and_server", [(True, True)], ids=["preload-merged"],
                         indirect=True)
def test_merged_view_is_one_series_per_route_and_does_not_drop_after_a_kill(
        agent_and_server: Tuple[Agent, Gunicorn]) -> None:
    agent, server = agent_and_server
    first = 240
    served = server.get(first)
    want = merged(routes_of(first))
    found = wait_for(agent, lambda f: f == want)
    assert found == want  # one series per route: no instance label, the sum of the workers
    server.kill(served.most_common(1)[0][0])
    more = 160
    server.get(more)
    want = merged(routes_of(first) + routes_of(more))
    found = wait_for(agent, lambda f: f == want)
    assert found == want
    assert sum(v for (n, _, _), v in found.items()
               if n == "promdemo_http_requests_total") == first + more
