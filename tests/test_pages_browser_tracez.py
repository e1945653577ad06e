"""/debug/tracez in headless Chromium: a bucket lists its spans, a span opens its trace's tree."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from gotools_compat.agent import Agent
from tests.pages_browser import Tab, artefacts, browser_fixture

GO_TRACE = (Path(__file__).parent / "fixtures" / "go-ocagent-v1-trace.json").read_bytes()
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
DEEP = "0123456789abcdef0123456789abcdef"

browser = pytest.fixture(scope="module")(browser_fixture)


def b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def oc_span(name: str, span_id: str, parent: str, start_us: int, duration_us: int,
            **extra: Any) -> Dict[str, Any]:
    def stamp(us: int) -> str:
        return "2026-11-26T07:00:%02d.%06dZ" % (us // 1_000_000, us % 1_000_000)
    span = {"trace_id": b64(DEEP), "span_id": b64(span_id), "name": {"value": name},
            "start_time": stamp(start_us), "end_time": stamp(start_us + duration_us)}
    if parent:
        span["parent_span_id"] = b64(parent)
    span.update(extra)
    return span


# A deeper trace whose strings are hostile: root > db.query (an error) > net.dial,
# and a span whose parent is not kept.
DEEP_TRACE = {"node": {"service_info": {"name": "svc"}}, "spans": [
    oc_span(XSS, "00000000000000a1", "", 0, 9_000),
    oc_span("db.query", "00000000000000a2", "00000000000000a1", 1_000, 5_000,
            status={"code": 13, "message": XSS}),
    oc_span("net.dial", "00000000000000a3", "00000000000000a2", 2_000, 1_500,
            attributes={"attributeMap": {XSS: {"stringValue": {"value": XSS}},
                                         "n": {"intValue": "5"}, "ok": {"boolValue": True}}},
            time_events={"timeEvent": [{"time": "2026-11-26T07:00:00.003000Z",
                                        "annotation": {"description": {"value": XSS}}}]}),
    oc_span("late", "00000000000000a9", "00000000000000ff", 8_000, 500)]}


def post(port: int, doc: bytes) -> None:
    request = urllib.request.Request("http://127.0.0.1:%d/v1/trace" % port, data=doc,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def agent() -> Iterator[Agent]:
    with Agent("127.0.0.1:0", "127.0.0.1:0", page_interval=0.3) as a:
        post(a.port, GO_TRACE)
        post(a.port, json.dumps(DEEP_TRACE).encode())
        yield a


@pytest.fixture
def tab(browser: Any) -> Iterator[Tab]:
    t = Tab(browser, height=900)
    yield t
    t.close()


def origin(agent: Agent) -> str:
    return "http://127.0.0.1:%d" % (agent.prometheus_port or 0)


def tree(page: Any) -> List[Tuple[str, str, int]]:
    return [tuple(x) for x in page.eval_on_selector_all(  # type: ignore[misc]
        "#trace li[data-span-id]",
        "els => els.map(e => [e.dataset.spanId, e.dataset.parentId, +e.dataset.depth])")]


def go_tree() -> List[Tuple[str, str, int]]:
    """The fixture's spans as a tree: the root, then its children by start time."""
    spans = json.loads(GO_TRACE)["spans"]
    rows = sorted(spans, key=lambda s: s["start_time"])
    ids = {s["name"]["value"]: base64.b64decode(s["span_id"]).hex() for s in spans}
    root = ids["textDocument/hover"]
    return [(root, "", 0)] + [(base64.b64decode(s["span_id"]).hex(), root, 1)
                              for s in rows if s["name"]["value"] != "textDocument/hover"]


