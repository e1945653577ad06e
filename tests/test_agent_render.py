"""gotools_compat.agent._render: stored series written as Prometheus text and OpenMetrics.

Snapshots are built by hand in the store's record forms (see ``_kinds``):
scalars, histograms ``(bounds, per-bucket counts, sum_text)`` and summaries
``(count, sum, quantiles)``.  Every OpenMetrics exposition is also read back
by prometheus_client's strict parser.
"""

from __future__ import annotations

import math
from typing import Any, List, Sequence, Tuple

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from gotools_compat.agent import _render
from gotools_compat.agent._kinds import (COUNTER, GAUGE, GAUGE_HISTOGRAM, HISTOGRAM, SUMMARY,
                                         Family)
from gotools_compat.agent._render import render, render_parts


def one(kind: str, items: Sequence[Tuple[bytes, Any]], name: str = "m", help: str = "help",
        unit: str = "") -> List[Tuple[Family, Any]]:
    return [(Family(name, kind, help, unit), list(items))]


def om(snapshot: Any) -> str:
    """The OpenMetrics exposition, checked by prometheus_client's parser."""
    text = render(snapshot, openmetrics=True).decode()
    list(parse_om(text))
    return text


def text(snapshot: Any) -> str:
    out = render(snapshot).decode()
    list(parse_text(out))
    return out


# Scalars.

def test_a_gauge_in_text_with_and_without_labels() -> None:
    snapshot = one(GAUGE, [(b'k="v"', 1.5), (b"", 3)])
    assert text(snapshot) == '# HELP m help\n# TYPE m gauge\nm{k="v"} 1.5\nm 3\n'


def test_a_gauge_in_openmetrics_ends_with_eof() -> None:
    assert om(one(GAUGE, [(b"", -2)])) == "# HELP m help\n# TYPE m gauge\nm -2\n# EOF\n"


def test_a_counter_in_text_is_named_by_its_total_sample() -> None:
    assert text(one(COUNTER, [(b'k="a"', 5)])) == (
        '# HELP m_total help\n# TYPE m_total counter\nm_total{k="a"} 5\n')


def test_a_counter_in_openmetrics_is_named_by_its_family() -> None:
    assert om(one(COUNTER, [(b"", 5)])) == "# HELP m help\n# TYPE m counter\nm_total 5\n# EOF\n"


def test_negative_and_nan_counters_are_left_out_of_openmetrics_only() -> None:
    snapshot = one(COUNTER, [(b'k="neg"', -1), (b'k="nan"', math.nan), (b'k="ok"', 2.5)])
    assert om(snapshot).splitlines()[2:] == ['m_total{k="ok"} 2.5', "# EOF"]
    assert text(snapshot).splitlines()[2:] == [
        'm_total{k="neg"} -1', 'm_total{k="nan"} NaN', 'm_total{k="ok"} 2.5']


def test_ints_are_written_exactly_past_2_to_the_53() -> None:
    assert text(one(GAUGE, [(b"", 2 ** 53 + 1), (b'k="b"', -2 ** 63)])).splitlines()[2:] == [
        "m 9007199254740993", 'm{k="b"} -9223372036854775808']


def test_floats_are_written_shortest_integral_ones_without_a_point() -> None:
    values = [(b'i="%d"' % i, v) for i, v in
              enumerate([0.25, 14.0, 1e20, -0.0, math.inf, -math.inf, math.nan, 1e-7])]
    assert [line.rsplit(" ", 1)[1] for line in text(one(GAUGE, values)).splitlines()[2:]] == [
        "0.25", "14", "1e+20", "0", "+Inf", "-Inf", "NaN", "1e-07"]


# Histograms.

def hist(bounds: Sequence[float], counts: Sequence[int], total: bytes,
         labels: bytes = b"") -> Tuple[bytes, Any]:
    return labels, (tuple(bounds), tuple(counts), total)


def test_histogram_buckets_are_cumulative_and_end_with_inf_sum_and_count() -> None:
    snapshot = one(HISTOGRAM, [hist([1.0, 5.0], [1, 2, 3], b"17.5")])
    assert text(snapshot) == (
        "# HELP m help\n# TYPE m histogram\n"
        'm_bucket{le="1.0"} 1\nm_bucket{le="5.0"} 3\nm_bucket{le="+Inf"} 6\n'
        "m_sum 17.5\nm_count 6\n")


def test_a_labelled_histogram_puts_its_labels_before_le_and_on_sum_and_count() -> None:
    snapshot = one(HISTOGRAM, [hist([0.005, 1e6], [0, 4, 0], b"12", b'k="v",j="w"')])
    assert text(snapshot).splitlines()[2:] == [
        'm_bucket{k="v",j="w",le="0.005"} 0', 'm_bucket{k="v",j="w",le="1e+06"} 4',
        'm_bucket{k="v",j="w",le="+Inf"} 4', 'm_sum{k="v",j="w"} 12', 'm_count{k="v",j="w"} 4']


