"""export.prometheus scraped by a real Prometheus server (Debian's ``prometheus``).

Skipped only where the binary is missing outside CI; in CI (CI set) it runs.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, List

import pytest

from gotools_compat import event, metric, stats
from gotools_compat.export import prometheus

from prometheus_server import PrometheusServer, binary

pytestmark = pytest.mark.skipif(binary() is None and not os.environ.get("CI"),
                                reason="the prometheus binary is not installed (it is in CI)")


@pytest.fixture(scope="module")
def scraped() -> Iterator[PrometheusServer]:
    """Our exporter served on loopback, and a Prometheus scraping it every second."""
    with prometheus.new(namespace="real").serve(port=0) as server:
        with PrometheusServer(["127.0.0.1:%d" % server.port]) as prom:
            yield prom


def _value(result: List[Any]) -> float:
    return float(result[0]["value"][1])


def _one(value: float) -> Any:
    return lambda result: len(result) == 1 and _value(result) == value


def test_prometheus_scrapes_counts_sums_gauges_and_escaped_labels(
        scraped: PrometheusServer) -> None:
    route = event.new_string_key("route")
    m = stats.Int64("rs_bytes", "bytes", "By")
    metric.Scalar("rs_requests", "requests", keys=[route]).count_int64(m)
    metric.Scalar("rs_bytes_sum", "bytes sent", keys=[route]).sum_int64(m)
    metric.Scalar("rs_bytes_last", "last size", keys=[route]).latest_int64(m)
    odd = 'a "quoted" \\ route\nnext'
    for value in (100, 250, 50):
        m.record(event.label(None, route.of(odd)), value)
    m.record(event.label(None, route.of("/plain")), 7)
    selector = '{route="/plain"}'
    scraped.wait_for("real_rs_requests_total" + selector, _one(1))
    result = scraped.wait_for("real_rs_requests_total", lambda r: len(r) == 2)
    by_route = {r["metric"]["route"]: float(r["value"][1]) for r in result}
    assert by_route == {odd: 3.0, "/plain": 1.0}
    sums = scraped.wait_for("real_rs_bytes_sum_total", lambda r: len(r) == 2)
    assert {r["metric"]["route"]: float(r["value"][1]) for r in sums} == {odd: 400.0,
                                                                        "/plain": 7.0}
    gauge = scraped.wait_for("real_rs_bytes_last" + selector, _one(7))
    assert gauge[0]["metric"]["job"] == "app"
    up = scraped.wait_for('up{job="app"}', _one(1))
    assert len(up) == 1


def test_prometheus_histogram_quantile_falls_in_the_bucket_that_holds_it(
        scraped: PrometheusServer) -> None:
    m = stats.Float64("rs_latency", "latency", "ms")
    metric.HistogramFloat64("rs_latency_hist", "latency", [-5, 0, 1, 5, 10, 50]).record(m)
    # 10 values; the 5th and 6th (the median) lie in (5, 10].
    for value in (-7, 0, 0.5, 3, 6, 7, 8, 9, 20, 60):
        m.record(None, value)
    scraped.wait_for("real_rs_latency_hist_count", _one(10))
    buckets = scraped.wait_for("real_rs_latency_hist_bucket", lambda r: len(r) == 7)
    by_le = {r["metric"]["le"]: float(r["value"][1]) for r in buckets}
    assert by_le == {"-5.0": 1, "0.0": 2, "1.0": 3, "5.0": 4, "10.0": 8, "50.0": 9, "+Inf": 10}
    assert _value(scraped.query("real_rs_latency_hist_sum")) == pytest.approx(106.5)
    median = _value(scraped.query("histogram_quantile(0.5, real_rs_latency_hist_bucket)"))
    assert 5.0 < median <= 10.0
