"""View registration, the record path and tag mapping.

Each metric is an opencensus ``View`` registered with opencensus's view
manager under the metric's name.  Its ``ViewData`` is a :class:`CompatViewData`
whose rows are our :mod:`aggregation` rows: opencensus's ``get_metrics()``,
its exporters and its ``MeasurementMap.record`` all read and write the very
same rows as our record path.
"""

from __future__ import annotations

import collections
import datetime
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

from opencensus.stats import stats as oc_stats
from opencensus.stats import view_data as oc_view_data
from opencensus.tags import TagContext

from gotools_compat._oc.aggregation import Aggregation, Labels, Row

log = logging.getLogger(__name__)

# Label value of every column of the row that takes the values of tag
# combinations beyond a metric's max_rows (see metric.MAX_ROWS).
OVERFLOW = "__overflow__"

_registry_lock = threading.Lock()


def _measure_to_view_map() -> Any:
    return oc_stats.stats.view_manager.measure_to_view_map


def iso_now() -> str:
    # The format opencensus uses for view start times, without utcnow() (E13).
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def opencensus_measure(name: str, description: str, unit: str, is_int: bool) -> Any:
    """The opencensus measure for one of our measures.

    A measure of that name that an app already registered with opencensus is
    adopted (so its ``MeasurementMap`` records reach our rows); one of the
    other number type is a ValueError.
    """
    from opencensus.stats import measure as oc_measure  # loads with the first definition

    kind = oc_measure.MeasureInt if is_int else oc_measure.MeasureFloat
    with _registry_lock:
        existing = _measure_to_view_map()._registered_measures.get(name)
    if existing is None:
        return kind(name, description, unit)
    if not isinstance(existing, kind):
        raise ValueError("opencensus already has a measure named %r of type %s"
                         % (name, type(existing).__name__))
    return existing


class Recorder:
    """The rows of one metric, one column per label key name, and how to find them.

    Rows are keyed by their label values (a str, or None for "no value").
    The subscriber that finds a row from a recording context is the metric's
    (``gotools_compat.metric``); here are the row table, the subscriber of a
    metric without keys and the rows of opencensus tag maps.
    """

    def __init__(self, name: str, columns: Tuple[str, ...], aggregation: Aggregation,
                 accept: Callable[[Any], Any], max_rows: int) -> None:
        self.name = name
        self.columns = columns
        self.aggregation = aggregation
        self.accept = accept  # the measure's full validation, for the opencensus path
        self.max_rows = max_rows
        self.lock = threading.Lock()
        self.rows: Dict[Labels, Row] = {}
        self.start_time = iso_now()
        self._none = (None,) * len(columns)
        self._overflow_warned = False
        self.row0: Optional[Row] = None

    # The subscriber of a metric without keys.  Called on every record: keep it short.

    def record_nokey(self, ctx: Any, value: Any) -> None:
        row = self.row0
        if row is None:
            row = self.row0 = self.row((), ())
        row.add(value)

    # Finding rows.

    def row(self, labels: Labels, tags: Tuple[Any, ...]) -> Row:
        row = self.rows.get(labels)
        if row is not None:
            return row
        with self.lock:
            row = self.rows.get(labels)
            if row is None:
                if len(self.rows) >= self.max_rows:
                    return self._overflow_row()
                row = self.rows[labels] = self.aggregation.new_row(self.lock, labels, tags)
        return row

    def _overflow_row(self) -> Row:
        # Called with the lock held.
        labels = (OVERFLOW,) * len(self.columns)
        row = self.rows.get(labels)
        if row is None:
            row = self.rows[labels] = self.aggregation.new_row(self.lock, labels, labels)
        if not self._overflow_warned:
            self._overflow_warned = True
            log.warning("metric %r reached its limit of %d rows; values of further tag "
                        "combinations are counted in the row labelled %r", self.name,
                        self.max_rows, OVERFLOW)
        return row

    def ambient_row(self) -> Row:
        tag_map = TagContext.get()
        return self.row_for_tag_map(tag_map)

    def row_for_tag_map(self, tag_map: Any) -> Row:
        if tag_map is None or not self.columns:
            labels = self._none
        else:
            mapping = tag_map.map
            labels = tuple(mapping.get(column) for column in self.columns)
        return self.row(labels, labels)

    def reset(self, start_time: str) -> None:
        """Every row back to zero, series starting at ``start_time``; lock held by the caller."""
        self.start_time = start_time
        for row in self.rows.values():
            row.reset()

    def snapshot_rows(self) -> List[Row]:
        with self.lock:
            return list(self.rows.values())


