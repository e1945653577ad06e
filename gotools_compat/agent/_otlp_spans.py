"""OpenCensus protocol spans as OpenTelemetry SDK spans (for the agent's OTLP forwarding).

What ``gotools-agent`` receives on ``TraceService.Export`` and ``POST
/v1/trace`` is an ``ExportTraceServiceRequest`` of ``opencensus.proto``
spans.  :func:`span_from_proto` turns one into the SDK's ``ReadableSpan``,
which an OTel ``SpanExporter`` (OTLP over HTTP or gRPC) sends as OTLP::

    resource = ocproto.resource_from_node(request.node, request.resource)
    spans = [s for s in (span_from_proto(p, resource) for p in request.spans) if s]
    otlp_span_exporter.export(spans)

The mapping:

- ``trace_id`` (16 bytes) and ``span_id`` (8 bytes) are kept; a span whose
  ids are of another length, or all zero, is refused (None).
- ``parent_span_id``: the parent span; empty or all zero, a root span.  The
  parent is remote when ``same_process_as_parent_span`` is false.
- ``name``, ``start_time``, ``end_time``: as they are, in nanoseconds.
- ``kind``: SERVER and CLIENT as they are; UNSPECIFIED becomes INTERNAL (the
  SDK has no unspecified kind; OTLP's spec lets a receiver take an
  unspecified kind as INTERNAL).
- ``attributes``: with their types (string, int, bool, double).
- ``status``: code 0 is UNSET; any other code is ERROR with the message, and
  the OpenCensus code is kept as the attribute ``opencensus.status_code``.
- annotations are events named by their description (an annotation with
  none, as Go x/tools sends, by its attributes as ``k=v, ...``) with their
  attributes; message events are events named ``message`` with OpenTelemetry's
  ``rpc.message.type`` (``SENT``/``RECEIVED``), ``rpc.message.id``,
  ``rpc.message.uncompressed_size`` and ``rpc.message.compressed_size``.
- links (trace, span, attributes), the span's ``tracestate``, and the counts of
  attributes, events and links that the sender dropped.
- a span's own ``resource`` replaces the request's, as OpenCensus says.

Strings go through ``cut`` (the agent cuts them to the same 4,096
characters as on ``/debug/tracez``).  This module imports the ``otel``
extra's packages; the agent imports it only when it forwards
(:meth:`._otlp_traces.TraceForwarder.load_otel`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from gotools_compat._otel import data as sdk
from gotools_compat._otel import ocproto

from ._traces import _attribute

with sdk.quiet_imports():
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
    from opentelemetry.trace.status import Status, StatusCode

Cut = Callable[[str], str]

_KINDS = {1: SpanKind.SERVER, 2: SpanKind.CLIENT}
_MESSAGE_TYPES = {1: "SENT", 2: "RECEIVED"}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


def _same(text: str) -> str:
    return text


class ForwardedSpan(ReadableSpan):
    """A ``ReadableSpan`` that carries the sender's own dropped counts."""

    def __init__(self, *args: Any, dropped: Tuple[int, int, int] = (0, 0, 0),
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]


def _ns(stamp: Any) -> int:
    return int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)


def _id(raw: bytes, size: int) -> Optional[int]:
    """The id as an int; None if it is not ``size`` bytes or is all zero."""
    value = int.from_bytes(raw, "big")
    return value if len(raw) == size and value else None


def attributes_of(message: Any, cut: Cut = _same) -> Dict[str, Any]:
    """An OpenCensus ``Span.Attributes`` as OTel attributes (valueless ones left out)."""
    out: Dict[str, Any] = {}
    for key, value in message.attribute_map.items():
        converted = _attribute(value, cut)
        if converted is not None:
            out[cut(key)] = converted
    return out


def _trace_state(message: Any, cut: Cut) -> Optional[TraceState]:
    entries = [(cut(e.key), cut(e.value)) for e in message.entries]
    return TraceState(entries) if entries else None


def _events(span: Any, cut: Cut) -> List[Event]:
    events = []
    for event in span.time_events.time_event:
        at = _ns(event.time)
        which = event.WhichOneof("value")
        if which == "annotation":
            attrs = attributes_of(event.annotation.attributes, cut)
            name = cut(event.annotation.description.value or ", ".join(
                "%s=%s" % item for item in sorted(attrs.items())))
            events.append(Event(name, attrs, at))
        elif which == "message_event":
            message = event.message_event
            events.append(Event("message", {
                "rpc.message.type": _MESSAGE_TYPES.get(message.type, "UNSPECIFIED"),
                "rpc.message.id": int(message.id),
                "rpc.message.uncompressed_size": int(message.uncompressed_size),
                "rpc.message.compressed_size": int(message.compressed_size)}, at))
    return events


def _links(span: Any, cut: Cut) -> List[Link]:
    links = []
    for link in span.links.link:
        trace_id, span_id = _id(bytes(link.trace_id), 16), _id(bytes(link.span_id), 8)
        if trace_id is None or span_id is None:
            continue
        context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=_SAMPLED)
        links.append(Link(context, attributes_of(link.attributes, cut)))
    return links


def span_from_proto(span: Any, resource: sdk.Resource, node: Any = None,
                    cut: Cut = _same) -> Optional[ForwardedSpan]:
    """One ``opencensus.proto.trace.v1.Span`` as an SDK span, or None if its ids are bad.

    ``resource`` is the request's (see :func:`ocproto.resource_from_node`);
    ``node`` is needed only for spans that carry a resource of their own.
    """
    trace_id, span_id = _id(bytes(span.trace_id), 16), _id(bytes(span.span_id), 8)
    if trace_id is None or span_id is None:
        return None
    trace_state = _trace_state(span.tracestate, cut)
    context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED,
                          trace_state=trace_state)
    parent = None
    raw_parent = bytes(span.parent_span_id)
    if raw_parent.strip(b"\0"):
        parent_id = _id(raw_parent, 8)
        if parent_id is None:
            return None
        remote = span.HasField("same_process_as_parent_span") and \
            not span.same_process_as_parent_span.value
        parent = SpanContext(trace_id, parent_id, is_remote=remote, trace_flags=_SAMPLED,
                             trace_state=trace_state)
    attrs = attributes_of(span.attributes, cut)
    status = Status(StatusCode.UNSET)
    if span.status.code:
        status = Status(StatusCode.ERROR, cut(span.status.message))
        attrs["opencensus.status_code"] = int(span.status.code)
    if span.HasField("resource"):
        resource = ocproto.resource_from_node(node, span.resource)
    time_events = span.time_events
    dropped = (int(span.attributes.dropped_attributes_count),
               int(time_events.dropped_annotations_count)
               + int(time_events.dropped_message_events_count),
               int(span.links.dropped_links_count))
    return ForwardedSpan(
        cut(span.name.value), context, parent, resource, attrs, _events(span, cut),
        _links(span, cut), _KINDS.get(span.kind, SpanKind.INTERNAL),
        status=status, start_time=_ns(span.start_time), end_time=_ns(span.end_time),
        instrumentation_scope=sdk.SCOPE, dropped=dropped)
