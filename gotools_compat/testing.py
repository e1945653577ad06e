"""Test support: a fresh, empty registry of metrics and measures for a test.

Metric and measure names are process-wide, as in Go and opencensus: a second
definition under a taken name is the first metric again (its rows, its
counts) when the definition is the same, and a ``ValueError`` when it is not.
So tests that each define ``requests_count`` see each other's counts.  Inside
``with fresh_registry():`` every name is free again::

    from gotools_compat import metric, stats
    from gotools_compat.testing import fresh_registry

    def test_requests_are_counted():
        with fresh_registry():
            requests = stats.Int64("requests", "requests served", "1")
            name = metric.Scalar("requests_count").count_int64(requests)
            requests.record(None, 1)
            [data] = metric.collect()
            assert data.handle() == name and data.rows == [1]

or, with pytest, as a fixture::

    @pytest.fixture
    def registry():
        with fresh_registry():
            yield

What is swapped: the metrics (:func:`gotools_compat.metric.registered`,
:func:`~gotools_compat.metric.collect`), the measure names (``stats``) and
opencensus's view manager's views and measures (``get_metrics()``, views an
app registers itself with opencensus), all at once under the registries'
locks.  On leaving the block the registry that was current before is current
again, with every metric, row and count it had: nothing recorded outside is
lost, nothing defined inside is kept.

- Record path: untouched.  A measure finds its metrics through its own
  subscribers, not through the registry, so recording costs the same inside
  and outside, and a measure made outside the block still records into the
  metrics built on it outside (they are simply not listed while the fresh
  registry is current); the metrics built on it inside stop being fed when
  the block ends.
- Running exporters (``export.prometheus``, ``export.ocagent``,
  ``export.otel``, opencensus's own) read the registry current at each
  collection: inside the block they export the block's metrics only, after it
  the outer ones again, whose series keep their start times.  A metric of the
  same name inside and outside is two metrics: the fresh one starts its own
  series.  The exporters' per-metric caches let go of the metrics not listed
  at that collection (so a closed registry's rows can be freed) and are built
  again for a registry that comes back.  opencensus exporters registered with
  its view manager stay registered.
- Threads: the registry is the process's, not the thread's; every thread
  sees the fresh one while it is current.  Definitions made by other threads
  while a block is entered or left land in one registry or the other, never
  half in each.  Blocks nest; one left out of order (threads) is simply
  closed, and the most recent block still open stays current.
- Forks: a child of ``os.fork()`` inherits the current registry; every open
  registry's rows start from zero in the child, as ever (see
  :mod:`gotools_compat.metric`).

This is for tests: a long-running program has one registry, its own.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from gotools_compat.metric import _registry


@contextlib.contextmanager
def fresh_registry() -> Iterator[None]:
    """An empty registry of metrics, measures and opencensus views for the block."""
    token = _registry.open_fresh()
    try:
        yield
    finally:
        _registry.close(token)


__all__ = ["fresh_registry"]
