"""Protobuf bytes written directly, without building protobuf messages.

A shared low-level piece: plain values in (names, ints, floats, tuples, row
snapshots as ``gotools_compat.metric`` yields them), serialized
``opencensus.proto`` bytes out.  It imports nothing of gotools_compat.

- :mod:`.protobuf`: varints, length-delimited fields, timestamps, the request limit;
- :mod:`.metrics`: a metric's rows as ``metrics.v1.Metric`` bytes, and request packing;
- :mod:`.spans`: an ended span as ``trace.v1.Span`` bytes, and request packing.
"""
