"""gotools_compat.agent._series: series keyed by label bytes, made records, directly (no sockets).

Series are given in the readers' plain form (see ``_model``): ``(label_values, value)``
with a histogram value ``(count, sum, bounds, bucket_counts)``.  Expected label bytes
come from ``gotools_compat._promtext.label_pair_bytes`` and prometheus_client's parser,
expected sum texts from ``gotools_compat._promtext.float_bytes``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence

from prometheus_client.parser import text_string_to_metric_families as parse_text

from gotools_compat._promtext import float_bytes, label_pair_bytes
from gotools_compat.agent._kinds import (
    COUNTER,
    GAUGE,
    GAUGE_HISTOGRAM,
    HISTOGRAM,
    SUMMARY,
    Family,
)
from gotools_compat.agent._model import Summary
from gotools_compat.agent._protorequest import from_proto
from gotools_compat.agent._series import VALUE_CACHE_LIMIT, Plan, SeriesBuilder, bounds_ok
from tests.agent_requests import MD, Request, dist, metric

PREFIX = b'job="svc",instance="h:1"'


def plan(kind: str, keys: Sequence[str] = ("k",)) -> Plan:
    return Plan(Family("m", kind, "", ""), list(keys))


def labels_of(key: bytes) -> Dict[str, str]:
    """The labels a series key stands for, as prometheus_client reads them back."""
    families = list(parse_text("m{%s} 1\n" % key.decode("utf-8")))
    assert len(families) == 1 and len(families[0].samples) == 1
    return dict(families[0].samples[0].labels)


# bounds_ok and Plan.

def test_bounds_must_be_finite_and_strictly_increasing() -> None:
    assert bounds_ok(())
    assert bounds_ok((-5.0, 0.0, 0.25, 1e300))
    assert not bounds_ok((1.0, 1.0))  # two buckets of one `le`
    assert not bounds_ok((2.0, 1.0))
    assert not bounds_ok((1.0, math.inf))  # +Inf is the overflow bucket, never a bound
    assert not bounds_ok((-math.inf, 1.0))
    assert not bounds_ok((math.nan,))
    assert not bounds_ok((0.0, math.nan, 2.0))


def test_a_plan_knows_the_gauge_kinds_and_each_label_opening() -> None:
    assert [plan(kind).gauge for kind in (GAUGE, GAUGE_HISTOGRAM, COUNTER, HISTOGRAM,
                                          SUMMARY)] == [True, True, False, False, False]
    two = plan(COUNTER, ["route", "exported_le"])
    assert two.keys == ["route", "exported_le"]
    assert [(cache, key, opening) for cache, key, opening in two.caches] == [
        ({}, "route", b'route="'), ({}, "exported_le", b'exported_le="')]


# Label keys.

def test_a_series_key_is_the_prefix_and_each_label_pair_and_empty_values_are_no_labels() -> None:
    builder = SeriesBuilder()
    two = plan(GAUGE, ["a", "b"])
    out = builder.series_of(two, PREFIX, [
        (["x", "y"], 1), (["", "z"], 2), (["w", ""], 3), (["", ""], 4), ([], 5)])
    assert list(out.items()) == [
        (b",".join([PREFIX, label_pair_bytes("a", "x"), label_pair_bytes("b", "y")]), 1),
        (PREFIX + b',b="z"', 2), (PREFIX + b',a="w"', 3), (PREFIX, 5)]  # [4] is [5]'s key
    assert labels_of(PREFIX + b',a="x",b="y"') == {
        "job": "svc", "instance": "h:1", "a": "x", "b": "y"}
    # Without target labels (no prefix): just the pairs, and no labels at all is b"".
    out = builder.series_of(two, b"", [(["x", "y"], 1), (["", "z"], 2), (["", ""], 4)])
    assert list(out.items()) == [(b'a="x",b="y"', 1), (b'b="z"', 2), (b"", 4)]
    assert builder.rejected == 0


def test_label_values_are_escaped_and_made_valid_utf8() -> None:
    values = ['say "hi"', "C:\\dir", "two\nlines", "caf\u00e9 \U0001F600", "bad \ud800",
              'all "\\\n\ud800']
    expected_values = [v.replace("\ud800", "\ufffd") for v in values]
    builder = SeriesBuilder()
    one = plan(GAUGE)
    for _ in range(2):  # the second time from the plan's cache of pairs
        out = builder.series_of(one, b"", [([v], i) for i, v in enumerate(values)])
        assert list(out) == [label_pair_bytes("k", v) for v in values]
        assert [labels_of(key) for key in out] == [{"k": v} for v in expected_values]
    assert list(out)[:3] == [b'k="say \\"hi\\""', b'k="C:\\\\dir"', b'k="two\\nlines"']
    assert list(out)[4] == b'k="bad \xef\xbf\xbd"'


def test_label_keys_stay_right_past_the_value_cache_limit() -> None:
    builder = SeriesBuilder()
    one = plan(COUNTER)
    many = ["v%d" % i for i in range(VALUE_CACHE_LIMIT + 5)]
    out = builder.series_of(one, b"", [([v], 1) for v in many])
    assert len(out) == VALUE_CACHE_LIMIT + 5
    assert list(out)[-1] == b'k="v%d"' % (VALUE_CACHE_LIMIT + 4)
    again = builder.series_of(one, b"", [(["v0"], 1), (['q"' + many[-1]], 1), (["v0"], 2)])
    assert again == {b'k="v0"': 3, b'k="q\\"v%d"' % (VALUE_CACHE_LIMIT + 4): 1}


# Scalars.

def test_counter_series_of_one_key_are_summed_and_gauge_series_keep_the_last() -> None:
    big = 2 ** 53
    series: List[Any] = [(["x"], big), (["y"], 1.5), (["x"], 1), (["x"], 2)]
    summed = SeriesBuilder().series_of(plan(COUNTER), b"", series)
    assert summed == {b'k="x"': big + 3, b'k="y"': 1.5}
    assert type(summed[b'k="x"']) is int  # exact past 2**53
    assert SeriesBuilder().series_of(plan(GAUGE), b"", series) == {b'k="x"': 2, b'k="y"': 1.5}


def test_a_series_with_more_label_values_than_keys_is_rejected_not_merged() -> None:
    # Its extra values have no key to go under: taking it as k="a" would add
    # its numbers to another series.
    for kind, value in ((COUNTER, 1), (GAUGE, 1.0), (HISTOGRAM, (1, 0.5, (1.0,), [1, 0])),
                        (SUMMARY, Summary(1, 1.0, ()))):
        builder = SeriesBuilder()
        out = builder.series_of(plan(kind), b"", [(["a", "b"], value), (["a"], value)])
        assert list(out) == [b'k="a"'] and builder.rejected == 1, kind
    counted = SeriesBuilder().series_of(plan(COUNTER), b"", [(["a"], 2), (["a", "b"], 3)])
    assert counted == {b'k="a"': 2}


def test_a_scalar_that_is_not_an_int_or_a_float_is_rejected() -> None:
    builder = SeriesBuilder()
    out = builder.series_of(plan(GAUGE), b"", [
        (["none"], None), (["bool"], True), (["text"], "1"), (["hist"], (1, 1.0, (), [1])),
        (["summary"], Summary(1, 1.0, ())), (["ok"], -0.5)])
    assert out == {b'k="ok"': -0.5}
    assert builder.rejected == 5
    builder.series_of(plan(COUNTER), b"", [(["x"], None)])
    assert builder.rejected == 6  # counted over all exports


# Histograms.

def test_a_per_bucket_histogram_is_recorded_as_sent_and_copied() -> None:
    builder = SeriesBuilder()
    bounds = (0.5, 1.0, 10.0)
    counts = [1, 0, 4, 2]
    out = builder.series_of(plan(HISTOGRAM), PREFIX, [(["a"], (7, 12.25, bounds, counts))])
    assert out == {PREFIX + b',k="a"': ((0.5, 1.0, 10.0), (1, 0, 4, 2), b"12.25")}
    counts[0] = 99  # the reader's list, reused: the record does not change
    assert out[PREFIX + b',k="a"'][1] == (1, 0, 4, 2)
    assert builder.rejected == 0


def test_a_histogram_sum_is_formatted_once_as_float_bytes_says() -> None:
    totals = [0.1, 3.0, -2.5, -0.0, 1e20, 1e15, 999999999999999.5, -1e-7,
              math.inf, -math.inf, math.nan]
    out = SeriesBuilder().series_of(plan(HISTOGRAM), b"", [
        (["%d" % i], (1, total, (), [1])) for i, total in enumerate(totals)])
    texts = [record[2] for record in out.values()]
    assert texts == [float_bytes(total) for total in totals]
    assert texts[:5] == [b"0.1", b"3", b"-2.5", b"0", b"1e+20"]
    assert texts[-3:] == [b"+Inf", b"-Inf", b"NaN"]


def test_go_cumulative_counts_become_per_bucket_with_the_count_as_overflow() -> None:
    out = SeriesBuilder().series_of(plan(HISTOGRAM), b"", [
        (["go"], (5, 4.0, (1.0, 2.0), [1, 3])),  # cumulative per bound, no overflow bucket
        (["falls"], (2, 4.0, (1.0, 2.0), [3, 1])),  # not cumulative: taken per bucket
        (["short"], (2, 4.0, (1.0, 2.0), [1, 3]))])  # count below the last: +Inf keeps 3
    assert out == {b'k="go"': ((1.0, 2.0), (1, 2, 2), b"4"),
                   b'k="falls"': ((1.0, 2.0), (3, 1, 0), b"4"),
                   b'k="short"': ((1.0, 2.0), (1, 2, 0), b"4")}


def test_a_histogram_without_buckets_is_a_count_only_record() -> None:
    builder = SeriesBuilder()
    out = builder.series_of(plan(HISTOGRAM), b"", [
        (["none"], (5, 2.5, (), [])), (["bounds"], (3, 1.0, (1.0, 2.0), [])),
        (["bad"], (4, 1.0, (2.0, 1.0), []))])  # no buckets: the bounds say nothing
    assert out == {b'k="none"': ((), (5,), b"2.5"), b'k="bounds"': ((), (3,), b"1"),
                   b'k="bad"': ((), (4,), b"1")}
    assert builder.rejected == 0


def test_malformed_histograms_are_rejected_and_the_good_ones_kept() -> None:
    builder = SeriesBuilder()
    out = builder.series_of(plan(HISTOGRAM), b"", [
        (["float"], 1.0), (["none"], None), (["summary"], Summary(1, 1.0, ())),
        (["decreasing"], (3, 1.0, (2.0, 1.0), [1, 1, 1])),
        (["twice"], (3, 1.0, (1.0, 1.0), [1, 1, 1])),
        (["inf"], (3, 1.0, (1.0, math.inf), [1, 1, 1])),
        (["nan"], (3, 1.0, (math.nan,), [1, 2])),
        (["negative count"], (-1, 1.0, (1.0,), [1, 1])),
        (["negative count, no buckets"], (-1, 1.0, (), [])),
        (["negative bucket"], (1, 1.0, (1.0,), [-1, 2])),
        (["too many"], (4, 1.0, (1.0,), [1, 1, 1, 1])),
        (["too few"], (1, 1.0, (1.0, 2.0, 3.0), [1])),
        (["ok"], (2, 1.5, (1.0,), [1, 1]))])
    assert out == {b'k="ok"': ((1.0,), (1, 1), b"1.5")}
    assert builder.rejected == 12


def test_series_of_different_bounds_in_one_metric_keep_their_own_bounds() -> None:
    a, b = (1.0, 2.0), (5.0,)
    bad = (3.0, 3.0)
    builder = SeriesBuilder()
    out = builder.series_of(plan(HISTOGRAM), b"", [
        (["1"], (2, 1.0, a, [1, 1, 0])), (["2"], (2, 1.0, b, [2, 0])),
        (["3"], (2, 1.0, bad, [1, 1, 0])), (["4"], (2, 1.0, (1.0, 2.0), [0, 0, 2])),
        (["5"], (2, 1.0, b, [0, 2])), (["6"], (2, 1.0, bad, [0, 0, 2]))])
    assert {key: record[:2] for key, record in out.items()} == {
        b'k="1"': (a, (1, 1, 0)), b'k="2"': (b, (2, 0)), b'k="4"': (a, (0, 0, 2)),
        b'k="5"': (b, (0, 2))}
    assert builder.rejected == 2


def test_histogram_series_of_one_key_are_added_and_gauge_histograms_keep_the_last() -> None:
    # As the protobuf reader hands them over: a None label value is read as "".
    request = Request(metrics=[metric("h", MD.CUMULATIVE_DISTRIBUTION, ["k"], [
        (["a"], dist([1.0, 2.0], [1, 2, 3], 0.1)), ([None], dist([1.0, 2.0], [0, 0, 1], 0.25)),
        (["a"], dist([1.0, 2.0], [1, 0, 0], 0.2))])])
    (_, series), = from_proto(request).metrics
    assert SeriesBuilder().series_of(plan(HISTOGRAM), PREFIX, series) == {
        PREFIX + b',k="a"': ((1.0, 2.0), (2, 2, 3), float_bytes(0.1 + 0.2)),
        PREFIX: ((1.0, 2.0), (0, 0, 1), b"0.25")}
    assert SeriesBuilder().series_of(plan(GAUGE_HISTOGRAM), PREFIX, series) == {
        PREFIX + b',k="a"': ((1.0, 2.0), (1, 0, 0), b"0.2"),
        PREFIX: ((1.0, 2.0), (0, 0, 1), b"0.25")}


# Summaries.

def test_summaries_are_recorded_merged_by_key_and_malformed_ones_rejected() -> None:
    builder = SeriesBuilder()
    q1 = ((0.5, 1.0), (0.99, math.inf))
    q2 = ((0.5, 2.0),)
    out = builder.series_of(plan(SUMMARY), b"", [
        (["a"], Summary(2, 3.0, q1)), (["b"], Summary(0, 0.0, ())), (["a"], Summary(3, 1.5, q2)),
        (["neg"], Summary(-1, 1.0, ())), (["twice"], Summary(2, 1.0, ((0.5, 1.0), (0.5, 2.0)))),
        (["percent"], Summary(2, 1.0, ((50.0, 1.0),))),
        (["nan quantile"], Summary(1, 1.0, ((math.nan, 1.0),))),
        (["float"], 2.0), (["hist"], (1, 1.0, (), [1]))])
    assert out == {b'k="a"': (5, 4.5, q2), b'k="b"': (0, 0.0, ())}
    assert builder.rejected == 6
