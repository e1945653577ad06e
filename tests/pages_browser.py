"""Headless Chromium for the live pages' tests: Debian's /usr/bin/chromium driven by Playwright.

One browser per test module (:func:`browser_fixture`); each page records
every URL it requests, so a test can check that nothing left the page's
origin.  Screenshots go to ``$GOTOOLS_ARTEFACTS`` (CI keeps them) or to a
pytest temporary directory.  ``playwright install`` is never run: the
tests use the distribution's chromium, which ``scripts/test`` installs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, List

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
TIMEOUT_MS = 20_000  # the longest any wait for the page may take


def launch(playwright: Any) -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.fail("the browser tests need Debian's chromium at %s (scripts/test installs "
                    "it: apt-get install chromium)" % CHROMIUM)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def browser_fixture() -> Iterator[Any]:
    """A module's browser: ``browser = pytest.fixture(scope="module")(browser_fixture)``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


class Tab:
    """A page in its own context (UTC clock), with every request and error it saw."""

    def __init__(self, browser: Any, width: int = 1100, height: int = 760) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height},
                                           timezone_id="UTC", locale="en-US")
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.requests: List[str] = []
        self.errors: List[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)

    def open(self, url: str) -> Any:
        self.page.goto(url)
        return self.page

    def assert_clean(self, origin: str) -> None:
        """Nothing requested outside ``origin``; no script error, no CSP violation."""
        assert self.requests, "the recorder saw no request"
        outside = [url for url in self.requests if not url.startswith(origin + "/")]
        assert outside == [], outside
        assert self.errors == []

    def close(self) -> None:
        self.context.close()


def artefacts(tmp_path_factory: Any) -> Path:
    named = os.environ.get("GOTOOLS_ARTEFACTS")
    path = Path(named) if named else tmp_path_factory.getbasetemp() / "artefacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def wait_js(page: Any, expression: str, arg: Any = None) -> Any:
    """Wait until ``expression`` (a JS function of ``arg``) is truthy; its value."""
    return page.wait_for_function(expression, arg=arg).json_value()
