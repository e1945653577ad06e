"""gotools_compat._promtext: the Prometheus text rules shared by the agent and export.prometheus.

Pure functions first; then the two writers side by side: the same data gives
the same bytes, and the same Accept header the same format.
"""

from __future__ import annotations

import http.client
import math
import time
from typing import Dict, Iterator, List, Tuple

import pytest
from prometheus_client.utils import floatToGoString

from gotools_compat import _promtext as pt
from gotools_compat import event, metric, stats
from gotools_compat.agent import Agent
from gotools_compat.export import ocagent, prometheus
from gotools_compat.testing import fresh_registry

PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


# Names.

@pytest.mark.parametrize("namespace, name, exposed", [
    ("", "rpc.latency-ms", "rpc_latency_ms"),
    ("app", "9xx", "app_9xx"),
    ("", "9xx", "_9xx"),
    ("", "a:b", "a:b"),
    ("my-app", "latencyDistribution", "my_app_latencyDistribution"),
    ("", "", "_"),
    ("", "é", "_"),
])
def test_metric_names_keep_case_and_make_bad_characters_underscores(
        namespace: str, name: str, exposed: str) -> None:
    assert pt.metric_name(namespace, name) == exposed


def test_counter_family_drops_one_total_suffix_but_not_a_bare_total() -> None:
    assert [pt.counter_family(n) for n in ("reqs_total", "reqs", "_total", "a_total_total")] == [
        "reqs", "reqs", "_total", "a_total"]


def test_label_names_are_made_valid() -> None:
    assert [pt.label_chars(k) for k in ("http.method", "a:b", "", "9lives", "ok")] == [
        "http_method", "a_b", "_", "9lives", "ok"]
    assert [pt.label_name(k) for k in ("http.method", "9lives", "__x", "le")] == [
        "http_method", "_9lives", "__x", "le"]


# Escaping.

def test_label_values_escape_backslash_quote_and_newline_only() -> None:
    assert pt.escape_label_value('a"b\\c\nd\te') == 'a\\"b\\\\c\\nd\te'
    assert pt.label_pair("k", 'say "hi"') == 'k="say \\"hi\\""'


def test_lone_surrogates_become_the_replacement_character() -> None:
    assert pt.escape_label_value("x\ud800y") == "x\ufffdy"
    assert pt.escape_help("d\udfffe", False) == "d\ufffde"
    assert pt.utf8("\ud800") == "\ufffd".encode("utf-8")
    assert pt.escape_label_value("héllo") == "héllo"
    assert pt.label_pair_bytes("k", "x\ud800é") == 'k="x\ufffdé"'.encode("utf-8")


def test_help_escapes_quotes_in_openmetrics_only() -> None:
    text = 'say "hi"\\ now\nplease'
    assert pt.escape_help(text, False) == 'say "hi"\\\\ now\\nplease'
    assert pt.escape_help(text, True) == 'say \\"hi\\"\\\\ now\\nplease'


@pytest.mark.parametrize("kind, openmetrics, lines", [
    ("counter", False, "# HELP c_total d\n# TYPE c_total counter\n"),
    ("counter", True, "# HELP c d\n# TYPE c counter\n"),
    ("gauge", False, "# HELP c d\n# TYPE c gauge\n"),
    ("gaugehistogram", False, "# HELP c d\n# TYPE c histogram\n"),
    ("gaugehistogram", True, "# HELP c d\n# TYPE c gaugehistogram\n"),
])
def test_header_names_the_counter_sample_in_text_and_the_family_in_openmetrics(
        kind: str, openmetrics: bool, lines: str) -> None:
    assert pt.header("c", kind, "d", openmetrics) == lines


# Numbers.

