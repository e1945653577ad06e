"""What a forked child needs from the core's rows, for the ocagent exporter.

A child of ``os.fork()`` inherits a copy of every row.  Exported as is, the
child would report the parent's totals as its own (and the agent would count
them twice), so the child starts every row from zero, with series that start
at the fork.  The rows are reset in place, not removed, because contexts
cache the row they record into.

The core's locks are held across the fork so that no row is copied half
updated and no lock is copied held by a thread that does not exist in the
child.
"""

from __future__ import annotations

from array import array
from typing import Any, List

from gotools_compat import metric as metric_module
from opencensus.metrics.export import value as oc_value

from gotools_compat._oc import aggregation as agg
from gotools_compat._oc import views


def _recorders() -> List[views.Recorder]:
    # Called with metric._lock held.
    return [entry.recorder for entry in metric_module._metrics.values()]


def acquire() -> None:
    """Before a fork: hold the metric registry lock, then every metric's lock."""
    metric_module._lock.acquire()
    for recorder in _recorders():
        recorder.lock.acquire()


def release() -> None:
    """After a fork, in parent and child: undo :func:`acquire`."""
    for recorder in reversed(_recorders()):
        recorder.lock.release()
    metric_module._lock.release()


def _reset_row(row: agg.Row) -> None:
    del row.buf[:]
    if isinstance(row, agg.CountRow):
        row.count = 0
    elif isinstance(row, agg.SumRow):
        row.sum = 0 if row.value_type is oc_value.ValueLong else 0.0
    elif isinstance(row, agg.LastValueRow):
        row.last = 0 if row.value_type is oc_value.ValueLong else 0.0
    elif isinstance(row, agg.HistogramRow):
        row.counts = array("q", bytes(8 * len(row.counts)))
        row.sum = 0 if isinstance(row.sum, int) else 0.0
        row.min = row.max = None
        row.mean = row.m2 = 0.0


def reset_in_child() -> None:
    """In a child, after :func:`release`: every row zero, every series starting now."""
    start = views._iso_now()
    with metric_module._lock:
        recorders = _recorders()
    for recorder in recorders:
        with recorder.lock:
            recorder.start_time = start
            for row in recorder.rows.values():
                _reset_row(row)
    mtvm: Any = views._measure_to_view_map()
    for view_datas in list(mtvm._measure_to_view_data_list_map.values()):
        for view_data in view_datas:
            if isinstance(view_data, views.CompatViewData):
                view_data._start_time = start
