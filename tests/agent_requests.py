"""opencensus-proto metrics requests for the agent's readers: builders and a hypothesis strategy.

Shared by tests/test_agent_json.py and tests/test_agent_protorequest.py, which read
the same requests with the agent's fast readers and with the real classes.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from hypothesis import strategies as st

from gotools_compat._oc import proto

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402
from opencensus.proto.resource.v1 import resource_pb2  # noqa: E402

MD = metrics_pb2.MetricDescriptor
Request = metrics_service_pb2.ExportMetricsServiceRequest
INT64_MAX = 2 ** 63 - 1


def node(service: str, host: str = "host", pid: int = 1) -> Any:
    return common_pb2.Node(identifier=common_pb2.ProcessIdentifier(host_name=host, pid=pid),
                           service_info=common_pb2.ServiceInfo(name=service))


def dist(bounds: Sequence[float], counts: Sequence[int], total: float) -> Any:
    return metrics_pb2.DistributionValue(
        count=sum(counts), sum=total, buckets=[{"count": c} for c in counts],
        bucket_options={"explicit": {"bounds": list(bounds)}})


def point(value: Any) -> Any:
    if isinstance(value, bool):
        raise TypeError(value)
    if isinstance(value, int):
        return metrics_pb2.Point(int64_value=value)
    if isinstance(value, float):
        return metrics_pb2.Point(double_value=value)
    if isinstance(value, metrics_pb2.DistributionValue):
        return metrics_pb2.Point(distribution_value=value)
    return metrics_pb2.Point(summary_value=value)


def metric(name: str, type_: int, keys: Sequence[str],
           series: Sequence[Tuple[Sequence[Optional[str]], Any]], description: str = "",
           unit: str = "") -> Any:
    return metrics_pb2.Metric(
        metric_descriptor=MD(name=name, description=description, unit=unit, type=type_,
                             label_keys=[metrics_pb2.LabelKey(key=k) for k in keys]),
        timeseries=[metrics_pb2.TimeSeries(
            label_values=[metrics_pb2.LabelValue(value=v or "", has_value=v is not None)
                          for v in values],
            points=[point(value)]) for values, value in series])


def store_form(export: Any) -> List[Any]:
    """An Export's metrics with their series read (they are read when iterated)."""
    return [(desc, list(series)) for desc, series in export.metrics]


# A strategy: requests of every point kind the agent reads, bounded in size.

_text = st.text(st.characters(codec="utf-8"), max_size=8)
_int64 = st.integers(-INT64_MAX - 1, INT64_MAX)
_double = st.floats(allow_nan=False, allow_infinity=True)


@st.composite
def _distributions(draw: Any) -> Any:
    bounds = sorted(draw(st.lists(st.floats(-1e6, 1e6), max_size=4, unique=True)))
    counts = draw(st.lists(st.integers(0, 2 ** 40), min_size=len(bounds) + 1,
                           max_size=len(bounds) + 1))
    return dist(bounds, counts, draw(st.floats(-1e9, 1e9)))


@st.composite
def _metrics(draw: Any) -> Any:
    keys = draw(st.lists(_text, max_size=2))
    values = st.one_of(_int64, _double, _distributions())
    series = draw(st.lists(st.tuples(st.lists(st.one_of(st.none(), _text), min_size=len(keys),
                                              max_size=len(keys)), values), max_size=3))
    return metric(draw(_text), draw(st.sampled_from([0, 1, 2, 4, 5, 6])), keys, series,
                  description=draw(_text), unit=draw(st.sampled_from(["", "ms", "By"])))


@st.composite
def requests(draw: Any) -> Any:
    request = Request(metrics=draw(st.lists(_metrics(), max_size=3)))
    if draw(st.booleans()):
        request.node.CopyFrom(node(draw(_text), draw(_text), draw(st.integers(0, 2 ** 31))))
    if draw(st.booleans()):
        request.resource.CopyFrom(resource_pb2.Resource(type=draw(_text),
                                                        labels={"k": draw(_text)}))
    return request
