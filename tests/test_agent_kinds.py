"""gotools_compat.agent._kinds: metric kinds, families and the record rules, directly (no sockets).

Expected kinds come from the opencensus-proto ``MetricDescriptor.Type`` enum,
expected sample suffixes and kind-owned labels from prometheus_client's parsers,
expected sum texts from ``gotools_compat._promtext.float_bytes``.
"""

from __future__ import annotations

import math
from typing import Dict, List, Set, Tuple

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from gotools_compat._oc import proto
from gotools_compat._promtext import float_bytes
from gotools_compat.agent._kinds import (
    COUNTER,
    GAUGE,
    GAUGE_HISTOGRAM,
    HISTOGRAM,
    KINDS,
    OWN_LABELS,
    SUFFIXES,
    SUMMARY,
    Family,
    cumulative_counts,
    inferred,
    merge,
    per_bucket,
    quantiles_ok,
)
from gotools_compat.agent._model import Summary

proto.install()

from opencensus.proto.metrics.v1 import metrics_pb2  # noqa: E402

MD = metrics_pb2.MetricDescriptor


# Kinds and their sample names.

def test_each_descriptor_type_maps_to_its_kind_and_unspecified_is_inferred() -> None:
    by_name = {MD.Type.Name(number): kind for number, kind in KINDS.items()}
    assert by_name == {
        "GAUGE_INT64": GAUGE, "GAUGE_DOUBLE": GAUGE, "GAUGE_DISTRIBUTION": GAUGE_HISTOGRAM,
        "CUMULATIVE_INT64": COUNTER, "CUMULATIVE_DOUBLE": COUNTER,
        "CUMULATIVE_DISTRIBUTION": HISTOGRAM, "SUMMARY": SUMMARY}
    assert MD.UNSPECIFIED not in KINDS
    assert set(KINDS) == set(MD.Type.values()) - {MD.UNSPECIFIED}


# One family "m" of each kind, as the text format and OpenMetrics write it.
_TEXT = {
    GAUGE: "# TYPE m gauge\nm 1\n",
    COUNTER: "# TYPE m_total counter\nm_total 1\n",
    HISTOGRAM: '# TYPE m histogram\nm_bucket{le="+Inf"} 1\nm_sum 1\nm_count 1\n',
    GAUGE_HISTOGRAM: '# TYPE m histogram\nm_bucket{le="+Inf"} 1\nm_sum 1\nm_count 1\n',
    SUMMARY: '# TYPE m summary\nm{quantile="0.5"} 1\nm_sum 1\nm_count 1\n',
}
_OPENMETRICS = {
    GAUGE: "# TYPE m gauge\nm 1\n# EOF\n",
    COUNTER: "# TYPE m counter\nm_total 1\n# EOF\n",
    HISTOGRAM: '# TYPE m histogram\nm_bucket{le="+Inf"} 1\nm_sum 1\nm_count 1\n# EOF\n',
    GAUGE_HISTOGRAM: ('# TYPE m gaugehistogram\nm_bucket{le="+Inf"} 1\nm_gsum 1\n'
                      'm_gcount 1\n# EOF\n'),
    SUMMARY: '# TYPE m summary\nm{quantile="0.5"} 1\nm_sum 1\nm_count 1\n# EOF\n',
}


@pytest.mark.parametrize("kind", [GAUGE, COUNTER, HISTOGRAM, GAUGE_HISTOGRAM, SUMMARY])
def test_suffixes_and_own_labels_are_those_the_parsers_give_a_family_of_the_kind(
        kind: str) -> None:
    suffixes: Set[str] = {""}  # the family's own name is taken too, whatever its samples
    labels: Set[str] = set()
    for families in (parse_text(_TEXT[kind]), parse_om(_OPENMETRICS[kind])):
        for family in families:
            for sample in family.samples:
                assert sample.name.startswith("m")
                suffixes.add(sample.name[1:])
                labels.update(sample.labels)
    assert set(SUFFIXES[kind]) == suffixes
    assert len(SUFFIXES[kind]) == len(suffixes)  # none listed twice
    assert set(OWN_LABELS.get(kind, ())) == labels


# Family.

def test_a_family_keeps_its_fields_and_its_help_is_made_valid_utf8() -> None:
    family = Family("rpc_latency", HISTOGRAM, 'Latency "of" rpcs\\n', "ms")
    assert (family.name, family.kind, family.help, family.unit) == (
        "rpc_latency", HISTOGRAM, 'Latency "of" rpcs\\n', "ms")
    assert family.templates == {}
    # Not ASCII: valid text is kept, a lone surrogate becomes U+FFFD.
    family = Family("g", GAUGE, "caf\u00e9 \ud800 \U0001F600", "")
    assert family.help == "caf\u00e9 \ufffd \U0001F600"
    assert family.help.encode("utf-8") == b"caf\xc3\xa9 \xef\xbf\xbd \xf0\x9f\x98\x80"


# inferred.

def test_the_kind_of_an_unspecified_metric_is_inferred_from_its_value() -> None:
    assert inferred(3) == GAUGE
    assert inferred(-2.5) == GAUGE
    assert inferred(math.nan) == GAUGE
    assert inferred((1, 2.0, (1.0,), [1, 0])) == HISTOGRAM
    assert inferred(Summary(1, 2.0, ())) == SUMMARY
    # None is a point without a value; bool is not an int64 or a double.
    for value in (None, True, "1", b"1", [1, 2.0, (), []], {"count": 1}):
        assert inferred(value) is None, value


