"""examples/wsgi_app.py for bench_multiprocess.py: the same app, recorded by ours or by theirs.

``BENCH_SIDE=ours``: the example as it is (every worker exports to the agent
of ``WSGI_APP_AGENT``).  ``BENCH_SIDE=theirs``: the same :func:`handle`, each
request recorded with prometheus_client in its multiprocess mode (the
benchmark sets ``PROMETHEUS_MULTIPROC_DIR`` in that gunicorn's environment
only) and ``/metrics`` served by a worker through ``MultiProcessCollector``,
as prometheus_client documents.  Both record as the example does (each
route's labelled handle made once: a context for ours, ``labels()``
children for theirs); :func:`record_per_request` resolves them at every
request instead, for the record benchmark.  Both sides: ``/populate`` makes the worker
that serves it record ``POPULATE`` more routes (once per worker), and neither
``/populate`` nor ``/metrics`` is counted.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterable, Tuple

import wsgi_app  # examples/, on gunicorn's --pythonpath

SIDE = os.environ.get("BENCH_SIDE", "ours")
POPULATE = int(os.environ.get("BENCH_POPULATE", "500"))

if SIDE == "theirs":
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client import multiprocess

    REQUESTS = Counter("http_requests", "Requests served, by route.", ["route"])
    LATENCY = Histogram("http_latency_ms", "Request latency in milliseconds, by route.",
                        ["route"], buckets=wsgi_app.BUCKETS)

    _children: Dict[str, Tuple[Any, Any]] = {}

    def record(path: str, milliseconds: float) -> None:
        """As the example: each route's labelled children made once (bounded)."""
        pair = _children.get(path)
        if pair is None:
            pair = (REQUESTS.labels(path), LATENCY.labels(path))
            if len(_children) < wsgi_app.MAX_CACHED:
                _children[path] = pair
        pair[0].inc()
        pair[1].observe(milliseconds)

    def record_per_request(path: str, milliseconds: float) -> None:
        """The labels resolved at every request."""
        REQUESTS.labels(path).inc()
        LATENCY.labels(path).observe(milliseconds)

    def metrics() -> bytes:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        body: bytes = generate_latest(registry)
        return body
else:
    from gotools_compat import event, todo

    record = wsgi_app.record

    def record_per_request(path: str, milliseconds: float) -> None:
        """The labelled context made at every request."""
        wsgi_app.latency.record(event.label(todo(), wsgi_app.route.of(path)), milliseconds)

    def metrics() -> bytes:
        return b"served by the agent\n"


_inner = wsgi_app.make_app(record)
_populated = [False]


def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO") or "/"
    if path == "/metrics":
        body = metrics()
    elif path == "/populate":
        if not _populated[0]:
            _populated[0] = True
            for i in range(POPULATE):
                record("/populate/%d" % i, 1.0)
        body = b"%d\n" % os.getpid()
    else:
        return _inner(environ, start_response)
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