@pytest.mark.parametrize("value, text", [
    (14.0, "14"), (-3.0, "-3"), (0.0, "0"), (0.25, "0.25"), (2000003.5, "2000003.5"),
    (1e16, "1e+16"), (123456789012345.0, "123456789012345"), (1e-7, "1e-07"),
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
])
def test_floats_are_shortest_and_integral_ones_have_no_point(value: float, text: str) -> None:
    assert pt.format_float(value) == text
    assert pt.float_bytes(value) == text.encode("ascii")


def test_ints_are_exact_past_two_to_the_53() -> None:
    assert pt.format_value(2 ** 53 + 1) == "9007199254740993"
    assert pt.format_value(-(2 ** 63)) == "-9223372036854775808"
    assert pt.format_value(3.0) == "3"


@pytest.mark.parametrize("bound, text", [
    (0, "0.0"), (1, "1.0"), (10.0, "10.0"), (0.005, "0.005"), (2.5, "2.5"), (1e-5, "1e-05"),
    (123456, "123456.0"), (1e6, "1e+06"), (1048576, "1.048576e+06"), (-5, "-5.0"),
    (-1048576, "-1.048576e+06"), (1e21, "1e+21"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
    (0.99, "0.99"),
])
def test_le_and_quantile_values_are_canonical_in_both_formats(bound: float, text: str) -> None:
    assert pt.format_le(bound) == text


def test_le_matches_prometheus_clients_go_format_for_positive_bounds() -> None:
    values = [m * 10.0 ** e for m in (1, 1.5, 2.5, 7, 1.048576, 9.999999) for e in range(-8, 22)]
    assert [pt.format_le(v) for v in values] == [floatToGoString(v) for v in values]


# Content negotiation.

ACCEPT_TABLE: List[Tuple[str, bool]] = [
    ("", False),
    ("text/plain", False),
    ("text/plain; version=0.0.4", False),
    ("application/openmetrics-text", True),
    ("application/openmetrics-text; version=1.0.0", True),
    ("Application/OpenMetrics-Text; Version=1.0.0", True),
    ("application/openmetrics-text;q=0.5, text/plain;q=1", False),
    ("application/openmetrics-text;q=1, text/plain;q=0.5", False),
    (PROMETHEUS_ACCEPT, False),
    ("text/plain;q=0.001, application/openmetrics-text", False),
    ("application/openmetrics-text, text/plain;q=0", True),
    ("application/openmetrics-text, text/plain; Q = 0.000", True),
    ("application/openmetrics-text, text/plain;version=0.0.4;q=0", True),
    ("application/openmetrics-text;q=0, text/plain", False),
    ("application/openmetrics-text;q=0", False),
    ("application/openmetrics-text, text/*;q=0", True),
    ("application/openmetrics-text, */*;q=0", True),
    ("text/plain;q=0, */*", True),
    ("*/*", False),
    ("text/*", False),
    ("application/*", True),
    ("application/json", False),
    ("application/openmetrics-text;q=abc", False),
    ("application/openmetrics-text;q=2", False),
]


@pytest.mark.parametrize("accept, openmetrics", ACCEPT_TABLE)
def test_openmetrics_only_when_the_client_accepts_it_and_not_text(
        accept: str, openmetrics: bool) -> None:
    assert pt.wants_openmetrics(accept) is openmetrics


def test_none_header_means_text() -> None:
    assert pt.wants_openmetrics(None) is False


def test_content_types() -> None:
    assert pt.content_type(False) == pt.TEXT_CONTENT_TYPE == (
        "text/plain; version=0.0.4; charset=utf-8")
    assert pt.content_type(True) == pt.OPENMETRICS_CONTENT_TYPE == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8")


# The two writers side by side.

def _families(text: str, prefix: str) -> Dict[str, List[str]]:
    """The lines of each family whose name starts with ``prefix``, by family."""
    out: Dict[str, List[str]] = {}
    lines: List[str] = []
    for line in text.splitlines(keepends=True):
        if line == "# EOF\n":
            break
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            lines = out.setdefault(name[:-6] if name.endswith("_total") else name, [])
        lines.append(line)
    return {name: lines for name, lines in out.items() if name.startswith(prefix)}


@pytest.fixture(scope="module")
def both() -> Iterator[Tuple[str, prometheus.Exporter, Agent]]:
    """A counter, a sum, gauges and a histogram with labels, recorded in-process and
    sent to an agent that adds no labels of its own (in a registry of their own for
    the module's tests)."""
    with fresh_registry():
        yield from _both("same_")


def _both(prefix: str) -> Iterator[Tuple[str, prometheus.Exporter, Agent]]:
    code, method = event.new_string_key("code"), event.new_string_key("method")
    latency = stats.Float64(prefix + "latency", "latency", "ms")
    size = stats.Int64(prefix + "size", "size", "By")
    metric.Scalar(prefix + "requests_count", 'Requests "served"\\ by\ncode.',
                  keys=[code, method]).count_int64(size)
    metric.Scalar(prefix + "bytes_sum", "Bytes.", keys=[code]).sum_int64(size)
    metric.Scalar(prefix + "elapsed_sum", "Float sum.", keys=[method]).sum_float64(latency)
    metric.Scalar(prefix + "last", "Latest.", keys=[method]).latest_float64(latency)
    metric.Scalar(prefix + "last_size", "Latest size.", keys=[code]).latest_int64(size)
    metric.HistogramFloat64(prefix + "latency_hist", "Latency.", [0, 1, 2.5, 10, 1048576],
                            keys=[code, method]).record(latency)
    for c, m, value, n in [("200", "GET", 0.5, 7), ("200", "GET", 3.0, 2 ** 53 + 1),
                           ("500", "POST", 12.0, 3), ("200", "POST", 2.5, 1),
                           ("200", "GET", 2e6, 9), ("404", "GET", 0.0, 0)]:
        ctx = event.label(event.label(None, code.of(c)), method.of(m))
        latency.record(ctx, value)
        size.record(ctx, n)
    exporter = prometheus.new()
    with Agent("127.0.0.1:0", "127.0.0.1:0", namespace="", const_labels={},
               target_labels=False) as agent:
        sender = ocagent.connect(ocagent.Config(address="127.0.0.1:%d" % agent.port,
                                                rate=3600, service="same"))
        assert sender is not None
        try:
            assert sender.flush(timeout=10)
            expected = _families(exporter.render().decode(), prefix)
            deadline = time.monotonic() + 10
            while _families(agent.metrics_text().decode(), prefix).keys() != expected.keys():
                assert time.monotonic() < deadline, "the agent did not get every family"
                time.sleep(0.01)
            yield prefix, exporter, agent
        finally:
            sender.close(timeout=2)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_agent_and_the_exporter_write_the_same_bytes_for_the_same_data(
        both: Tuple[str, prometheus.Exporter, Agent], openmetrics: bool) -> None:
    prefix, exporter, agent = both
    ours = _families(exporter.render(openmetrics).decode(), prefix)
    theirs = _families(agent.metrics_text(openmetrics).decode(), prefix)
    # 6 families: 12 HELP/TYPE lines, 14 scalar series, 4 histogram series of 8 lines.
    assert len(ours) == 6 and sum(len(lines) for lines in ours.values()) == 58
    assert ours == theirs


def _content_type(port: int, accept: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        return response.getheader("Content-Type") or ""
    finally:
        conn.close()


def test_the_agent_and_the_exporter_answer_the_same_format_for_the_same_accept(
        both: Tuple[str, prometheus.Exporter, Agent]) -> None:
    _, exporter, agent = both
    with exporter.serve(port=0) as server:
        answers = [(_content_type(server.port, accept),
                    _content_type(agent.prometheus_port or 0, accept))
                   for accept, _ in ACCEPT_TABLE]
    expected = [(pt.content_type(openmetrics),) * 2 for _, openmetrics in ACCEPT_TABLE]
    assert answers == expected