# merge.

def test_gauges_and_gauge_histograms_keep_the_newer_record() -> None:
    assert merge(GAUGE, b"", 5, 2.5) == 2.5
    old = ((1.0,), (1, 2), b"3")
    new = ((1.0,), (4, 0), b"0.5")
    assert merge(GAUGE_HISTOGRAM, b'k="v"', old, new) is new


def test_counters_are_summed_and_ints_stay_exact_past_2_to_the_53() -> None:
    assert merge(COUNTER, b"", 2 ** 53, 1) == 2 ** 53 + 1
    assert type(merge(COUNTER, b"", 2 ** 53, 1)) is int
    assert merge(COUNTER, b"", 1, 0.5) == 1.5


def test_histograms_of_the_same_bounds_add_counts_and_sums() -> None:
    merged = merge(HISTOGRAM, b"", ((1.0, 2.0), (1, 0, 2), b"0.1"),
                   ((1.0, 2.0), (3, 4, 5), b"0.2"))
    assert merged == ((1.0, 2.0), (4, 4, 7), float_bytes(0.1 + 0.2))
    assert merged[2] == b"0.30000000000000004"
    # Integral sums are written without ".0", infinite ones as +Inf.
    assert merge(HISTOGRAM, b"", ((), (1,), b"1.5"), ((), (2,), b"2.5"))[2] == b"4"
    assert merge(HISTOGRAM, b"", ((), (1,), b"+Inf"), ((), (2,), b"1"))[2] == b"+Inf"
    assert merge(HISTOGRAM, b"", ((), (1,), b"NaN"), ((), (2,), b"1"))[2] == b"NaN"


def test_histograms_of_different_bounds_are_not_added_the_newer_wins() -> None:
    new = ((1.0, 5.0), (0, 0, 1), b"7")
    assert merge(HISTOGRAM, b"", ((1.0, 2.0), (9, 9, 9), b"100"), new) is new


def test_summaries_add_count_and_sum_and_keep_the_newer_quantiles() -> None:
    merged = merge(SUMMARY, b"", (2, 3.0, ((0.5, 1.0),)), (5, 4.5, ((0.5, 2.0), (0.9, 3.0))))
    assert merged == (7, 7.5, ((0.5, 2.0), (0.9, 3.0)))


# cumulative_counts and per_bucket.

def test_per_bucket_counts_with_an_overflow_bucket_are_accumulated() -> None:
    assert cumulative_counts([1, 0, 3, 2], 3, 6) == [1, 1, 4, 6]
    assert cumulative_counts([7], 0, 7) == [7]  # no bounds: the overflow bucket alone


def test_go_cumulative_counts_get_an_overflow_bucket_of_the_total_count() -> None:
    counts = [1, 3]
    assert cumulative_counts(counts, 2, 5) == [1, 3, 5]
    assert counts == [1, 3, 5]  # changed in place, as documented
    # A count below the last cumulative count cannot make the +Inf bucket smaller.
    assert cumulative_counts([2, 4], 2, 3) == [2, 4, 4]


def test_go_form_counts_that_fall_are_read_as_per_bucket_counts() -> None:
    assert cumulative_counts([3, 1], 2, 2) == [3, 4, 4]
    assert cumulative_counts([3, 1], 2, 9) == [3, 4, 9]


def test_counts_that_make_no_sense_give_none() -> None:
    cases: Dict[str, Tuple[List[int], int, int]] = {
        "negative per bucket": ([1, -1, 2], 2, 2),
        "negative go form": ([-1, 2], 2, 2),
        "too many": ([1, 1, 1, 1], 2, 4),
        "too few": ([1], 2, 1),
        "none with bounds": ([], 2, 0),
        "none without bounds": ([], 0, 0),
    }
    for name, (counts, nbounds, count) in cases.items():
        assert cumulative_counts(counts, nbounds, count) is None, name


def test_per_bucket_undoes_the_accumulation() -> None:
    assert per_bucket([1, 1, 4, 6]) == (1, 0, 3, 2)
    assert per_bucket([5]) == (5,)
    assert per_bucket(cumulative_counts([0, 2, 0, 9], 3, 11) or []) == (0, 2, 0, 9)


# quantiles_ok.

def test_quantiles_must_be_from_0_to_1_and_each_once() -> None:
    assert quantiles_ok(())
    assert quantiles_ok(((0.0, 1.0), (0.5, math.nan), (0.99, -1.0), (1.0, 9.0)))
    # Out of range, NaN or twice: not ok.
    assert not quantiles_ok(((1.5, 1.0),))
    assert not quantiles_ok(((-0.01, 1.0),))
    assert not quantiles_ok(((50.0, 1.0),))  # a percentile, not a quantile
    assert not quantiles_ok(((math.nan, 1.0),))
    assert not quantiles_ok(((0.5, 1.0), (0.9, 2.0), (0.5, 3.0)))
    assert not quantiles_ok(((0.0, 1.0), (-0.0, 2.0)))  # one quantile, spelled twice