def test_a_bucket_lists_its_spans_and_a_span_opens_its_trace(agent: Agent, tab: Tab,
                                                             tmp_path_factory: Any) -> None:
    page = tab.open(origin(agent) + "/debug/tracez")
    row = page.locator('tr[data-span-name="textDocument/hover"]')
    row.wait_for()
    cells = row.locator("td[data-latency]")
    assert [c.get_attribute("data-count") for c in cells.all()] == [
        "0", "0", "0", "1", "0", "0", "0", "0", "0"]  # 2.24 ms: in [1ms, 10ms)
    page.click('a[data-name="queued"][data-latency="10us"]')
    listed = page.locator("#spans tr[data-span-id]")
    listed.first.wait_for()
    assert listed.count() == 1
    assert (listed.get_attribute("data-span-id"), listed.get_attribute("data-parent-id")) == (
        "4a8aa4207f686336", "a393c8c2b375a1b2")
    assert listed.locator("td").all_text_contents()[:3] == [
        "2026-11-26 06:55:43.571", "45.93 \u00b5s", "gopls"]
    listed.click()
    page.wait_for_selector("#trace li[data-span-id]")
    assert tree(page) == go_tree()
    root = page.locator('#trace li[data-span-id="a393c8c2b375a1b2"]')
    assert root.locator('dd[data-attribute="method"]').text_content() == "textDocument/hover"
    assert root.locator('dd[data-attribute="direction"]').text_content() == "in"
    assert root.locator(".annotations li").all_text_contents() == [
        "+2.242 ms status.code=OK"]
    assert root.locator("[data-status]").text_content() == "ok"
    assert root.locator("[data-duration]").text_content() == "2.244 ms"
    assert page.get_attribute('#trace li[data-span-id="4a8aa4207f686336"]', "class") \
        == "span d1 selected"
    assert page.is_visible("#spans")  # the list stays above the trace
    page.screenshot(path=str(artefacts(tmp_path_factory) / "tracez.png"), full_page=True)
    tab.assert_clean(origin(agent))


def test_an_error_span_opens_a_deeper_trace_and_hostile_strings_stay_text(
        agent: Agent, tab: Tab, tmp_path_factory: Any) -> None:
    page = tab.open(origin(agent) + "/debug/tracez")
    page.click('a[data-name="db.query"][data-errors="1"]')
    listed = page.locator("#spans tr[data-span-id]")
    listed.first.wait_for()
    assert listed.get_attribute("data-span-id") == "00000000000000a2"
    assert listed.locator("td").last.text_content() == "error 13"
    listed.click()
    page.wait_for_selector("#trace li[data-span-id]")
    assert tree(page) == [("00000000000000a1", "", 0),
                          ("00000000000000a2", "00000000000000a1", 1),
                          ("00000000000000a3", "00000000000000a2", 2),
                          ("00000000000000a9", "00000000000000ff", 0)]
    li = page.locator("#trace li[data-span-id]")
    assert li.nth(0).locator(".name").text_content() == XSS
    assert li.nth(1).locator(".status").text_content() == "status: error 13 \u2014 " + XSS
    assert li.nth(1).locator("rect").get_attribute("class") == "bar err"
    dial = li.nth(2)
    assert dial.locator("dt").all_text_contents() == [XSS, "n", "ok"]
    assert dial.locator("dd").all_text_contents() == [XSS, "5", "true"]
    assert dial.locator(".annotations li").all_text_contents() == ["+1 ms " + XSS]
    assert "is not kept" in (li.nth(3).locator(".note").text_content() or "")
    # The waterfall: each bar starts at its offset in the trace (9 ms long).
    xs = page.eval_on_selector_all("#trace rect", "els => els.map(e => +e.getAttribute('x'))")
    assert xs == pytest.approx([0, 1000 / 9, 2000 / 9, 8000 / 9], abs=0.1)
    page.wait_for_function("() => +document.body.dataset.polls >= 3")  # redrawn meanwhile
    assert page.evaluate("window.__xss") is None
    assert page.evaluate("document.querySelectorAll('img, script:not([src])').length") == 0
    page.screenshot(path=str(artefacts(tmp_path_factory) / "tracez-deep.png"), full_page=True)
    tab.assert_clean(origin(agent))


def test_a_trace_link_opens_the_trace_directly(agent: Agent, tab: Tab) -> None:
    page = tab.open(origin(agent) + "/debug/tracez#trace=" + DEEP)
    page.wait_for_selector("#trace li[data-span-id]")
    assert len(tree(page)) == 4 and page.is_hidden("#spans")
    assert page.text_content("#trace h2") == "Trace " + DEEP
    tab.assert_clean(origin(agent))