class CompatViewData(oc_view_data.ViewData):  # type: ignore[misc]
    """opencensus ViewData over a Recorder's rows."""

    def __init__(self, view: Any, recorder: Recorder) -> None:
        super().__init__(view=view, start_time=recorder.start_time, end_time=recorder.start_time)
        self.recorder = recorder

    @property
    def start_time(self) -> str:
        return self.recorder.start_time

    @property
    def tag_value_aggregation_data_map(self) -> Dict[Labels, Row]:
        # A copy: opencensus iterates it while other threads add rows (E11).
        recorder = self.recorder
        with recorder.lock:
            return dict(recorder.rows)

    def record(self, context: Any, value: Any, timestamp: Any, attachments: Any = None) -> None:
        # opencensus's MeasurementMap.record path (E8's copies stay theirs).
        accepted = self.recorder.accept(value)
        if accepted is not None:
            self.recorder.row_for_tag_map(context).add(accepted)


# The definitions opencensus's view manager keeps: its views, its measures and
# their view data.  gotools_compat.testing swaps them (with our own registries)
# for empty ones and back; its exporters, which are registrations of another
# kind, stay.  The one MeasureToViewMap object stays too: the view manager, the
# stats recorder and every MeasurementMap hold it.
_DEFINITIONS = ("_measure_to_view_data_list_map", "_registered_views", "_registered_measures",
                "_exported_views")
Definitions = Tuple[Any, ...]


def empty_definitions() -> Definitions:
    """What a view manager with nothing registered holds."""
    return (collections.defaultdict(list), {}, {}, set())


def swap_definitions(definitions: Definitions) -> Definitions:
    """Install ``definitions`` in opencensus's view manager; the ones it held before.

    The caller keeps the returned tuple to install it again later; each dict
    is the live one while installed, so what is registered meanwhile is kept.
    """
    mtvm = _measure_to_view_map()
    with _registry_lock:
        old = tuple(getattr(mtvm, attribute) for attribute in _DEFINITIONS)
        for attribute, value in zip(_DEFINITIONS, definitions):
            setattr(mtvm, attribute, value)
    return old


def register(name: str, description: str, measure: Any, recorder: Recorder) -> CompatViewData:
    """Register a View for ``recorder`` and put our ViewData behind it."""
    from opencensus.stats import view as oc_view  # loads with the first definition

    view = oc_view.View(name, description, list(recorder.columns), measure,
                        recorder.aggregation)
    mtvm = _measure_to_view_map()
    with _registry_lock:
        if name in mtvm._registered_views:
            raise ValueError("opencensus already has a view named %r" % name)
        lists = mtvm._measure_to_view_data_list_map
        if measure.name not in lists:
            # A new measure is a new key: put it in a copy, so that a reader
            # iterating the map meanwhile (stats.get_metrics() in another
            # thread, E11) goes on over the old one instead of raising
            # "dictionary changed size during iteration".
            lists = collections.defaultdict(list, lists)
            lists[measure.name] = []
            mtvm._measure_to_view_data_list_map = lists
        oc_stats.stats.view_manager.register_view(view)
        view_datas = mtvm._measure_to_view_data_list_map[measure.name]
        for i, data in enumerate(view_datas):
            if data.view is view:
                compat = view_datas[i] = CompatViewData(view, recorder)
                break
        else:  # pragma: no cover - register_view always appends
            raise RuntimeError("opencensus did not register view %r" % name)
    return compat
