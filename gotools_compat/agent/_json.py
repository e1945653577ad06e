"""HTTP bodies (``POST /v1/metrics``, ``/v1/trace``): JSON or binary protobuf.

Metrics bodies are read with ``json.loads`` and the common shapes go straight
from the decoded dicts into the store's form (:mod:`._jsonfast`), their
opencensus-proto request built from the same dicts only when someone asks
for it (:mod:`._jsonrequest`, for OTLP forwarding); anything else goes
through ``json_format.ParseDict``, which also produces the error message for
a 400.  The cyclic collector is paused while a JSON request is read and
stored (:func:`collector_paused`).
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from typing import Any, Iterator

from google.protobuf import json_format

from gotools_compat._oc import proto

from . import _jsonfast, _jsonrequest, _protorequest
from ._jsondoc import MAX_DEPTH as MAX_DEPTH
from ._jsondoc import load as _load
from ._jsondoc import too_deep as too_deep
from ._jsonfast import FALLBACK as _FALLBACK
from ._jsonfast import MetricsRequest as MetricsRequest
from ._model import BadRequest, Export

proto.install()

from opencensus.proto.agent.trace.v1 import trace_service_pb2  # noqa: E402

TraceRequest = trace_service_pb2.ExportTraceServiceRequest


# -- the cyclic collector, paused while a request's JSON tree is alive ---------

_PAUSE_LIMIT = 1.0  # seconds the collector may stay paused without a break
_pause_lock = threading.Lock()
_pausers = 0
_paused_at = 0.0  # 0.0: the collector is not paused by us


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a JSON request is read and stored.

    ``json.loads`` builds some 30 dicts and lists per histogram series, alive
    until the request is stored.  They form no cycles and reference counting
    frees them, but while the collector runs each is traversed by several young
    collections and makes a full collection of the whole heap due sooner: the
    pause makes HTTP/JSON ingest 1.25-1.4 times as fast (benchmarks/
    bench_agent.py, with and without it back to back: 39,400 against 28,100
    and 32,500 against 26,200 series per CPU-second).
    So the first request in pauses the collector
    if it is enabled and the last one out enables it again.  A collector that
    the application disabled is left alone, and one paused for longer than
    ``_PAUSE_LIMIT`` (overlapping requests without a break) is enabled again
    at the next request until the requests stop overlapping: garbage from
    other threads is collected late, never not at all.
    """
    global _pausers, _paused_at
    with _pause_lock:
        if _pausers == 0 and gc.isenabled():
            gc.disable()
            _paused_at = time.monotonic()
        elif _paused_at and time.monotonic() - _paused_at > _PAUSE_LIMIT:
            gc.enable()
            _paused_at = 0.0
        _pausers += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pausers -= 1
            if _pausers == 0 and _paused_at:
                gc.enable()
                _paused_at = 0.0


def parse_metrics(body: bytes, max_depth: int = MAX_DEPTH) -> Export:
    """A JSON ``ExportMetricsServiceRequest``; BadRequest if invalid.  Bodies
    the fast path does not take may nest at most ``max_depth`` deep."""
    doc = _load(body)
    try:
        return _jsonfast.export(doc, lambda: _request_of(doc))
    except _FALLBACK:
        return _protorequest.from_proto(_slow(doc, MetricsRequest(), max_depth))


def parse_trace(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON ``ExportTraceServiceRequest``; BadRequest if invalid or nested
    more than ``max_depth`` deep."""
    return _slow(_load(body), TraceRequest(), max_depth)


def parse_binary_metrics(body: bytes) -> Export:
    """A binary ``ExportMetricsServiceRequest``; BadRequest if invalid,
    including a string field that is not valid UTF-8."""
    return _protorequest.export(_protorequest.parse(body))


def _slow(doc: Any, request: Any, max_depth: int = MAX_DEPTH) -> Any:
    if not isinstance(doc, dict):
        raise BadRequest("invalid request: a JSON object is expected")
    if too_deep(doc, max_depth):
        raise BadRequest("invalid %s: JSON nested more than %d deep"
                         % (request.DESCRIPTOR.name, max_depth))
    try:
        return json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, OverflowError,
            RecursionError) as exc:  # OverflowError: json_format on a huge JSON int
        raise BadRequest("invalid %s: %s" % (request.DESCRIPTOR.name, exc)) from None


def _request_of(doc: Any) -> Any:
    try:
        return _jsonrequest.request(doc)
    except _FALLBACK:
        return _slow(doc, MetricsRequest())
