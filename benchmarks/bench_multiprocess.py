"""gunicorn workers: ours (every worker -> one gotools-agent) against prometheus_client's
multiprocess mode (a directory of mmap files per pid), same app, same gunicorn, same requests.

The app is examples/wsgi_app.py (benchmarks/_multiprocess_app.py records it
with either side).  Figures of issue 16:

1. totals: the same requests give the same totals on both sides;
2. record, per request (one labelled counter and one labelled histogram
   observation): a micro-benchmark of each side's record call in one process,
   theirs under its multiprocess mmap value class (PROMETHEUS_MULTIPROC_DIR set
   in that subprocess only), ours with the exporter off; goal <= 0.3x;
3. scrape with 8 workers x 1,000 series (500 routes, a counter and a histogram
   each): ours GET the agent's /metrics (--merge-instances, one series per
   route as theirs; per-instance too), theirs GET /metrics of a worker
   (MultiProcessCollector reads every file); goal <= 0.2x;
4. what 100 worker restarts (--max-requests) leave behind: files in their
   directory (with the documented child_exit -> mark_process_dead hook), the
   agent's series, totals of gone workers and RSS for ours; goal: nothing.

Run: .venv/bin/python benchmarks/bench_multiprocess.py
"""

from __future__ import annotations

import collections
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
DEADLINE = 60.0
RATE = "0.5"  # seconds between exports of each worker
REPEAT = 7


def _wait(what: str, done: Any, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        value = done()
        if value:
            return value
        if time.monotonic() > end:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.05)


def get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError("GET %s: %d" % (path, response.status))
        return body
    finally:
        conn.close()


class _Process:
    """A subprocess (``self.process``) stopped on leaving a ``with`` block."""

    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(DEADLINE)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class AgentProcess(_Process):
    """``gotools-agent --merge-instances`` (or not) as a subprocess on free ports."""

    def __init__(self, tmp: Path, merge: bool, expire: float = 300.0) -> None:
        self.log = tmp / ("agent-%d.log" % time.monotonic_ns())
        cmd = [sys.executable, "-m", "gotools_compat.agent", "--listen", "127.0.0.1:0",
               "--prometheus", "127.0.0.1:0", "--expire", str(expire), "--log-level", "INFO"]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(cmd + (["--merge-instances"] if merge else []),
                                            stdout=subprocess.DEVNULL, stderr=log)
        try:
            text = _wait("the agent", lambda: re.search(
                r"on 127\.0\.0\.1:(\d+), Prometheus metrics on http://127\.0\.0\.1:(\d+)",
                self.log.read_text()))
        except BaseException:
            self.stop()
            raise
        self.port, self.prometheus = int(text.group(1)), int(text.group(2))

    def rss_kib(self) -> int:
        status = Path("/proc/%d/status" % self.process.pid).read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


class Gunicorn(_Process):
    """gunicorn serving benchmarks/_multiprocess_app.py for one side."""

    def __init__(self, tmp: Path, side: str, workers: int, agent: Optional[AgentProcess],
                 extra: Tuple[str, ...] = (), hooks: str = "") -> None:
        self.log = tmp / ("gunicorn-%s-%d.log" % (side, time.monotonic_ns()))
        self.log.write_text("")
        config = tmp / ("gunicorn-%s.conf.py" % side)
        config.write_text("control_socket_disable = True\n" + hooks)
        env = {k: v for k, v in os.environ.items()
               if k not in ("GRPC_ENABLE_FORK_SUPPORT", "PROMETHEUS_MULTIPROC_DIR")}
        env.update(BENCH_SIDE=side, WSGI_APP_RATE=RATE, WSGI_APP_SERVICE="bench",
                   WSGI_APP_AGENT="http://127.0.0.1:%d" % agent.port if agent else "off")
        self.multiproc_dir: Optional[Path] = None
        if side == "theirs":
            self.multiproc_dir = Path(tempfile.mkdtemp(prefix="prom-multiproc-", dir=tmp))
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.multiproc_dir)
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(config), "-w", str(workers),
               "-b", "127.0.0.1:0", "--pythonpath", "%s,%s" % (EXAMPLES, HERE),
               "--error-logfile", str(self.log), *extra, "_multiprocess_app:app"]
        self.process = subprocess.Popen(cmd, env=env, cwd=str(tmp))
        try:
            found = _wait("gunicorn", lambda: len(self.booted()) >= workers and re.search(
                r"Listening at: http://127\.0\.0\.1:(\d+)", self.log.read_text()))
        except BaseException:
            self.stop()
            raise
        self.port = int(found.group(1))

    def booted(self) -> List[int]:
        return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)",
                                           self.log.read_text())]

    def requests(self, count: int, path: str = "/items/%d") -> collections.Counter:
        paths = [path % (i % 3) if "%d" in path else path for i in range(count)]
        with ThreadPoolExecutor(8) as pool:
            return collections.Counter(pool.map(lambda p: int(get(self.port, p)), paths))

    def populate(self, workers: int) -> None:
        """``/populate`` until every worker has answered one."""
        seen: set = set()
        while len(seen) < workers:
            seen.update(self.requests(16, "/populate"))



def samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def totals(text: str, prefix: str) -> Tuple[float, float]:
    """(requests, histogram count) summed over every series but /populate's."""
    found = samples(text)
    requests = sum(v for (n, labels), v in found.items() if n == prefix + "http_requests_total"
                   and not dict(labels).get("route", "").startswith("/populate"))
    counts = sum(v for (n, labels), v in found.items() if n == prefix + "http_latency_ms_count"
                 and not dict(labels).get("route", "").startswith("/populate"))
    return requests, counts


def agent_totals(agent: AgentProcess, want: Tuple[float, float]) -> Tuple[float, float]:
    """The agent's totals once they are ``want`` (or whatever they are after the deadline)."""
    last: List[Tuple[float, float]] = []

    def done() -> bool:
        last[:] = [totals(get(agent.prometheus, "/metrics").decode(), "promdemo_")]
        return last[0] == want

    try:
        _wait("the agent's totals", done, 20.0)
    except RuntimeError:
        pass
    return last[0]


def own(agent: AgentProcess, name: str) -> float:
    return samples(get(agent.prometheus, "/metrics").decode()).get((name, ()), -1.0)


def scrape_time(port: int, path: str = "/metrics") -> Tuple[float, int]:
    runs = []
    size = 0
    for _ in range(REPEAT):
        start = time.perf_counter()
        size = len(get(port, path))
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), size


def ratio_line(label: str, ours: float, theirs: float, goal: float, unit: str,
               scale: float) -> None:
    ratio = ours / theirs
    print("%-50s ours %9.1f %s  theirs %9.1f %s  ratio %6.3f  (goal <= %g) %s"
          % (label, ours * scale, unit, theirs * scale, unit, ratio, goal,
             "ok" if ratio <= goal else "MISSED"))


# -- 1. totals -------------------------------------------------------------------------

def bench_totals(tmp: Path) -> None:
    count = 1000
    want = (float(count), float(count))
    with AgentProcess(tmp, merge=True) as agent, Gunicorn(tmp, "ours", 4, agent) as ours:
        served = ours.requests(count)
        got = agent_totals(agent, want)
    with Gunicorn(tmp, "theirs", 4, None) as theirs:
        served_theirs = theirs.requests(count)
        their_totals = totals(get(theirs.port, "/metrics").decode(), "")
    print("1. totals, %d requests over 4 workers (%d and %d workers served):"
          % (count, len(served), len(served_theirs)))
    print("   ours (agent, merged): requests %d, histogram count %d; theirs: %d, %d: %s"
          % (got[0], got[1], their_totals[0], their_totals[1],
             "equal" if got == their_totals == want else "NOT EQUAL"))


# -- 2. record ---------------------------------------------------------------------------

_RECORD = r"""
import itertools, os, sys
sys.path[:0] = [%(examples)r, %(here)r]
import _multiprocess_app as app
from _common import per_call
paths = itertools.cycle(["/items/0", "/items/1", "/items/2"]).__next__
for record in (app.record, app.record_per_request):
    print(per_call(lambda: record(paths(), 0.3), 100_000, repeat=%(repeat)d))
"""


def bench_record(tmp: Path) -> None:
    code = _RECORD % {"examples": str(EXAMPLES), "here": str(HERE), "repeat": REPEAT}
    results: Dict[str, Tuple[float, float]] = {}
    for side in ("ours", "theirs"):
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(BENCH_SIDE=side, WSGI_APP_AGENT="off")
        if side == "theirs":
            env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prom-record-", dir=tmp)
        runs = [[float(line) for line in subprocess.run(
            [sys.executable, "-c", code], env=env, check=True, capture_output=True,
            text=True).stdout.split()] for _ in range(3)]
        results[side] = (statistics.median(r[0] for r in runs),
                         statistics.median(r[1] for r in runs))
    print("2. record one request (a labelled counter + histogram), one process each, "
          "theirs on its mmap values:")
    ratio_line("   handles made once per route (the example)", results["ours"][0],
               results["theirs"][0], 0.3, "ns", 1e9)
    ratio_line("   labels resolved per request", results["ours"][1], results["theirs"][1],
               0.3, "ns", 1e9)


