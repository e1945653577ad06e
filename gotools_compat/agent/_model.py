"""What the receivers hand to the store: metrics in one plain form, whatever the wire.

The gRPC/protobuf reader (:mod:`._protorequest`) and the JSON reader (:mod:`._json`)
both produce it, so the store never touches protobuf messages or JSON dicts:

- a metric is ``(desc, series)``; ``desc`` is ``(name, description, unit,
  type, label_keys)`` with ``type`` the ``MetricDescriptor.Type`` number,
  ``series`` a list or a reader that yields them (:class:`SeriesOf`);
- a series is ``(label_values, value)``, the label values as ``str`` (empty:
  no value) and the value of the series' last point: an ``int`` (int64), a
  ``float`` (double), a histogram ``(count, sum, bounds, bucket_counts)``, a
  :class:`Summary`, or None for a point without a value.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

Desc = Tuple[str, str, str, int, Tuple[str, ...]]
Series = Tuple[Sequence[str], Any]
Metric = Tuple[Desc, "SeriesOf"]


class SeriesOf(Protocol):
    """The series of one metric: a list, or a reader that reads them as they are
    iterated (and again at every iteration); reading can raise BadRequest."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Series]: ...


class BadRequest(ValueError):
    """A request that is not valid: 400 over HTTP, INVALID_ARGUMENT over gRPC."""


class Summary:
    """A summary point: count, sum and ``(quantile 0..1, value)`` pairs."""

    __slots__ = ("count", "sum", "quantiles")

    def __init__(self, count: int, sum: float,
                 quantiles: Tuple[Tuple[float, float], ...]) -> None:
        self.count = count
        self.sum = sum
        self.quantiles = quantiles


class Export:
    """One metrics request, read.

    ``node`` is the sender's serialized ``Node`` (None: not in this request);
    :meth:`request` rebuilds the opencensus-proto ``ExportMetricsServiceRequest``
    (for forwarding), only when asked.
    """

    __slots__ = ("node", "metrics", "_rebuild")

    def __init__(self, node: Optional[bytes], metrics: List[Metric],
                 rebuild: Callable[[], Any]) -> None:
        self.node = node
        self.metrics = metrics
        self._rebuild = rebuild

    def request(self) -> Any:
        return self._rebuild()


def bounded_cache_put(cache: Dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """``cache[key] = value``, emptying the cache first when it is full."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
