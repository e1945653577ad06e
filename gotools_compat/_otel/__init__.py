"""Metrics as OpenTelemetry SDK data, from plain values (a shared low-level piece).

- :mod:`.data`: the builders (metrics, points, resources), shared by every source;
- :mod:`.ocproto`: OpenCensus protocol messages (what ``gotools-agent``
  receives) as SDK data.

Our own metrics and the app's plain opencensus views are converted on the
app side (``gotools_compat.export._otel_metrics``).  Only the optional
``otel`` extra's packages are imported by these modules, and the core never
imports them.  This package imports nothing of gotools_compat above the
shared pieces, so the agent can use it.

The mapping, the same for our metrics, plain opencensus views and what an
agent receives over the OpenCensus protocol:

=============================  ============================================
opencensus descriptor type     OpenTelemetry data
=============================  ============================================
GAUGE_INT64, GAUGE_DOUBLE      ``Gauge`` (int points stay ``as_int``)
CUMULATIVE_INT64, _DOUBLE      ``Sum``, monotonic, cumulative
CUMULATIVE_DISTRIBUTION        ``Histogram``, cumulative, explicit bounds
GAUGE_DISTRIBUTION             ``Histogram``, delta (OTel has no gauge histogram)
SUMMARY                        left out (the SDK's data model has no Summary)
=============================  ============================================

Label values become string attributes named after the label keys (the
opencensus row key, so the same series whatever path it takes); a label
without a value ("no value") is left out of the attributes.  A metric's row
of tag combinations beyond its ``max_rows`` carries the OpenTelemetry SDK's
own overflow attribute set, ``{"otel.metric.overflow": True}``.

Histogram points carry the bounds as declared (as floats), per-bucket counts
with the overflow bucket last, count, sum, and min/max where known
(opencensus distributions have none: those points leave them unset).
"""
