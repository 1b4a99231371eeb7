"""pytest plugin: a website on another origin than the API, loading the real browser SDKs.

``sdk_files`` is the SDK directory laid out by ``workers.websites.sdk`` from the pinned npm tarballs (downloaded once
into ``~/.cache/signal-s3/npm``, checked against their sha512; never in git). ``website`` is a tiny static server on
``http://localhost:<port>`` (the API runs on ``http://127.0.0.1:<port>``: another origin) serving that directory at
``/signal-sdk`` and the pages a test writes. ``visit(browser, url)`` opens a page in a fresh browser context that
records console errors and every request the context makes, so a test can assert that nothing was asked of anything
but loopback (Segment's or RudderStack's CDNs included). No Playwright route is installed: with request interception
on, Playwright answers CORS preflights itself, and the API's own preflight answers must be what the browser sees.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from workers.websites import sdk

LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?(/|$)")
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
{snippet}</head>
<body><h1>{title}</h1>
<script>
{script}
</script></body></html>
"""


@pytest.fixture(scope="session")
def sdk_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pinned SDK files (fails, never skips, when the registry cannot be reached)."""
    dest = tmp_path_factory.mktemp("signal-sdk")
    try:
        sdk.install(dest)
    except sdk.SdkFetchError as exc:
        pytest.fail(f"the browser SDKs could not be fetched from the npm registry: {exc}", pytrace=False)
    return dest


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class Website:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
        self.origin = f"http://localhost:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def page(self, name: str, *, snippet: str, script: str = "", title: str = "Signal test shop") -> str:
        """Write a page with ``snippet`` in its head and ``script`` after the body; its URL."""
        (self.root / name).write_text(PAGE.format(title=title, snippet=snippet, script=script))
        return f"{self.origin}/{name}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def website(sdk_files: Path, tmp_path: Path) -> Iterator[Website]:
    root = tmp_path / "site"
    root.mkdir()
    shutil.copytree(sdk_files, root / "signal-sdk")
    site = Website(root)
    yield site
    site.close()


@dataclass
class Visit:
    page: Any
    context: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "METHOD url", every request of the context

    @property
    def external(self) -> list[str]:
        """Requests that left loopback."""
        return [r for r in self.requests if not LOCAL.match(r.split(" ", 1)[1])]

    def close(self) -> None:
        """Take in the browser's last events, then close the context."""
        self.page.wait_for_timeout(200)
        self.context.close()


def visit(browser: Any, url: str) -> Visit:
    """Open ``url`` in a new context that records console errors and requests."""
    context = browser.new_context()
    seen = Visit(page=None, context=context)
    context.on("request", lambda request: seen.requests.append(f"{request.method} {request.url}"))
    page = context.new_page()
    page.on(
        "console", lambda msg: seen.errors.append(f"console.{msg.type}: {msg.text}") if msg.type == "error" else None
    )
    page.on("pageerror", lambda exc: seen.errors.append(f"pageerror: {exc}"))
    seen.page = page
    page.goto(url)
    return seen
