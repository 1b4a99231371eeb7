"""pytest plugin: a real Chromium (Debian's package, driven by Playwright) for tests of what a person sees or a
website sends. Never a downloaded browser; never skipped: without Chromium the browser tests fail with a clear message.

``browser`` is one Chromium per test module; ``page`` is a fresh context and page per test that records every
console error and uncaught page error (``page_errors``), so a test can assert that a page runs cleanly.
``screenshot(page, name)`` saves a PNG under ``SIGNAL_SCREENSHOT_DIR`` (default ``.artifacts/screenshots``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import REPO_ROOT

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOT_DIR = Path(os.environ.get("SIGNAL_SCREENSHOT_DIR") or REPO_ROOT / ".artifacts" / "screenshots")


def chromium_path() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail(
            f"Chromium is not installed at {path}. The browser tests drive Debian's chromium with Playwright; "
            "`make test` installs it (as root), or `sudo apt-get install chromium`, or set CHROMIUM=/path.",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. Not per session: Playwright's sync API keeps an event loop running in the main
    thread while it is open, and tests that call ``asyncio.run`` later in the session would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class PageErrors(list[str]):
    """Console errors and uncaught exceptions of one page, as text."""


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}}


@pytest.fixture
def page(browser: Any, browser_context_args: dict[str, Any], page_errors: PageErrors) -> Iterator[Any]:
    context = browser.new_context(**browser_context_args)
    opened = context.new_page()
    opened.on(
        "console", lambda msg: page_errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
    )
    opened.on("pageerror", lambda exc: page_errors.append(f"pageerror: {exc}"))
    try:
        yield opened
    finally:
        context.close()


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Save what the page shows as ``<SCREENSHOT_DIR>/<name>.png`` for a person to look at after the run."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


# -- the console, as a person uses it ----------------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
XSS = "<img src=x onerror=alert(1)>"

UNLABELLED = """() => Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.name || el.id || el.outerHTML)"""
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
WIDE = """() => { const w = document.documentElement.clientWidth;
  const clipped = e => { for (let p = e.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== 'visible') return true; } return false; };
  return Array.from(document.querySelectorAll('body *'))
    .filter(e => e.getBoundingClientRect().right > w + 1 && !clipped(e))
    .slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id); }"""


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def new_page(browser: Any, viewport: dict[str, int], errors: PageErrors, **options: Any) -> Any:
    context = browser.new_context(viewport=viewport, **options)
    opened = context.new_page()
    opened.on("console", lambda msg: errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None)
    opened.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    opened.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    return opened


def sign_in_with_the_keyboard(page: Any, base_url: str) -> None:
    from tests.integration.conftest import CONSOLE_TOKEN

    page.goto(base_url + "/integrations")
    assert "/signin?next=/integrations" in page.url
    expect(page.locator(":focus")).to_have_id("token")  # ready to type
    page.keyboard.type(CONSOLE_TOKEN)
    page.keyboard.press("Enter")
    page.wait_for_url(base_url + "/integrations")
