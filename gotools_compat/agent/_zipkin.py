"""Forwarding received spans to Zipkin (``POST`` v2 JSON), off the receive path."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

from ._otlp_sender import http_url

logger = logging.getLogger(__name__)

_BATCH = 500
_INTERVAL = 0.5


def zipkin_span(record: Dict[str, Any]) -> Dict[str, Any]:
    """One span record (see ``_traces.span_record``) in Zipkin's v2 model."""
    span: Dict[str, Any] = {
        "traceId": record["traceId"],
        "id": record["spanId"],
        "name": record["name"],
        "timestamp": record["startUnixNano"] // 1000,
        "duration": max(1, record["durationNano"] // 1000),
        "localEndpoint": {"serviceName": record["service"] or "unknown"},
    }
    if record["parentSpanId"]:
        span["parentId"] = record["parentSpanId"]
    if record["kind"] in ("SERVER", "CLIENT"):
        span["kind"] = record["kind"]
    tags = {k: v if isinstance(v, str) else json.dumps(v)
            for k, v in record["attributes"].items()}
    status = record["status"]
    if status["code"]:
        tags["error"] = status["message"] or "code %d" % status["code"]
    if tags:
        span["tags"] = tags
    if record["annotations"]:
        span["annotations"] = [{"timestamp": a["timeUnixNano"] // 1000, "value": a["value"]}
                               for a in record["annotations"]]
    return span


def zipkin_url(url: str) -> str:
    """``url`` stripped, if it is an http(s) URL with a host; else a ValueError that says so."""
    return http_url(url, "--zipkin", "http://127.0.0.1:9411/api/v2/spans")


class ZipkinForwarder:
    """Batches spans and posts them from its own thread; drops when Zipkin lags."""

    def __init__(self, url: str, max_queue: int = 10_000, timeout: float = 5.0) -> None:
        self.url = zipkin_url(url)
        self._timeout = timeout
        self._queue: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue(max_queue)
        # Zipkin is a configured address: go straight there, not via a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread = threading.Thread(target=self._run, name="gotools-agent-zipkin",
                                        daemon=True)
        self._dropped = 0
        self._failing = False
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, records: List[Dict[str, Any]]) -> None:
        for record in records:
            try:
                self._queue.put_nowait(zipkin_span(record))
            except queue.Full:
                self._dropped += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then end the thread."""
        if not self._thread.is_alive():
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _run(self) -> None:
        done = False
        while not done:
            batch: List[Dict[str, Any]] = []
            deadline = time.monotonic() + _INTERVAL
            while len(batch) < _BATCH:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic())
                                           if batch else None)
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch.append(item)
            if batch:
                self._post(batch)

    def _post(self, batch: List[Dict[str, Any]]) -> None:
        body = json.dumps(batch).encode("utf-8")
        try:
            request = urllib.request.Request(self.url, data=body, method="POST",
                                             headers={"Content-Type": "application/json"})
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
            self.sent += len(batch)
            if self._failing:
                logger.warning("zipkin at %s reachable again", self.url)
                self._failing = False
        except (urllib.error.URLError, OSError, ValueError) as exc:
            if not self._failing:
                logger.warning("cannot send %d spans to zipkin at %s: %s", len(batch),
                               self.url, exc)
            self._failing = True
        if self._dropped:
            logger.warning("zipkin queue full: %d spans dropped", self._dropped)
            self._dropped = 0