def test_a_histogram_in_openmetrics_is_written_as_in_text_plus_eof() -> None:
    snapshot = one(HISTOGRAM, [hist([1.0], [2, 1], b"3.5", b'k="a"'), hist([1.0], [0, 0], b"0")])
    assert om(snapshot) == text(snapshot) + "# EOF\n"


def test_histograms_of_one_family_with_different_bounds_each_get_their_own() -> None:
    snapshot = one(HISTOGRAM, [hist([1.0], [1, 1], b"2", b'k="a"'),
                               hist([1.0, 2.0], [1, 1, 1], b"3", b'k="b"'),
                               hist([1.0], [0, 2], b"4")])
    assert [line for line in text(snapshot).splitlines() if "_bucket" in line] == [
        'm_bucket{k="a",le="1.0"} 1', 'm_bucket{k="a",le="+Inf"} 2',
        'm_bucket{k="b",le="1.0"} 1', 'm_bucket{k="b",le="2.0"} 2', 'm_bucket{k="b",le="+Inf"} 3',
        'm_bucket{le="1.0"} 0', 'm_bucket{le="+Inf"} 2']


def test_a_histogram_without_bounds_has_only_the_inf_bucket() -> None:
    assert text(one(HISTOGRAM, [hist([], [7], b"70")])).splitlines()[2:] == [
        'm_bucket{le="+Inf"} 7', "m_sum 70", "m_count 7"]


def test_a_histogram_with_a_negative_bound_has_no_sum_or_count_in_openmetrics() -> None:
    snapshot = one(HISTOGRAM, [hist([-1.0, 1.0], [1, 1, 1], b"-0.5", b'k="a"')])
    assert om(snapshot).splitlines()[2:] == [
        'm_bucket{k="a",le="-1.0"} 1', 'm_bucket{k="a",le="1.0"} 2',
        'm_bucket{k="a",le="+Inf"} 3', "# EOF"]
    assert text(snapshot).splitlines()[-2:] == ['m_sum{k="a"} -0.5', 'm_count{k="a"} 3']


def test_an_unlabelled_negative_bound_histogram_has_no_sum_or_count_in_openmetrics() -> None:
    assert om(one(HISTOGRAM, [hist([-5.0], [2, 0], b"-12")])).splitlines()[2:] == [
        'm_bucket{le="-5.0"} 2', 'm_bucket{le="+Inf"} 2', "# EOF"]


@pytest.mark.parametrize("total", [b"-3", b"NaN"])
def test_a_histogram_with_a_negative_or_nan_sum_has_no_sum_or_count_in_openmetrics(
        total: bytes) -> None:
    assert om(one(HISTOGRAM, [hist([1.0], [1, 0], total)])).splitlines()[2:] == [
        'm_bucket{le="1.0"} 1', 'm_bucket{le="+Inf"} 1', "# EOF"]


def test_a_gauge_histogram_in_text_is_a_histogram_with_sum_and_count() -> None:
    assert text(one(GAUGE_HISTOGRAM, [hist([1.0], [1, 1], b"2.5")])) == (
        "# HELP m help\n# TYPE m histogram\n"
        'm_bucket{le="1.0"} 1\nm_bucket{le="+Inf"} 2\nm_sum 2.5\nm_count 2\n')


def test_a_gauge_histogram_in_openmetrics_has_gsum_and_gcount() -> None:
    assert om(one(GAUGE_HISTOGRAM, [hist([1.0], [1, 1], b"2.5", b'k="a"')])) == (
        "# HELP m help\n# TYPE m gaugehistogram\n"
        'm_bucket{k="a",le="1.0"} 1\nm_bucket{k="a",le="+Inf"} 2\n'
        'm_gsum{k="a"} 2.5\nm_gcount{k="a"} 2\n# EOF\n')


def test_a_gauge_histogram_with_negative_bounds_keeps_a_negative_gsum_in_openmetrics() -> None:
    assert om(one(GAUGE_HISTOGRAM, [hist([-1.0], [1, 0], b"-4")])).splitlines()[2:] == [
        'm_bucket{le="-1.0"} 1', 'm_bucket{le="+Inf"} 1', "m_gsum -4", "m_gcount 1", "# EOF"]


def test_a_gauge_histogram_of_nonnegative_bounds_drops_a_negative_gsum_in_openmetrics() -> None:
    # OpenMetrics (and prometheus_client's parser) allow no negative _gsum then.
    assert om(one(GAUGE_HISTOGRAM, [hist([0.0], [1, 0], b"-4")])).splitlines()[2:] == [
        'm_bucket{le="0.0"} 1', 'm_bucket{le="+Inf"} 1', "# EOF"]


def test_rendering_twice_gives_the_same_bytes() -> None:
    snapshot = one(HISTOGRAM, [hist([1.0], [1, 1], b"2", b'k="a"'), hist([1.0], [3, 0], b"1")])
    first = render(snapshot)
    assert render(snapshot) == first  # the second from the family's cached templates
    assert render(snapshot, openmetrics=True) == first + b"# EOF\n"


# Summaries.