# -- 3. scrape -----------------------------------------------------------------------------

def bench_scrape(tmp: Path) -> None:
    workers = 8
    per_worker = 2 * int(os.environ.get("BENCH_POPULATE", "500"))
    figures: Dict[str, Tuple[float, int]] = {}
    for merge in (True, False):
        with AgentProcess(tmp, merge=merge) as agent, \
                Gunicorn(tmp, "ours", workers, agent) as ours:
            ours.populate(workers)
            _wait("8 x 1000 series in the agent",
                  lambda: own(agent, "gotools_agent_series") >= workers * per_worker)
            figures["merged" if merge else "per-instance"] = scrape_time(agent.prometheus)
    with Gunicorn(tmp, "theirs", workers, None) as theirs:
        theirs.populate(workers)
        their_time, their_size = scrape_time(theirs.port)
        files = len(os.listdir(str(theirs.multiproc_dir)))
    print("3. scrape, %d workers x %d series (%d files in their directory):"
          % (workers, per_worker, files))
    ratio_line("   ours --merge-instances (%d bytes) vs theirs (%d bytes)"
               % (figures["merged"][1], their_size), figures["merged"][0], their_time, 0.2,
               "ms", 1e3)
    ratio_line("   ours per instance (%d bytes)" % figures["per-instance"][1],
               figures["per-instance"][0], their_time, 0.2, "ms", 1e3)


# -- 4. restarts -----------------------------------------------------------------------------

_HOOK = """
from prometheus_client import multiprocess

def child_exit(server, worker):
    multiprocess.mark_process_dead(worker.pid)
"""


def restarts(server: Gunicorn, count: int) -> int:
    """Requests until ``count`` workers beyond the first 4 have booted; returns requests."""
    sent = 0
    while len(server.booted()) < 4 + count:
        sent += sum(server.requests(16).values())
    return sent


def bench_restarts(tmp: Path) -> None:
    count = 100
    extra = ("--preload", "--max-requests", "4", "--max-requests-jitter", "0")
    with AgentProcess(tmp, merge=True, expire=3.0) as agent, \
            Gunicorn(tmp, "ours", 4, agent, extra) as ours:
        ours.requests(16)
        _wait("first exports", lambda: own(agent, "gotools_agent_senders") >= 1)
        rss_before = agent.rss_kib()
        sent = 16 + restarts(ours, count)
        booted = len(ours.booted())
        # Gone workers expire (3 s) and are folded; the totals stay.
        want = (float(sent), float(sent))
        got = agent_totals(agent, want)
        _wait("gone workers folded", lambda: own(agent, "gotools_agent_senders") <= 4)
        series, senders = own(agent, "gotools_agent_series"), own(agent, "gotools_agent_senders")
        gone_series = own(agent, "gotools_agent_merge_gone_series")
        gone = own(agent, "gotools_agent_merge_gone_instances_total")
        rss_after = agent.rss_kib()
    with Gunicorn(tmp, "theirs", 4, None, extra, hooks=_HOOK) as theirs:
        theirs.requests(16)
        their_sent = 16 + restarts(theirs, count)
        their_booted = len(theirs.booted())
        their_totals = totals(get(theirs.port, "/metrics").decode(), "")
        assert theirs.multiproc_dir is not None
        files = sorted(os.listdir(str(theirs.multiproc_dir)))
        size = sum(os.path.getsize(str(theirs.multiproc_dir / f)) for f in files)
    print("4. after %d worker restarts (--preload --max-requests 4):" % count)
    print("   ours: %d workers booted, %d requests, agent totals %d/%d (%s); files: 0; agent: "
          "%d live series of %d senders, %d folded totals of %d gone workers; RSS %d -> %d KiB"
          % (booted, sent, got[0], got[1], "exact" if got == want else "WRONG", series,
             senders, gone_series, gone, rss_before, rss_after))
    kinds = collections.Counter(f.split("_")[0] for f in files)
    print("   theirs: %d workers booted, %d requests, totals %d/%d (%s); files left: %d "
          "(%s), %d KiB" % (their_booted, their_sent, their_totals[0], their_totals[1],
                            "exact" if their_totals == (their_sent, their_sent) else "WRONG",
                            len(files), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
                            size // 1024))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-multiprocess-") as name:
        tmp = Path(name)
        only = sys.argv[1:] or ["totals", "record", "scrape", "restarts"]
        for part in only:
            {"totals": bench_totals, "record": bench_record, "scrape": bench_scrape,
             "restarts": bench_restarts}[part](tmp)


if __name__ == "__main__":
    main()
