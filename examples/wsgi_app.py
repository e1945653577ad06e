"""A WSGI app under gunicorn, every worker process exporting to one gotools-agent.

::

    gotools-agent --merge-instances &                   # one series per job, summed over workers
    gunicorn -w 4 --pythonpath examples wsgi_app:app            # each worker imports and connects
    gunicorn -w 4 --preload --pythonpath examples wsgi_app:app  # the master imports and connects
    curl -s localhost:8844/metrics | grep http_             # once; each forked worker exports
                                                            # under its own pid

Nothing else is needed for either form: without ``--preload`` each worker
runs :func:`connect` when it imports the app; with it the master does, and the
exporter's fork handling gives every forked worker its own exporter thread,
channel and identity (``instance`` = ``host:pid``, values from zero).  No
``post_fork`` hook, no shared directory.

Environment: ``WSGI_APP_AGENT`` (the agent's address, default
``http://127.0.0.1:55678``; ``off`` exports nothing), ``WSGI_APP_RATE``
(seconds between exports, default 5; what a SIGKILLed worker recorded since
its last export is lost), ``WSGI_APP_SERVICE`` (the ``job``, default
``wsgi_app``).

:func:`handle` is the app itself; :func:`make_app` wraps it with a function
that records each request, so ``benchmarks/bench_multiprocess.py`` serves the
very same app with prometheus_client's multiprocess mode.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from gotools_compat import event, export, metric, stats, todo, unit
from gotools_compat.export import ocagent

Record = Callable[[str, float], None]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]

BUCKETS = [0.05, 0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000]

route = event.new_string_key("route", "the request path")
latency = stats.Float64("http_latency", "time to handle one request", unit.MILLISECONDS)
metric.HistogramFloat64("http_latency_ms", "Request latency in milliseconds, by route.",
                        BUCKETS, keys=[route]).record(latency)
metric.Scalar("http_requests", "Requests served, by route.", keys=[route]).count_float64(latency)


def handle(environ: Dict[str, Any]) -> Tuple[str, List[Tuple[str, str]], bytes]:
    """The app: answers every path with the pid of the worker that served it."""
    body = b"%d\n" % os.getpid()
    return "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))], body


def make_app(record: Record) -> WSGIApp:
    """:func:`handle` as a WSGI app that calls ``record(path, milliseconds)`` per request."""

    def app(environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = time.perf_counter()
        status, headers, body = handle(environ)
        record(environ.get("PATH_INFO") or "/", (time.perf_counter() - start) * 1000.0)
        start_response(status, headers)
        return [body]

    return app


# The labelled context of each route, made once.  event.label hands out the
# context it made before for the same root and values anyway (with the rows
# it found), but skipping key.of() and label() halves what a request costs.
# Bounded: past MAX_CACHED routes, contexts are made per request (the
# metric's own rows are bounded anyway: max_rows).
MAX_CACHED = 1000
_contexts: Dict[str, event.Context] = {}


def record(path: str, milliseconds: float) -> None:
    """One request, in ``http_latency_ms`` and ``http_requests`` (labelled by route)."""
    ctx = _contexts.get(path)
    if ctx is None:
        ctx = event.label(todo(), route.of(path))
        if len(_contexts) < MAX_CACHED:
            _contexts[path] = ctx
    latency.record(ctx, milliseconds)


def connect() -> Optional[ocagent.Exporter]:
    """Export to the agent of ``WSGI_APP_AGENT`` (None when it is ``off``)."""
    exporter = ocagent.connect(ocagent.Config(
        address=os.environ.get("WSGI_APP_AGENT", "http://127.0.0.1:55678"),
        service=os.environ.get("WSGI_APP_SERVICE", "wsgi_app"),
        rate=float(os.environ.get("WSGI_APP_RATE", "5"))))
    if exporter is not None:
        export.set_exporter(exporter)
    return exporter


exporter = connect()  # at import: in each worker, or once in the master with --preload
app = make_app(record)
