"""The live metrics page in headless Chromium, while scripts/demo's pipeline runs (issue 15).

examples/demo.py records a seeded series into its in-process agent; the page
must draw exactly the agent's per-bucket counts, follow new values without a
reload, filter, keep a hostile label value as text and load nothing from
elsewhere.  The screenshot of the first test is the README's (docs/pages.png,
rewritten when GOTOOLS_UPDATE_SCREENSHOT=1).
"""

from __future__ import annotations

import bisect
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from tests.pages_browser import Tab, artefacts, browser_fixture, wait_js
from tests.prometheus_server import free_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = str(ROOT / "examples" / "demo.py")
BUCKETS = [0, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000]
LE = ["%.1f" % b for b in BUCKETS] + ["+Inf"]
FAMILY = "promdemo_latencyDistribution"
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'

browser = pytest.fixture(scope="module")(browser_fixture)


class Demo:
    """examples/demo.py, seeded: with its agent in-process, kept running until stop(),
    or sending to ``agent`` (its agent's listen address) and done on return."""

    def __init__(self, seed: int, count: int, agent: str = "") -> None:
        self.listen = free_port()
        where = ["--agent", agent] if agent else [
            "--listen", "127.0.0.1:%d" % self.listen, "--prometheus", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            [sys.executable, DEMO, "--count", str(count), "--no-sleep", "--seed", str(seed),
             "--rate", "0.5"] + where, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        lines: List[str] = []
        for line in self.proc.stdout:  # with its own agent: a last line once all is sent
            lines.append(line)
            if line.startswith("Sent "):
                break
        if agent:
            self.proc.wait(30)
            self.proc.stdout.close()
        found = re.search(r"metrics at (http://127\.0\.0\.1:\d+)/metrics", "".join(lines))
        assert found or agent, lines
        self.origin = found.group(1) if found else ""
        self.values = [int(v) for v in re.findall(r"^Latency:  (\d+)$", "".join(lines), re.M)]
        assert len(self.values) == count
        self.instance_suffix = ":%d" % self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def per_bucket(values: List[int]) -> List[int]:
    counts = [0] * (len(BUCKETS) + 1)
    for v in values:
        counts[bisect.bisect_left(BUCKETS, v)] += 1  # value <= bound
    return counts


def scraped(origin: str, instance_suffix: str) -> List[Tuple[str, int]]:
    """The demo's histogram on the agent's /metrics: (le, per-bucket count)."""
    with urllib.request.urlopen(origin + "/metrics", timeout=10) as response:
        text = response.read().decode()
    rows = re.findall(r'^%s_bucket\{[^}]*instance="[^"]*%s",le="([^"]+)"\} (\d+)$'
                      % (FAMILY, re.escape(instance_suffix)), text, re.M)
    cumulative = [int(n) for _, n in rows]
    return list(zip([le for le, _ in rows], [b - a for a, b in zip([0] + cumulative,
                                                                      cumulative)]))


def post(origin: str, path: str, doc: Dict[str, Any]) -> None:
    request = urllib.request.Request(origin + path, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    running = Demo(seed=1, count=300)
    try:
        deadline = time.monotonic() + 30
        while sum(n for _, n in scraped(running.origin, running.instance_suffix)) < 300:
            assert time.monotonic() < deadline, "the agent never got the demo's 300 values"
            time.sleep(0.05)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: Any) -> Path:
    return artefacts(tmp_path_factory)


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    t = Tab(browser)
    yield t
    t.close()


def bars(page: Any, instance_suffix: str) -> List[Tuple[str, int]]:
    return [tuple(x) for x in page.eval_on_selector_all(  # type: ignore[misc]
        'section[data-instance$="%s"] [data-metric="%s"] rect[data-le]'
        % (instance_suffix, FAMILY), "els => els.map(e => [e.dataset.le, +e.dataset.count])")]


def test_the_bars_are_the_agents_per_bucket_counts(demo: Demo, tab: Tab, shots: Path) -> None:
    page = tab.open(demo.origin + "/")
    page.wait_for_selector('[data-metric="%s"] rect[data-le]' % FAMILY, state="attached")
    expected = list(zip(LE, per_bucket(demo.values)))
    assert scraped(demo.origin, demo.instance_suffix) == expected
    assert bars(page, demo.instance_suffix) == expected
    card = page.locator('section[data-instance$="%s"] [data-metric="%s"]'
                        % (demo.instance_suffix, FAMILY))
    assert card.locator('[data-stat="count"]').text_content() == "300"
    assert card.locator('[data-stat="sum"]').text_content() == "{:,}".format(sum(demo.values))
    # p50 as Prometheus's histogram_quantile estimates it: linear within its bucket.
    counts, rank, cum = per_bucket(demo.values), 0.5 * 300, 0
    i = next(i for i, c in enumerate(counts) if (cum := cum + c) >= rank)  # noqa: F841
    before = sum(counts[:i])
    lower = BUCKETS[i - 1] if i else 0
    p50 = lower + (BUCKETS[i] - lower) * (rank - before) / counts[i]
    got = float(card.locator('[data-stat="p50"]').get_attribute("data-value") or "nan")
    assert got == pytest.approx(p50)
    # The heights follow the counts: the tallest bar is the largest bucket.
    heights = page.eval_on_selector_all(
        'section[data-instance$="%s"] [data-metric="%s"] rect[data-le]'
        % (demo.instance_suffix, FAMILY), "els => els.map(e => +e.getAttribute('height'))")
    assert heights.index(max(heights)) == counts.index(max(counts))
    assert [h == 0 for h in heights] == [c == 0 for c in counts]
    # The picture once counters have a rate: three polls, at a faster pace than the 2 s.
    page.goto(demo.origin + "/?interval=0.4")
    page.wait_for_function("() => +document.body.dataset.polls >= 3")
    page.screenshot(path=str(shots / "metrics.png"))
    if os.environ.get("GOTOOLS_UPDATE_SCREENSHOT"):
        page.screenshot(path=str(ROOT / "docs" / "pages.png"))
    tab.assert_clean(demo.origin)
    assert demo.origin + "/metrics.json" in tab.requests


def test_the_filter_keeps_the_matching_cards_and_series(demo: Demo, tab: Tab) -> None:
    page = tab.open(demo.origin + "/")
    page.wait_for_selector('[data-metric="%s"]' % FAMILY)
    names = lambda: page.eval_on_selector_all(  # noqa: E731
        "[data-metric]", "els => els.map(e => e.dataset.metric)")
    assert len(names()) > 5
    page.fill("#filter", "latency")
    assert set(names()) == {FAMILY}
    assert page.evaluate("location.hash") == "#q=latency"
    page.fill("#filter", "cause=max_senders")  # a label of one series of one card
    assert names() == ["gotools_agent_refused_series"]
    assert page.eval_on_selector_all(".series .labels li", "els => els.map(e => e.textContent)") \
        == ["cause=max_senders"]
    page.fill("#filter", "spans refused")  # every word must match: none does both
    assert names() == [] and "No metric matches" in (page.text_content("#empty") or "")
    page.fill("#filter", "")
    assert len(names()) > 5
    page.goto(demo.origin + "/#q=spans_received")  # the filter is in the link
    assert names() == ["gotools_agent_spans_received"]
    page.reload()
    page.wait_for_selector("[data-metric]")
    assert names() == ["gotools_agent_spans_received"]
    assert page.input_value("#filter") == "spans_received"
    tab.assert_clean(demo.origin)


def test_the_page_follows_new_values_without_a_reload(demo: Demo, tab: Tab,
                                                      shots: Path) -> None:
    page = tab.open(demo.origin + "/")  # polling at the agent's interval (2 s)
    page.wait_for_selector('[data-metric="%s"]' % FAMILY)
    page.evaluate("window.__same_page = true")
    changed = float(page.get_attribute("#status", "data-changed") or 0)
    # A second run of the demo sends to the same agent: a second sender appears.
    second = Demo(seed=2, count=50, agent="http://127.0.0.1:%d" % demo.listen)
    try:
        assert second.proc.returncode == 0
        suffix = ":%d" % second.proc.pid
        wait_js(page, "s => document.querySelector("
                "'section[data-instance$=\"' + s + '\"] rect[data-le]')", suffix)
        assert bars(page, suffix) == list(zip(LE, per_bucket(second.values)))
        assert bars(page, demo.instance_suffix) == list(zip(LE, per_bucket(demo.values)))
        jobs = page.eval_on_selector_all("section.sender", "els => els.map(e => e.dataset.job)")
        assert jobs.count("go-tools-test") == 2  # grouped by sender: two demo processes
        assert page.evaluate("window.__same_page") is True
        assert float(page.get_attribute("#status", "data-changed") or 0) > changed
        assert int(page.get_attribute("body", "data-polls") or 0) >= 2
        page.screenshot(path=str(shots / "metrics-two-senders.png"), full_page=True)
    finally:
        second.stop()
    tab.assert_clean(demo.origin)


def test_a_hostile_label_value_and_help_stay_text(demo: Demo, tab: Tab, shots: Path) -> None:
    post(demo.origin, "/v1/metrics", {
        "node": {"identifier": {"host_name": "evil", "pid": 1},
                 "service_info": {"name": "<b>job</b>"}},
        "metrics": [{"metric_descriptor": {"name": "xss_gauge", "description": XSS, "type": 1,
                                           "label_keys": [{"key": "where"}]},
                     "timeseries": [{"label_values": [{"value": XSS, "has_value": True}],
                                     "points": [{"int64Value": 7}]}]}]})
    page = tab.open(demo.origin + "/?interval=0.2#q=xss")
    page.wait_for_selector('[data-metric="promdemo_xss_gauge"] .value')
    card = page.locator('[data-metric="promdemo_xss_gauge"]')
    assert card.locator(".help").text_content() == XSS
    assert card.locator(".labels li").all_text_contents() == ["vendor=otc", "where=" + XSS]
    assert card.locator(".value").text_content() == "7"
    assert page.locator('section[data-job="<b>job</b>"] h2 .job').text_content() == "<b>job</b>"
    page.wait_for_function("() => +document.body.dataset.polls >= 3")  # redrawn: new answers
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('img, b, script:not([src])').length") == 0
    page.screenshot(path=str(shots / "metrics-xss.png"))
    tab.assert_clean(demo.origin)
