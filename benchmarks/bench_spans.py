"""Spans against OpenTelemetry's SDK and opencensus's Tracer, in one process.

Figures of issue 8:
- a sampled-out span (start_span + end) <= 0.15x the OpenTelemetry SDK's
  non-recording span (start_span + end under ALWAYS_OFF)
- a recorded span (start_span + end, queued by the ocagent exporter)
  <= 0.1x an opencensus Tracer span (start_span + end_span, AlwaysOnSampler,
  queued by the same exporter's stock trace exporter)
- export: <= 10 us per span on the exporter thread (ours: encode to bytes;
  the stock path: SpanData -> trace_pb2.Span -> bytes, about 32 us)
"""

from __future__ import annotations

import datetime

from _common import median_of, per_call, report
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from gotools_compat import event, export
from gotools_compat._oc import ocagent as stock_ocagent
from gotools_compat._wire import spans
from gotools_compat.export import _ocagent_requests as _requests
from gotools_compat.export import ocagent

from opencensus.ext.ocagent.trace_exporter import utils as oc_trace_utils  # noqa: E402
from opencensus.trace import samplers  # noqa: E402
from opencensus.trace import tracer as oc_tracer  # noqa: E402

N = 50_000


def main() -> None:
    # Sampled out: ours under an opt-in AlwaysOffSampler, OpenTelemetry under ALWAYS_OFF.
    otel = TracerProvider(sampler=ALWAYS_OFF).get_tracer("bench")

    def otel_span() -> None:
        otel.start_span("name").end()

    ctx = event.background()
    start_span = event.start_span

    def our_span() -> None:
        _, end = start_span(ctx, "name")
        end()

    event.set_sampler(samplers.AlwaysOffSampler())
    ours = per_call(our_span, N)
    peer = per_call(otel_span, N)
    report("sampled-out span vs OpenTelemetry SDK non-recording span", ours, peer, 0.15)
    parent, _ = start_span(ctx, "parent")

    def child_span() -> None:
        _, end = start_span(parent, "name")
        end()

    report("  (a child of a sampled-out span, same peer)", per_call(child_span, N), peer, 0.15)
    event.set_sampler(None)

    # Recorded: both queued by one ocagent exporter that never sends (rate 1 h,
    # no agent); the queues are emptied between runs.
    exporter = ocagent.connect(ocagent.Config(address="127.0.0.1:9", rate=3600))
    assert exporter is not None
    export.set_exporter(exporter)
    tracer = oc_tracer.Tracer(sampler=samplers.AlwaysOnSampler(),
                              exporter=exporter.trace_exporter)

    def oc_span() -> None:
        tracer.start_span("name")
        tracer.end_span()

    def drain() -> None:
        exporter._spans.clear()
        exporter.trace_exporter.transport.spans.clear()

    def timed(fn: object, n: int) -> float:
        drain()
        return per_call(fn, n, repeat=1)  # type: ignore[arg-type]

    ours = median_of(lambda: timed(our_span, N // 5))
    peer = median_of(lambda: timed(oc_span, N // 5))
    report("recorded span vs opencensus Tracer span", ours, peer, 0.1)

    # Export: a span with two tags and one log event, on the exporter thread.
    method, n = event.new_string_key("method"), event.new_int_key("n")
    sctx, end = start_span(ctx, "textDocument/hover", method.of("hover"), n.of(3))
    event.print(sctx, "cache miss", method.of("x"))
    end()
    span = event.get_span(sctx)
    with tracer.span("textDocument/hover") as oc:
        oc.add_attribute("method", "hover")
        oc.add_attribute("n", 3)
        oc.add_annotation("cache miss", method="x")
    data = tracer.tracer.get_span_datas(oc)[0]

    def stock() -> None:
        oc_trace_utils.translate_to_trace_proto(data).SerializeToString()

    ours = per_call(lambda: spans.encode(span), N // 5)
    peer = per_call(stock, N // 20)
    report("export one span (encode) vs the stock conversion", ours, peer, 1.0, "us", 1e6)
    print("%-58s ours %10.1f us  (target <= 10 us)" % ("export one span, absolute", ours * 1e6))
    first = _requests.first_fields(stock_ocagent.node("s", "h", 1, datetime.datetime.now(
        datetime.timezone.utc)), stock_ocagent.resource())
    batch = [span] * 1000
    per_span = per_call(lambda: spans.requests(batch, first), 20) / 1000
    print("%-58s ours %10.1f us  (target <= 10 us)" % ("export 1000 spans as requests, per span",
                                                        per_span * 1e6))
    drain()
    export.set_exporter(None)
    exporter.close(timeout=0.1)


if __name__ == "__main__":
    main()
