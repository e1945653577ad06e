"""Binary metrics requests (gRPC and ``application/x-protobuf``) read into the store's form.

Reading a histogram series field by field out of the opencensus-proto
messages costs about 9 us, most of it wrapping each of the 14 bucket
messages in a Python object to read one int.  So requests are parsed with a
*lean view* of the same schema instead: the same field numbers and wire
types, but the small sub-messages that repeat across series and batches
(label values, buckets, bucket options, descriptors, the node) are declared
``bytes``.  protobuf still does all the parsing; the agent gets each of
those sub-messages as its serialized bytes, which serve as cache keys, and
parses a key with the real message class only the first time it sees it.
Identical bytes are identical messages, so the result is the same.

The lean view is proto2 (field presence for ``node``, no UTF-8 check on
bytes); a sub-message that fails to parse with its real class (a string
that is not UTF-8, say) makes the whole request invalid, as parsing it with
the real classes would have.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from gotools_compat._oc import proto

from ._model import BadRequest, Desc, Export, Metric, Series, Summary, bounded_cache_put

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "gotools_compat.agent.lean"
# (real message, {field: lean type or lean message name}, oneofs); the lean
# messages have the real ones' names (error messages name them).
LAYOUT: Tuple[Tuple[Any, Dict[str, Any], Tuple[str, ...]], ...] = (
    (metrics_pb2.DistributionValue,
     {"count": _F.TYPE_INT64, "sum": _F.TYPE_DOUBLE, "bucket_options": _F.TYPE_BYTES,
      "buckets": _F.TYPE_BYTES}, ()),
    (metrics_pb2.Point,
     {"int64_value": _F.TYPE_INT64, "double_value": _F.TYPE_DOUBLE,
      "distribution_value": "DistributionValue", "summary_value": _F.TYPE_BYTES}, ("value",)),
    (metrics_pb2.TimeSeries, {"label_values": _F.TYPE_BYTES, "points": "Point"}, ()),
    (metrics_pb2.Metric, {"metric_descriptor": _F.TYPE_BYTES, "timeseries": "TimeSeries"}, ()),
    (metrics_service_pb2.ExportMetricsServiceRequest,
     {"node": _F.TYPE_BYTES, "metrics": "Metric", "resource": _F.TYPE_BYTES}, ()),
)


def is_repeated(field: Any) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6.31; `label` is gone in 7
    if flag is None:
        return bool(field.label == _F.LABEL_REPEATED)
    return bool(flag)


def _build() -> Dict[str, Any]:
    """The lean classes, with field numbers and labels taken from the real descriptors."""
    fdp = descriptor_pb2.FileDescriptorProto(name="gotools_compat_agent_lean.proto",
                                             package=_PACKAGE, syntax="proto2")
    for real, fields, oneofs in LAYOUT:
        msg = fdp.message_type.add(name=real.DESCRIPTOR.name)
        for oneof in oneofs:
            msg.oneof_decl.add(name=oneof)
        for field_name, kind in fields.items():
            real_field = real.DESCRIPTOR.fields_by_name[field_name]
            field = msg.field.add(name=field_name, number=real_field.number,
                                  label=_F.LABEL_REPEATED if is_repeated(real_field)
                                  else _F.LABEL_OPTIONAL)
            if isinstance(kind, str):
                field.type = _F.TYPE_MESSAGE
                field.type_name = ".%s.%s" % (_PACKAGE, kind)
            else:
                field.type = kind
            if real_field.containing_oneof is not None:
                field.oneof_index = list(oneofs).index(real_field.containing_oneof.name)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {real.DESCRIPTOR.name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName("%s.%s" % (_PACKAGE, real.DESCRIPTOR.name)))
        for real, _, _ in LAYOUT}


LeanRequest: Any = _build()["ExportMetricsServiceRequest"]

_CACHE_LIMIT = 65_536
_labels: Dict[bytes, str] = {b"": ""}
_buckets: Dict[bytes, int] = {b"": 0}
_bounds: Dict[bytes, Tuple[float, ...]] = {b"": ()}
_descs: Dict[bytes, Desc] = {}
_nodes: Dict[bytes, Any] = {}
_resources: Dict[bytes, bool] = {}


def parse_message(cls: Any, raw: bytes) -> Any:
    """``raw`` parsed as a ``cls`` message; BadRequest naming the message if invalid."""
    try:
        return cls.FromString(raw)
    except message.DecodeError as exc:
        raise BadRequest("invalid protobuf %s: %s" % (cls.DESCRIPTOR.name, exc)) from None


def parse(body: bytes) -> Any:
    """A binary ``ExportMetricsServiceRequest`` as a lean message; BadRequest if invalid."""
    return parse_message(LeanRequest, body)


def node_of(raw: bytes) -> Any:
    """The real ``Node`` message of serialized node bytes (cached; do not modify it)."""
    node = _nodes.get(raw)
    if node is None:
        node = parse_message(common_pb2.Node, raw)
        bounded_cache_put(_nodes, raw, node, 1024)
    return node


def _label(raw: bytes) -> str:
    value: str = parse_message(metrics_pb2.LabelValue, raw).value
    bounded_cache_put(_labels, raw, value, _CACHE_LIMIT)
    return value


def _label_values(raw: Any) -> List[str]:
    out = []
    for v in raw:
        value = _labels.get(v)
        out.append(_label(v) if value is None else value)
    return out


def _bucket_counts(raw: Any) -> List[int]:
    out = []
    for b in raw:
        count = _buckets.get(b)
        if count is None:
            count = parse_message(metrics_pb2.DistributionValue.Bucket, b).count
            if len(b) <= 11:  # a count alone; exemplars would only fill the cache
                bounded_cache_put(_buckets, b, count, _CACHE_LIMIT)
        out.append(count)
    return out


def _bounds_of(raw: bytes) -> Tuple[float, ...]:
    bounds = tuple(parse_message(metrics_pb2.DistributionValue.BucketOptions, raw).explicit.bounds)
    bounded_cache_put(_bounds, raw, bounds, 1024)
    return bounds


def _desc(raw: bytes) -> Desc:
    desc = _descs.get(raw)
    if desc is None:
        md = parse_message(metrics_pb2.MetricDescriptor, raw)
        desc = (md.name, md.description, md.unit, int(md.type),
                tuple([k.key for k in md.label_keys]))
        bounded_cache_put(_descs, raw, desc, 4096)
    return desc


def _summary(raw: bytes) -> Summary:
    s = parse_message(metrics_pb2.SummaryValue, raw)
    return Summary(s.count.value, s.sum.value,
                   tuple((p.percentile / 100.0, p.value) for p in s.snapshot.percentile_values))


class _Series:
    """The series of one lean metric, read while they are iterated (again on every
    iteration): the store takes them one by one, so no list of the whole request
    is built and outlives it (which would cost the garbage collector ~15%)."""

    __slots__ = ("_timeseries",)

    def __init__(self, timeseries: Any) -> None:
        self._timeseries = timeseries

    def __len__(self) -> int:
        return len(self._timeseries)

    def __iter__(self) -> Iterator[Series]:
        return _read_series(self._timeseries)


def _read_series(timeseries: Any) -> Iterator[Series]:
    labels_get = _labels.__getitem__
    buckets_get = _buckets.__getitem__
    bounds_get = _bounds.get
    for ts in timeseries:
        points = ts.points
        if not points:
            continue
        p = points[-1]
        which = p.WhichOneof("value")
        value: Any
        if which == "distribution_value":
            d = p.distribution_value
            raw = d.buckets
            try:
                counts = list(map(buckets_get, raw))
            except KeyError:
                counts = _bucket_counts(raw)
            options = d.bucket_options
            bounds = bounds_get(options)
            if bounds is None:
                bounds = _bounds_of(options)
            value = (d.count, d.sum, bounds, counts)
        elif which == "int64_value":
            value = p.int64_value
        elif which == "double_value":
            value = p.double_value
        elif which == "summary_value":
            value = _summary(p.summary_value)
        else:
            value = None
        raw = ts.label_values
        try:
            values = list(map(labels_get, raw))
        except KeyError:
            values = _label_values(raw)
        yield values, value


def read(request: Any) -> List[Metric]:
    """The metrics of a lean request in the store's form.

    Descriptors are read now, series when iterated: either can raise BadRequest.
    """
    return [(_desc(m.metric_descriptor), _Series(m.timeseries)) for m in request.metrics]


def _check_resource(raw: bytes) -> None:
    if raw not in _resources:
        parse_message(resource_pb2.Resource, raw)
        bounded_cache_put(_resources, raw, True, 1024)


def export(request: Any) -> Export:
    """A lean request as an :class:`Export`; the real message is rebuilt only on demand.

    The node and the resource are checked here (BadRequest, e.g. a string
    that is not UTF-8), so an Export never carries a message that fails later."""
    node = None
    if request.HasField("node"):
        node = request.node
        node_of(node)
    if request.HasField("resource"):
        _check_resource(request.resource)
    return Export(node, read(request),
                  lambda: metrics_service_pb2.ExportMetricsServiceRequest.FromString(
                      request.SerializeToString()))


def from_proto(request: Any) -> Export:
    """A real ``ExportMetricsServiceRequest`` (or any message of its wire form) as an Export."""
    return export(parse(request.SerializeToString()))

