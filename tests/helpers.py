"""Small helpers shared by the core tests."""

from __future__ import annotations

import http.client
import itertools
import threading
from typing import Any, Collection, Dict, List, Optional, Tuple

from opencensus.stats import stats as oc_stats
from prometheus_client.parser import text_string_to_metric_families

from gotools_compat import metric

_names = itertools.count()


def unique(prefix: str) -> str:
    """A metric or measure name no other test uses.

    Prefer the ``registry`` fixture (tests/conftest.py): in a fresh registry a
    fixed name is free.  Kept for tests not yet converted (tests/test_pages_http.py).
    """
    return "%s_%d" % (prefix, next(_names))


def oc_metric(name: str) -> Any:
    """The opencensus Metric of that name from the stock get_metrics()."""
    for m in oc_stats.stats.get_metrics():
        if m.descriptor.name == name:
            return m
    raise AssertionError("opencensus has no metric %r" % name)


def oc_points(name: str) -> Dict[Tuple[Optional[str], ...], Any]:
    """Label values -> the point value of each series of an opencensus metric."""
    m = oc_metric(name)
    return {tuple(lv.value for lv in ts.label_values): ts.points[0].value
            for ts in m.time_series}


def data(name: str) -> metric.MetricData:
    for d in metric.collect():
        if d.handle() == name:
            return d
    raise AssertionError("no metric %r" % name)


def entry(name: str) -> metric.Registered:
    """The metric of that name as exporters see it (``metric.registered()``)."""
    for registered in metric.registered():
        if registered.name == name:
            return registered
    raise AssertionError("no metric %r" % name)


def buckets(dist: Any) -> List[int]:
    return [b.count for b in dist.buckets]


def http_post(port: int, path: str, body: bytes,
              content_type: str = "application/json") -> Tuple[int, bytes]:
    """POST ``body`` to 127.0.0.1:``port``; the status and the response body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a Prometheus text by (name, sorted labels); fails on a duplicate series."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in found, "duplicate series %r" % (key,)
            found[key] = s.value
    return found


def thread_started(before: Collection[threading.Thread], name: str) -> threading.Thread:
    """The one thread named ``name`` started since ``before = threading.enumerate()``."""
    [thread] = [t for t in threading.enumerate() if t.name == name and t not in before]
    return thread
