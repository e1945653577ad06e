"""The stock ``opencensus-ext-ocagent`` exporter's parts, made to work (E1, E2).

- E1: ``proto.install()`` runs before ``opencensus.ext.ocagent`` is imported
  (and google.api_core's ImportWarning about grpcio-status is not raised).
- E2: the stock ``ExportRpcHandler`` calls ``monitored_resource.get_instance()``
  (cloud metadata probes) when it is created.  We never create it: the stock
  ``StatsExporter`` takes its RPC handler as an argument, and ours builds the
  resource from the environment only (``OC_RESOURCE_TYPE`` and
  ``OC_RESOURCE_LABELS``, as opencensus reads them), never from the network.

Everything here takes plain values (names, a pid, callables to send with);
the channel, the streams and our own request bodies are
``gotools_compat.export``'s (``_ocagent_channel``, ``_ocagent_requests``).
"""

from __future__ import annotations

import collections
import datetime
import logging
import warnings
from typing import Any, Callable, Deque, Iterable, Iterator, List

from gotools_compat._oc import proto

proto.install()

# The stock stats exporter imports google.api_core, which warns (ImportWarning,
# an error under -W error) when the optional grpcio-status is missing, and
# (FutureWarning) on Pythons it no longer plans to support (3.9, 3.10); the
# exporter never uses what either warning is about, and we support those Pythons.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*grpcio-status", category=ImportWarning)
    warnings.filterwarnings("ignore", message=".*non-supported Python version",
                            category=FutureWarning)
    from opencensus.ext.ocagent import stats_exporter, utils  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402

from gotools_compat import _oc  # noqa: E402

_oc.patch_clock("opencensus.ext.ocagent.utils")

log = logging.getLogger(__name__)

# Spans waiting for an export, at most (the oldest are dropped beyond).
MAX_QUEUED_SPANS = 10_000


def node(service: str, host: str, pid: int, start: datetime.datetime) -> Any:
    """The stock node (language Python, library versions) with our identity."""
    result = utils.get_node(service, host)
    result.identifier.pid = pid
    result.identifier.start_timestamp.FromDatetime(start)
    return result


def resource() -> Any:
    """The resource from ``OC_RESOURCE_TYPE``/``OC_RESOURCE_LABELS``, else ``global``.

    Never the stock ``monitored_resource`` lookup, which probes cloud metadata
    servers (E2).
    """
    from opencensus.common import resource as oc_resource

    try:
        found = oc_resource.get_from_env()
    except Exception:  # a malformed OC_RESOURCE_LABELS
        log.warning("ignoring malformed OC_RESOURCE_TYPE/OC_RESOURCE_LABELS", exc_info=True)
        found = None
    if found is None or not found.type:
        return resource_pb2.Resource(type="global")
    return resource_pb2.Resource(type=found.type, labels=found.labels or {})


class RpcHandler:
    """What the stock ``StatsExporter`` calls ``send(request)`` on.

    Replaces the stock ``ExportRpcHandler`` (no cloud probe, no immortal
    stream): each request goes out on its own stream, with the node.
    """

    def __init__(self, owner: Any) -> None:
        self._owner = owner

    def send(self, request: Any) -> None:
        self._owner.send_request(request)


def stock_exporter(owner: Any) -> Any:
    """The stock ``StatsExporter``, transported by ``owner.send_request``."""
    return stats_exporter.StatsExporter(RpcHandler(owner))


def stock_metric_bytes(metric: Any) -> bytes:
    """One opencensus ``Metric`` as the stock exporter serializes it."""
    data: bytes = stats_exporter._get_metric_proto(metric).SerializeToString()
    return data


def foreign_metrics(timestamp: datetime.datetime) -> Iterator[Any]:
    """opencensus Metrics of the views that are not ours (plain opencensus views).

    opencensus's own view data is not thread safe (E11): a view whose rows
    changed while we read them is skipped this time, with a debug log.
    """
    from opencensus.stats import metric_utils

    from gotools_compat._oc.views import CompatViewData, _measure_to_view_map

    lists = list(_measure_to_view_map()._measure_to_view_data_list_map.values())
    for view_datas in lists:
        for view_data in list(view_datas):
            if isinstance(view_data, CompatViewData):
                continue
            try:
                metric = metric_utils.view_data_to_metric(view_data, timestamp)
            except RuntimeError:
                log.debug("view %r changed while read; skipped this export",
                          view_data.view.name)
                continue
            if metric is not None:
                yield metric


# Spans: the stock TraceExporter, fed through a queue that our thread drains.

class SpanQueue:
    """An opencensus trace ``Transport``: ``export`` only queues (never blocks).

    Beyond :data:`MAX_QUEUED_SPANS` waiting spans the oldest are dropped.
    """

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self.spans: Deque[Any] = collections.deque(maxlen=MAX_QUEUED_SPANS)

    def export(self, span_datas: Iterable[Any]) -> None:
        self.spans.extend(span_datas)

    def flush(self) -> None:
        pass


class _TraceClient:
    """Stands in for the stock ``TraceServiceStub``: same ``Export`` call, our stream."""

    def __init__(self, send: Callable[[List[bytes]], None]) -> None:
        self._send = send

    def Export(self, requests: Iterable[Any]) -> Iterator[Any]:  # noqa: N802 (gRPC name)
        # Raises SendError, which the stock emit() does not swallow.
        self._send([request.SerializeToString() for request in requests])
        return iter(())


def trace_exporter(service: str, host: str, node_message: Any,
                   send: Callable[[List[bytes]], None]) -> Any:
    """The stock ``TraceExporter`` on our transport, identified by ``node_message``."""
    from opencensus.ext.ocagent import trace_exporter as oc_trace_exporter

    for name in ("opencensus.trace.span", "opencensus.common.utils"):
        _oc.patch_clock(name)
    exporter = oc_trace_exporter.TraceExporter(
        service, host_name=host, endpoint="unused", client=_TraceClient(send),
        transport=SpanQueue)
    exporter.node = node_message
    return exporter
