"""A real Prometheus server for tests: started on a free loopback port, stopped after.

Uses the ``prometheus`` binary that $GOTOOLS_PROMETHEUS names, else the one
on PATH (Debian's package, which ``scripts/test`` installs in CI); a
generated config scrapes the given loopback targets every second (or every
``interval``; with ``honor_labels``, ``metrics_path`` and ``params`` for a
federating server: ``metrics_path="/federate"``, ``params={"match[]": [...]}``);
data lives in a temporary directory.  Queries go to its HTTP API and
are polled with a deadline (never a fixed sleep).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Optional


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def binary() -> Optional[str]:
    """$GOTOOLS_PROMETHEUS if set (a path to the binary), else ``prometheus`` on PATH."""
    return os.environ.get("GOTOOLS_PROMETHEUS") or shutil.which("prometheus")


class PrometheusServer:
    def __init__(self, targets: List[str], job: str = "app", *, interval: str = "1s",
                 honor_labels: bool = False, metrics_path: str = "/metrics",
                 params: Optional[Dict[str, List[str]]] = None) -> None:
        found = binary()
        if found is None:
            raise RuntimeError("the prometheus binary is not installed")
        self.binary = found
        self.targets = targets
        self.job = job
        self.interval = interval
        self.honor_labels = honor_labels
        self.metrics_path = metrics_path
        self.params = params or {}
        self.dir = tempfile.mkdtemp(prefix="gotools-prometheus-")
        self.port = 0
        self.process: Optional["subprocess.Popen[bytes]"] = None
        self.log_path = os.path.join(self.dir, "prometheus.log")

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def _write_config(self) -> str:
        path = os.path.join(self.dir, "prometheus.yml")
        targets = ", ".join("'%s'" % t for t in self.targets)
        params = "".join("      '%s': [%s]\n" % (name, ", ".join("'%s'" % v for v in values))
                         for name, values in self.params.items())
        with open(path, "w") as f:
            f.write("global:\n  scrape_interval: %s\n  scrape_timeout: %s\n"
                    "  evaluation_interval: %s\n"
                    "scrape_configs:\n  - job_name: %s\n    metrics_path: %s\n"
                    "    honor_labels: %s\n%s"
                    "    static_configs:\n      - targets: [%s]\n"
                    % (self.interval, self.interval, self.interval, self.job,
                       self.metrics_path, "true" if self.honor_labels else "false",
                       "    params:\n" + params if params else "", targets))
        return path

    def start(self, deadline: float = 30.0) -> "PrometheusServer":
        config = self._write_config()
        for _attempt in range(3):  # a free port may be taken before prometheus binds it
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [self.binary, "--config.file=" + config,
                     "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                     "--web.listen-address=127.0.0.1:%d" % self.port,
                     "--log.level=warn"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self._wait_ready(deadline):
                return self
            self._terminate()
        raise RuntimeError("prometheus did not start: %s" % self.log())

    def _wait_ready(self, deadline: float) -> bool:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            assert self.process is not None
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def api(self, path: str, **params: str) -> Any:
        url = "%s/api/v1/%s?%s" % (self.url, path, urllib.parse.urlencode(params))
        with urllib.request.urlopen(url, timeout=5) as response:
            payload = json.loads(response.read().decode("utf-8"))
        if payload.get("status") != "success":
            raise RuntimeError("prometheus API error: %r" % payload)
        return payload["data"]

    def query(self, expr: str) -> List[Any]:
        return list(self.api("query", query=expr)["result"])

    def wait_for(self, expr: str, accept: Callable[[List[Any]], bool],
                 deadline: float = 20.0) -> List[Any]:
        """Poll ``expr`` until ``accept(result)``; fail with the last result at the deadline."""
        end = time.monotonic() + deadline
        result: List[Any] = []
        while True:
            result = self.query(expr)
            if accept(result):
                return result
            if time.monotonic() > end:
                targets = self.api("targets")
                raise AssertionError("prometheus query %r never gave the expected result; "
                                     "last: %r; targets: %r; log: %s"
                                     % (expr, result, targets, self.log()))
            time.sleep(0.2)

    def _terminate(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
