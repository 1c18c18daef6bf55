"""Debian Chromium driven by Playwright (never a downloaded browser). Pages fail the test on any console error
or CSP violation."""

import os

import pytest

from tests.conftest import need_tool

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def sync_pw():
    """One Playwright driver per run: a second ``sync_playwright()`` while this one lives fails ("Sync API inside
    the asyncio loop"), so every browser fixture launches from this one."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def chromium(sync_pw):
    path = os.environ.get("AUTHSVC_CHROMIUM") or need_tool("chromium")
    browser = sync_pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class Watched:
    """A browser context whose pages record console errors and CSP violations."""

    def __init__(self, browser):
        self.context = browser.new_context()
        self.problems = []
        self.page = self.new_page()

    def new_page(self):
        page = self.context.new_page()
        page.on("console", lambda m: self._console(page, m))
        page.on("pageerror", lambda e: self.problems.append(f"pageerror: {e}"))
        return page

    def _console(self, page, msg):
        if msg.type != "error":
            return
        # A form answered 4xx on purpose (wrong password → 401) is logged by Chromium as a failed load of the
        # *document*. That is the page the user sees, not a broken resource; anything else still fails the test.
        if msg.text.startswith("Failed to load resource") and msg.location.get("url") == page.url:
            return
        self.problems.append(f"console: {msg.text} @ {msg.location.get('url')}")

    def close(self):
        self.context.close()


@pytest.fixture
def browser_context(chromium):
    made = []

    def factory():
        w = Watched(chromium)
        made.append(w)
        return w

    yield factory
    problems = [p for w in made for p in w.problems]
    for w in made:
        w.close()
    assert problems == [], problems
