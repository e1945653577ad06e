"""The opencensus internals that the Prometheus exporter needs.

Two things only: the metrics of the app's plain-opencensus views (every view
that is not one of ours, read without converting ours, whose rows the
exporter renders itself; the OpenTelemetry exporter reads them too), and
taking over a stock ``opencensus-ext-prometheus`` exporter (E16).
"""

from __future__ import annotations

import datetime
import logging
import types
from typing import Any, Iterable, Iterator, List, Tuple

from opencensus.stats import metric_utils
from opencensus.stats import stats as oc_stats

from gotools_compat._oc.views import CompatViewData

log = logging.getLogger(__name__)


def foreign_metrics() -> Iterator[Any]:
    """opencensus ``Metric`` objects of every registered view that is not ours.

    What ``stats.get_metrics()`` gives for those views, minus its race (E11):
    each row map is copied before it is read, as another thread may add rows.
    """
    mtvm = oc_stats.stats.view_manager.measure_to_view_map
    # list() of a dict's values is one C call: no "changed size" error.
    view_data_lists = list(mtvm._measure_to_view_data_list_map.values())
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for view_datas in view_data_lists:
        for view_data in list(view_datas):
            if isinstance(view_data, CompatViewData):
                continue
            rows = dict(view_data.tag_value_aggregation_data_map)
            if not rows:
                continue
            frozen = types.SimpleNamespace(view=view_data.view, start_time=view_data.start_time,
                                           tag_value_aggregation_data_map=rows)
            metric = metric_utils.view_data_to_metric(frozen, now)
            if metric is not None:
                yield metric


def distribution_buckets(value: Any) -> Tuple[List[float], List[int]]:
    """A foreign metric's distribution point as (bounds, per-bucket counts, overflow last).

    A view with no bounds has no buckets: its whole count is the one open bucket.
    """
    explicit = value.bucket_options.type_ if value.bucket_options is not None else None
    bounds = [float(b) for b in explicit.bounds] if explicit is not None else []
    if value.buckets:
        return bounds, [b.count for b in value.buckets]
    return bounds, [0] * len(bounds) + [value.count]


def _registries_of(stock: Any) -> List[Any]:
    from prometheus_client import REGISTRY

    found: List[Any] = [REGISTRY]
    for candidate in (getattr(stock, "gatherer", None),
                      getattr(getattr(stock, "options", None), "registry", None)):
        if candidate is not None and all(candidate is not r for r in found):
            found.append(candidate)
    return found


def take_over(stock: Any, collector: Any) -> int:
    """Put ``collector`` where ``stock``'s collector was; return how many registries.

    ``stock`` is an ``opencensus.ext.prometheus.stats_exporter.PrometheusStatsExporter``.
    Its collector is unregistered from every registry it is in (the global
    REGISTRY that its HTTP server serves, and its options' registry); the
    exporter is removed from opencensus's view manager, so it no longer
    receives pushed copies (E8, E18) and never registers its collector again.
    Its HTTP server keeps running (the stock code keeps no handle to stop it)
    and now serves ``collector``.
    """
    stock_collector = getattr(stock, "collector", None)
    if stock_collector is None or not hasattr(stock, "options"):
        raise TypeError("expected a stock opencensus-ext-prometheus exporter, not %r" % (stock,))
    manager = oc_stats.stats.view_manager
    if any(e is stock for e in manager.measure_to_view_map.exporters):
        manager.unregister_exporter(stock)
    replaced = 0
    for registry in _registries_of(stock):
        try:
            registry.unregister(stock_collector)
        except KeyError:
            continue
        if not _holds(registry, collector):
            registry.register(collector)
        replaced += 1
    # Whatever still holds the stock collector now gets ours.
    stock_collector.collect = collector.collect
    stock_collector.register_view = _ignore
    log.debug("took over stock Prometheus exporter %r in %d registries", stock, replaced)
    return replaced


def _ignore(*args: Any) -> None:
    return None


def _holds(registry: Any, collector: Any) -> bool:
    held: Iterable[Any] = getattr(registry, "_collector_to_names", {})
    return any(c is collector for c in held)
