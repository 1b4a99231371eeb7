"""The web console from a test: an HTTP client that signs in and posts forms like a browser, and a small HTML reader.

``ConsoleClient`` keeps cookies, sends the page's CSRF token with every form (unless told not to) and the browser's
``Origin`` header. ``Html`` parses a page with the standard library into elements that can be searched by tag and
attributes and read as text.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

import httpx

from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from workers.errors import PermanentError
from workers.integrations import manage
from workers.pipeline import ingest as ingesting
from workers.pipeline import upload
from workers.settings import get_settings

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
# Elements a browser shows on their own line (or cell): their text is separated from what is around it.
BLOCKS = {
    "address",
    "article",
    "aside",
    "br",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text a person reads: descendants' text with whitespace collapsed."""
        parts: list[str] = []

        def walk(node: Element | str) -> None:
            if isinstance(node, str):
                parts.append(node)
            elif node.tag not in ("script", "style"):
                gap = " " if node.tag in BLOCKS else ""
                parts.append(gap)
                for child in node.children:
                    walk(child)
                parts.append(gap)

        walk(self)
        return re.sub(r"\s+", " ", "".join(parts)).strip()

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Descendants with ``tag`` (any when None) whose attributes equal ``attrs`` (``class_`` for class, which
        matches one class among several; ``True`` matches any value)."""
        found: list[Element] = []
        wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}

        def matches(el: Element) -> bool:
            if tag is not None and el.tag != tag:
                return False
            for name, value in wanted.items():
                have = el.attrs.get(name)
                if have is None:
                    return False
                if value is True:
                    continue
                if name == "class" and value in have.split():
                    continue
                if have != value:
                    return False
            return True

        def walk(node: Element) -> None:
            for child in node.children:
                if isinstance(child, Element):
                    if matches(child):
                        found.append(child)
                    walk(child)

        walk(self)
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag or '*'}> with {attrs} in the page"
        return found[0]

    def by_id(self, element_id: str) -> Element:
        return self.find(id=element_id)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: (v if v is not None else "") for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: (v if v is not None else "") for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def row_of(table: Element, text: str) -> Element:
    rows = [tr for tr in table.find_all("tr") if text in tr.text]
    assert rows, f"no row with {text!r} in {table.text}"
    return rows[0]


def cells(row: Element) -> list[str]:
    return [td.text for td in row.find_all("td")]


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


class ConsoleClient:
    """One person's browser session with the console (cookies kept, redirects not followed unless asked)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=90, follow_redirects=False)
        self.csrf_token: str | None = None

    def close(self) -> None:
        self.http.close()

    def sign_in(self, token: str) -> httpx.Response:
        response = self.http.post(
            "/signin", data={"token": token, "next": "/integrations"}, headers={"Origin": self.base_url}
        )
        if response.status_code == 303:
            self.csrf_token = None
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def page(self, path: str) -> Element:
        """A signed-in page (200 expected), parsed; remembers the CSRF token of its forms."""
        response = self.http.get(path)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.headers} {response.text}"
        html = parse(response.text)
        tokens = html.find_all("input", name="csrf_token")
        if tokens:
            self.csrf_token = tokens[0].get("value")
        return html

    def csrf(self) -> str:
        if self.csrf_token is None:
            self.page("/sources")
        assert self.csrf_token
        return self.csrf_token

    def post(
        self,
        path: str,
        data: dict[str, str] | None = None,
        *,
        csrf: bool = True,
        follow: bool = False,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Submit a form as the console's own page would (Origin: the console, the CSRF token included)."""
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf())
        return self.http.post(
            path, data=form, follow_redirects=follow, headers={"Origin": self.base_url, **(headers or {})}
        )


# -- arranging state in this process, through the same plain functions the fleet uses --------------------------------


def install(
    fleet: Any,
    bucket: str,
    *,
    name: str = "Amazon S3",
    source_id: str | None = None,
    blueprint: dict[str, Any] | None = None,
    variant: str = "default",
    **config: Any,
) -> str:
    body: dict[str, Any] = {
        "name": name,
        "variant": variant,
        "verify": False,
        "config": {
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "prefix": "events/",
            **config,
        },
    }
    if source_id:
        body["source_id"] = source_id
    if blueprint is not None:
        body["blueprint"] = blueprint
    return manage.install_integration(fleet.r, body, settings=get_settings()).id


def ingest(fleet: Any, iid: str, events: list[dict[str, Any]]) -> None:
    ingesting.ingest(fleet.r, iid, events, message_id=str(uuid.uuid4()), settings=get_settings())


def flush(fleet: Any, iid: str) -> list[str]:
    """Seal and upload now, in this process; returns the object keys written (a failure is recorded, not raised)."""
    written = []
    for batch_id in manage.flush_now(fleet.r, iid, settings=get_settings()):
        try:
            written.append(upload.upload(fleet.r, iid, batch_id, settings=get_settings()).key)
        except PermanentError:
            pass
    return written
