"""The live pages of the in-process exporter's serve() in headless Chromium: / and /debug/tracez."""

from __future__ import annotations

import re
import urllib.request
from typing import Any, Iterator, List, Tuple

import pytest

from gotools_compat import event, export, metric, stats
from gotools_compat.event import spans as event_spans
from gotools_compat.export import prometheus
from tests.pages_browser import Tab, artefacts, browser_fixture, wait_js
from tests.test_pages_serve_tracez import SCRIPT, Clock, record_traces

browser = pytest.fixture(scope="module")(browser_fixture)
pytestmark = pytest.mark.usefixtures("registry")

BOUNDS = [0, 5, 25, 125]


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    t = Tab(browser)
    yield t
    t.close()


def per_bucket(url: str, family: str, method: str) -> List[Tuple[str, int]]:
    """The histogram's buckets on /metrics, made per bucket: (le, count)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    rows = re.findall(r'^%s_bucket\{method="%s",le="([^"]+)"\} (\d+)$' % (family, method),
                      text, re.M)
    cumulative = [int(n) for _, n in rows]
    return list(zip([le for le, _ in rows],
                    [b - a for a, b in zip([0] + cumulative, cumulative)]))


def drawn(page: Any, method: str) -> List[Tuple[str, int]]:
    return [tuple(x) for x in page.eval_on_selector_all(  # type: ignore[misc]
        '[data-metric="app_rpc_latency"] .series[data-labels=\'{"method":"%s"}\'] rect' % method,
        "els => els.map(e => [e.dataset.le, +e.dataset.count])")]


def test_serve_draws_this_process_metrics_and_follows_new_records(tab: Tab,
                                                                  tmp_path_factory: Any) -> None:
    method = event.new_string_key("method")
    latency = stats.Float64("rpc_ms", "rpc latency", "ms")
    metric.HistogramFloat64("rpc_latency", "RPC latency", BOUNDS, keys=[method]).record(latency)
    metric.Scalar("rpcs", "RPCs served").count_int64(stats.Int64("rpc", "rpcs", "1"))
    metric.Scalar("queue", "queue length").latest_float64(latency)
    hover = event.label(None, method.of("hover"))
    for value in (1, 2, 7, 30, 30, 500):
        latency.record(hover, float(value))
    with prometheus.new(namespace="app").serve(port=0, page_interval=0.2) as server:
        origin = server.page_url.rstrip("/")
        page = tab.open(server.page_url)
        page.wait_for_selector('[data-metric="app_rpc_latency"] rect', state="attached")
        expected = [("0.0", 0), ("5.0", 2), ("25.0", 1), ("125.0", 2), ("+Inf", 1)]
        assert per_bucket(server.url, "app_rpc_latency", "hover") == expected
        assert drawn(page, "hover") == expected
        assert page.is_hidden("#tracez-link")  # serve() keeps no spans
        assert (page.text_content("#source") or "").startswith("gotools_compat ")
        page.evaluate("window.__same_page = true")
        # More values, and a new series: the page shows them at its next poll.
        for value in (3, 3, 200):
            latency.record(hover, float(value))
        latency.record(event.label(None, method.of("<i>x</i>")), 4.0)
        wait_js(page, "() => document.querySelectorAll("
                "'[data-metric=\"app_rpc_latency\"] .series').length === 2")
        expected = [("0.0", 0), ("5.0", 4), ("25.0", 1), ("125.0", 2), ("+Inf", 2)]
        wait_js(page, "() => document.querySelector('[data-metric=\"app_rpc_latency\"] "
                "rect[data-le=\"+Inf\"]').dataset.count === '2'")
        assert drawn(page, "hover") == expected == per_bucket(server.url, "app_rpc_latency",
                                                                   "hover")
        assert drawn(page, "<i>x</i>") == [("0.0", 0), ("5.0", 1), ("25.0", 0), ("125.0", 0),
                                           ("+Inf", 0)]
        assert page.locator('[data-metric="app_rpc_latency"] .labels li').all_text_contents() \
            == ["method=hover", "method=<i>x</i>"]
        assert page.evaluate("window.__same_page") is True
        # The gauge keeps a short history from the polls: its sparkline.
        values = wait_js(page, "() => { const s = document.querySelector("
                         "'[data-metric=\"app_queue\"] .spark'); const v = s && "
                         "s.dataset.values.split(','); return v && v.length >= 3 && v; }")
        assert values[-1] == "4"  # the latest value recorded
        assert page.text_content('[data-metric="app_queue"] .value') == "4"
        page.screenshot(path=str(artefacts(tmp_path_factory) / "serve.png"))
        tab.assert_clean(origin)


def tree(page: Any) -> List[Tuple[str, str, int]]:
    return [tuple(x) for x in page.eval_on_selector_all(  # type: ignore[misc]
        "#trace li[data-span-id]",
        "els => els.map(e => [e.dataset.spanId, e.dataset.parentId, +e.dataset.depth])")]


def test_serve_tracez_lists_a_buckets_spans_and_opens_their_trace(
        tab: Tab, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: Any) -> None:
    clock = Clock()
    monkeypatch.setattr(event_spans, "_time_ns", clock)
    exporter = prometheus.new(namespace="app")
    saved = export.get_exporter()
    export.set_exporter(exporter)  # the spans that end now are kept for /debug/tracez
    try:
        spans = record_traces(clock)
    finally:
        export.set_exporter(saved)
    ids = {name: "%016x" % span.id for name, span in spans.items()}
    with exporter.serve(port=0, page_interval=0.2) as server:
        origin = server.page_url.rstrip("/")
        page = tab.open(server.page_url)
        page.locator("#tracez-link").click()  # shown: this exporter keeps spans
        page.wait_for_url(server.tracez_url)
        row = page.locator('tr[data-span-name="db.query"]')
        row.wait_for()
        assert [c.get_attribute("data-count") for c in row.locator("td[data-latency]").all()] \
            == ["0", "1", "0", "1", "0", "0", "0", "0", "0"]  # 50 us and 2 ms
        assert row.locator("td[data-errors]").get_attribute("data-errors") == "1"
        page.click('a[data-name="db.query"][data-latency="1ms"]')
        listed = page.locator("#spans tr[data-span-id]")
        listed.first.wait_for()
        assert listed.count() == 1
        assert (listed.get_attribute("data-span-id"), listed.get_attribute("data-parent-id")) \
            == (ids["db"], ids["root"])
        assert listed.locator("td").all_text_contents()[:3] == [
            "2026-11-26 07:00:00.000", "2 ms", "app"]
        listed.click()
        page.wait_for_selector("#trace li[data-span-id]")
        assert tree(page) == [(ids["root"], "", 0), (ids["db"], ids["root"], 1),
                              (ids["dial"], ids["db"], 2), (ids["bad"], ids["root"], 1)]
        assert page.get_attribute('#trace li[data-span-id="%s"]' % ids["db"], "class") \
            == "span d1 selected"
        root = page.locator('#trace li[data-span-id="%s"]' % ids["root"])
        assert root.locator('dd[data-attribute="method"]').text_content() == SCRIPT
        assert root.locator("dd").all_text_contents() == [SCRIPT, "5", "true", "0.5"]
        assert root.locator("[data-duration]").first.text_content() == "5 ms"
        db = page.locator('#trace li[data-span-id="%s"]' % ids["db"])
        assert db.locator(".annotations li").all_text_contents() == ["+512 \u00b5s querying"]
        bad = page.locator('#trace li[data-span-id="%s"]' % ids["bad"])
        assert bad.locator(".status").text_content() == (
            "status: error 2 \u2014 ValueError: boom " + SCRIPT)
        assert bad.locator("rect").get_attribute("class") == "bar err"
        xs = page.eval_on_selector_all("#trace rect", "els => els.map(e => +e.getAttribute('x'))")
        assert xs == pytest.approx([0, 0.2, 0.4, 600], abs=0.05)  # offsets in a 5 ms trace
        assert page.is_visible("#spans")
        assert page.evaluate("window.__x") is None
        assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
        page.screenshot(path=str(artefacts(tmp_path_factory) / "serve-tracez.png"),
                        full_page=True)
        tab.assert_clean(origin)
