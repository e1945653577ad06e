"""Forwarding the spans the agent receives as OTLP/HTTP traces (``gotools-agent --otlp URL``).

Every span the agent keeps (see :class:`._traces.TraceStore`: after its
strings are cut to 4,096 characters, at most ``max_bytes_per_span``) is
handed to :meth:`TraceForwarder.submit` with its sender's node and resource.
The queue, the thread, the backoff and the counters are the metrics'
(:mod:`._otlp_sender`); the thread converts the spans with
:mod:`._otlp_spans` and sends them, at most ``batch`` a
request, with the OpenTelemetry SDK's ``OTLPSpanExporter`` to
``<URL>/v1/traces``.

Spans are not cumulative, so every one is sent once: pending spans are kept
in order until a send succeeds (at most ``max_spans``; spans beyond that,
requests the thread could not keep up with, and what is still pending at the
stop are dropped and counted in ``gotools_agent_otlp_dropped_spans_total``).
A span that cannot be converted (ids of the wrong length, or all zero) is
counted in ``gotools_agent_otlp_rejected_spans_total``.
"""

from __future__ import annotations

import logging
from typing import Any, List, Optional, Tuple

from ._otlp_sender import Sender, signal_url
from ._traces import MAX_STRING

logger = logging.getLogger(__name__)


def traces_url(endpoint: str) -> str:
    """``/v1/traces`` of a base URL (or of a full ``/v1/metrics`` one); a full one is kept."""
    return signal_url(endpoint, "traces")


def _cut(text: str) -> str:
    return text[:MAX_STRING]


class TraceForwarder(Sender):
    """Sends every span the agent keeps to an OTLP/HTTP endpoint."""

    unit = "spans"
    requires = ("gotools_compat._otel.ocproto", "gotools_compat.agent._otlp_spans",
                "opentelemetry.exporter.otlp.proto.http.trace_exporter:OTLPSpanExporter",
                "opentelemetry.sdk.trace.export:SpanExportResult.SUCCESS")
    exports = "failed_trace_exports"
    thread_name = "gotools-agent-otlp-traces"

    def __init__(self, endpoint: str, *, timeout: float = 10.0, max_queue: int = 256,
                 max_spans: int = 10_000, max_backoff: float = 30.0, batch: int = 512,
                 exporter: Any = None) -> None:
        self._ocproto, self._spans, exporter_class, success = self.load_otel()
        super().__init__(traces_url(endpoint), exporter_class, success, exporter=exporter,
                         timeout=timeout, max_queue=max_queue, max_backoff=max_backoff)
        self._max_spans = max_spans
        self._batch = max(1, batch)
        self._pending: List[Any] = []  # only the forwarding thread touches it

    def submit(self, node: Any, resource: Any, spans: List[Any]) -> None:
        """Queue the kept spans of one request (``node``: the sender's, of the
        stream; ``resource``: the request's, or None); never blocks on the network."""
        self._enqueue((node, resource, spans), len(spans))

    # -- the forwarding thread -------------------------------------------------

    def _merge(self, item: Tuple[Any, Optional[Any], List[Any]]) -> None:
        node, resource, spans = item
        ocspans = self._spans
        otel_resource = self._ocproto.resource_from_node(node, resource)
        for span in spans:
            try:
                converted = ocspans.span_from_proto(span, otel_resource, node, _cut)
            except Exception as exc:  # noqa: BLE001 - one bad span must not stop the thread
                logger.warning("OTLP: a span could not be converted: %s", exc)
                converted = None
            if converted is None:
                self.rejected += 1
            elif self._pending_count >= self._max_spans:
                self._drop(1)
            else:
                self._pending.append(converted)
                self._pending_count += 1

    def _send(self) -> bool:
        pending = self._pending
        while pending:
            batch = pending[:self._batch]
            if not self._export(len(batch), self._exporter.export, batch):
                return False
            del pending[:len(batch)]
            self._pending_count = len(pending)
        return True