def test_a_summary_writes_a_quantile_line_each_then_sum_and_count() -> None:
    snapshot = one(SUMMARY, [(b'k="a"', (4, 10.5, ((0.5, 2.0), (0.99, 7.25))))])
    assert text(snapshot) == (
        "# HELP m help\n# TYPE m summary\n"
        'm{k="a",quantile="0.5"} 2\nm{k="a",quantile="0.99"} 7.25\n'
        'm_sum{k="a"} 10.5\nm_count{k="a"} 4\n')


def test_an_unlabelled_summary_without_quantiles_is_sum_and_count() -> None:
    assert text(one(SUMMARY, [(b"", (2, 1.0, ()))])).splitlines()[2:] == ["m_sum 1", "m_count 2"]


def test_negative_quantile_values_and_sums_are_left_out_of_openmetrics() -> None:
    snapshot = one(SUMMARY, [(b"", (3, -6.0, ((0.0, -4.0), (1.0, 1.0))))])
    assert om(snapshot).splitlines()[2:] == ['m{quantile="1.0"} 1', "# EOF"]
    assert text(snapshot).splitlines()[2:] == [
        'm{quantile="0.0"} -4', 'm{quantile="1.0"} 1', "m_sum -6", "m_count 3"]


# Headers.

def test_help_escapes_backslash_and_newline_and_in_openmetrics_quotes() -> None:
    snapshot = one(GAUGE, [(b"", 1)], help='a\\b\n"c"')
    assert text(snapshot).splitlines()[0] == '# HELP m a\\\\b\\n"c"'
    assert om(snapshot).splitlines()[0] == '# HELP m a\\\\b\\n\\"c\\"'


def test_help_with_a_lone_surrogate_is_written_as_utf8() -> None:
    assert render(one(GAUGE, [(b"", 1)], help="x\ud800y")).splitlines()[0] == (
        "# HELP m x\ufffdy".encode("utf-8"))


def test_openmetrics_has_a_unit_line_when_the_name_ends_with_the_unit() -> None:
    snapshot = one(GAUGE, [(b"", 0.5)], name="lat_seconds", unit="s")
    assert om(snapshot).splitlines()[:3] == [
        "# HELP lat_seconds help", "# TYPE lat_seconds gauge", "# UNIT lat_seconds seconds"]
    assert "# UNIT" not in text(snapshot)


@pytest.mark.parametrize("name, unit", [("lat", "s"), ("size_bytes", "ms"), ("ratio", "1"),
                                        ("x_bytes", "")])
def test_openmetrics_has_no_unit_line_for_a_name_without_its_unit(name: str, unit: str) -> None:
    assert "# UNIT" not in om(one(GAUGE, [(b"", 1)], name=name, unit=unit))


def test_every_family_gets_its_header_in_snapshot_order() -> None:
    snapshot = one(GAUGE, [(b"", 1)], name="b") + one(COUNTER, [(b"", 2)], name="a")
    assert [line for line in text(snapshot).splitlines() if line.startswith("# TYPE")] == [
        "# TYPE b gauge", "# TYPE a_total counter"]


def test_an_empty_snapshot_is_nothing_in_text_and_eof_in_openmetrics() -> None:
    assert (render([]), render([], openmetrics=True)) == (b"", b"# EOF\n")


# Pieces.

def mixed(n: int) -> List[Tuple[Family, Any]]:
    return (one(GAUGE, [(b'i="%d"' % i, i) for i in range(n)], name="g")
            + one(HISTOGRAM, [hist([1.0], [i, 1], b"%d" % i, b'i="%d"' % i) for i in range(n)],
                  name="h")
            + one(SUMMARY, [(b'i="%d"' % i, (i, 1.0, ((0.5, 1.0),))) for i in range(n)],
                  name="s"))


@pytest.mark.parametrize("openmetrics", [False, True])
def test_render_parts_joined_is_render(openmetrics: bool) -> None:
    snapshot = mixed(10)
    parts = render_parts(snapshot, openmetrics)
    assert b"".join(parts) == render(snapshot, openmetrics)
    assert len(parts) == 1


@pytest.mark.parametrize("openmetrics", [False, True])
def test_a_large_family_is_rendered_in_pieces_that_join_to_the_whole(
        openmetrics: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = render(mixed(10), openmetrics)
    monkeypatch.setattr(_render, "_PIECE", 3)
    parts = render_parts(mixed(10), openmetrics)
    assert b"".join(parts) == whole
    assert len(parts) >= 12  # 4 pieces of at most 3 series, for each of 3 families
    assert max(part.count(b"\n") for part in parts) < 3 * 6 + 6


def test_pieces_at_the_real_piece_size_join_to_the_whole() -> None:
    size = 2 * _render._PIECE + 1
    snapshot = one(GAUGE, [(b'i="%d"' % i, i) for i in range(size)])
    parts = render_parts(snapshot)
    assert len(parts) == 3
    assert b"".join(parts) == render(snapshot)
    assert b"".join(parts).count(b"\n") == size + 2
