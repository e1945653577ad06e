"""gotools_compat.agent._store: expiry and the histogram repair rules, directly."""

from __future__ import annotations

import time
from typing import Any, List, Sequence, Tuple

from gotools_compat._oc import proto
from gotools_compat.agent._protorequest import from_proto
from gotools_compat.agent._model import Metric
from gotools_compat.agent._render import render
from gotools_compat.agent._store import Store

proto.install()

from opencensus.proto.agent.common.v1 import common_pb2  # noqa: E402
from opencensus.proto.agent.metrics.v1 import metrics_service_pb2  # noqa: E402
from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

MD = metrics_pb2.MetricDescriptor


def node(service: str) -> Any:
    return common_pb2.Node(identifier={"host_name": "h", "pid": 1},
                           service_info={"name": service})


def histogram(bounds: Sequence[float], buckets: Sequence[int], count: int) -> Any:
    return metrics_pb2.Metric(
        metric_descriptor=MD(name="h", type=MD.CUMULATIVE_DISTRIBUTION),
        timeseries=[metrics_pb2.TimeSeries(points=[metrics_pb2.Point(
            distribution_value=metrics_pb2.DistributionValue(
                count=count, sum=1.0, buckets=[{"count": c} for c in buckets],
                bucket_options={"explicit": {"bounds": list(bounds)}}))])])


def read(*metrics: Any) -> List[Metric]:
    """Metric messages as the receivers hand them to the store."""
    return from_proto(metrics_service_pb2.ExportMetricsServiceRequest(metrics=metrics)).metrics


def buckets(store: Store) -> List[int]:
    text = render(store.snapshot()).decode()
    return [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("h_bucket")]


def test_a_silent_sender_expires_and_the_others_stay() -> None:
    store = Store(namespace="", const_labels={}, expire_after=10)
    gauge = metrics_pb2.Metric(metric_descriptor=MD(name="g", type=MD.GAUGE_INT64),
                               timeseries=[{"points": [{"int64_value": 1}]}])
    old = store.sender(node("old"))
    store.ingest(old, read(gauge))
    old.last_seen -= 11  # as if it had last sent eleven seconds ago
    store.ingest(store.sender(node("new")), read(gauge))
    assert store.expire() == 1
    assert store.senders() == [("new", "h:1")]
    assert render(store.snapshot()) == b'# HELP g \n# TYPE g gauge\ng{job="new",instance="h:1"} 1\n'
    # It comes back when it sends again.
    store.ingest(store.sender(node("old")), read(gauge))
    assert len(store.senders()) == 2
    assert store.expire(time.monotonic() + 11) == 2
    assert render(store.snapshot()) == b""


def test_go_cumulative_form_with_values_above_the_last_bound() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    store.ingest(store.sender(None), read(histogram([1.0, 2.0], [1, 3], 5)))
    assert buckets(store) == [1, 3, 5]


def test_per_bucket_form_is_taken_as_sent() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    store.ingest(store.sender(None), read(histogram([1.0, 2.0], [1, 3, 1], 5)))
    assert buckets(store) == [1, 4, 5]


def test_bad_bounds_or_bucket_counts_are_rejected_not_rendered() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    store.ingest(store.sender(None), read(histogram([2.0, 1.0], [1, 1, 1], 3),
                                      histogram([1.0], [1, 1, 1, 1], 4),
                                      histogram([1.0], [-1, 2], 1)))
    assert store.rejected == 3
    assert buckets(store) == []


def test_int64_counters_stay_exact_past_2_to_the_53() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    big = 2 ** 53 + 1
    counter = metrics_pb2.Metric(metric_descriptor=MD(name="c", type=MD.CUMULATIVE_INT64),
                                 timeseries=[{"points": [{"int64_value": big}]},
                                             {"points": [{"int64_value": 2}]}])
    store.ingest(store.sender(None), read(counter))
    assert render(store.snapshot()).endswith(b"c_total %d\n" % (big + 2))


def summary(percentiles: Sequence[Tuple[float, float]], count: int = 2) -> Any:
    return metrics_pb2.Metric(
        metric_descriptor=MD(name="s", type=MD.SUMMARY),
        timeseries=[metrics_pb2.TimeSeries(points=[metrics_pb2.Point(
            summary_value=metrics_pb2.SummaryValue(
                count={"value": count}, sum={"value": 3.0},
                snapshot={"percentile_values": [{"percentile": p, "value": v}
                                                for p, v in percentiles]}))])])


def test_a_negative_distribution_count_is_rejected_not_rendered() -> None:
    # It rendered h_bucket{le="+Inf"} -1 and h_count -1.
    store = Store(namespace="", const_labels={}, target_labels=False)
    store.ingest(store.sender(None), read(histogram([], [], -1),
                                      histogram([1.0], [1, 1], -1),
                                      histogram([1.0], [1], -1)))
    assert store.rejected == 3
    assert render(store.snapshot()) == b""


def test_summary_with_a_quantile_twice_or_out_of_range_is_rejected() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    store.ingest(store.sender(None), read(summary([(50.0, 1.0), (50.0, 2.0)])))
    store.ingest(store.sender(None), read(summary([(150.0, 1.0)])))
    store.ingest(store.sender(None), read(summary([(50.0, 1.0)], count=-1)))
    assert store.rejected == 3
    assert render(store.snapshot()) == b""
    store.ingest(store.sender(None), read(summary([(50.0, 1.0), (99.0, float("nan"))])))
    assert render(store.snapshot()) == (
        b'# HELP s \n# TYPE s summary\ns{quantile="0.5"} 1\ns{quantile="0.99"} NaN\n'
        b's_sum 3\ns_count 2\n')
    # OpenMetrics: no negative or NaN quantile value (kept as before).
    assert b"0.99" not in render(store.snapshot(), True)


def test_senders_of_one_label_string_are_merged_without_target_labels() -> None:
    store = Store(namespace="", const_labels={}, target_labels=False)
    counter = metrics_pb2.Metric(metric_descriptor=MD(name="c", type=MD.CUMULATIVE_INT64),
                                 timeseries=[{"points": [{"int64_value": 2}]}])
    g = metrics_pb2.Metric(metric_descriptor=MD(name="g", type=MD.GAUGE_INT64),
                           timeseries=[{"points": [{"int64_value": 1}]}])
    g2 = metrics_pb2.Metric(metric_descriptor=MD(name="g", type=MD.GAUGE_INT64),
                            timeseries=[{"points": [{"int64_value": 7}]}])
    old = store.sender(node("old"))
    store.ingest(old, read(counter, g))
    old.last_seen -= 1
    store.ingest(store.sender(node("new")), read(counter, g2))
    assert render(store.snapshot()) == (b"# HELP c_total \n# TYPE c_total counter\nc_total 4\n"
                                        b"# HELP g \n# TYPE g gauge\ng 7\n")
