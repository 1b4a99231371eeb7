"""The console in a real browser (Debian's Chromium, driven by Playwright): every page at 1280x800 and at phone
width, read for labels, overflow and console errors, and screenshotted; the keyboard alone; text that looks like
markup stays text; a form on another origin changes nothing; copy buttons copy.

The console runs in this process (uvicorn in a thread) against the fleet's Redis and moto.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import (
    DESKTOP,
    OVERFLOW,
    PHONE,
    UNLABELLED,
    WIDE,
    XSS,
    PageErrors,
    expect,
    new_page,
    screenshot,
    sign_in_with_the_keyboard,
)
from tests.support.console import flush, ingest, install
from tests.support.fleet import make_events
from tests.support.processes import free_port
from tests.support.s3_fixtures import unique_bucket
from workers.integrations import registry, sources


@pytest.fixture
def populated(fleet: Any, make_bucket: Any) -> dict[str, str]:
    """A delivered integration, a held one with a text-like-markup event, and a second source."""
    website = sources.create(fleet.r, "Website")
    good = install(fleet, make_bucket(), name="Events lake", source_id=website.id)
    ingest(fleet, good, make_events(40))
    flush(fleet, good)
    ingest(fleet, good, make_events(6))
    held = install(fleet, unique_bucket(), name="Archive (wrong bucket)")
    ingest(
        fleet,
        held,
        [{"type": "track", "event": XSS, "anonymous_id": "visitor-1", "event_id": "xss-event"}, *make_events(8)],
    )
    flush(fleet, held)
    return {"good": good, "held": held, "website": website.id}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_every_page_is_labelled_fits_the_screen_runs_without_errors_and_is_screenshotted(
    browser, console_url, populated, viewport
):
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    requested: list[str] = []
    page.on("request", lambda req: requested.append(req.url))
    sign_in_with_the_keyboard(page, console_url)
    size = f"{viewport['width']}x{viewport['height']}"
    good, held = populated["good"], populated["held"]
    pages = {
        "integrations": "/integrations",
        "library": "/integrations/library?category=Cloud+Storage",
        "install": "/integrations/library/amazon_s3/install",
        "status": f"/integrations/{held}",
        "live-events": f"/integrations/{held}/live",
        "dead-letter": f"/integrations/{held}/dead-letter",
        "settings": f"/integrations/{good}/settings",
        "delete": f"/integrations/{good}/delete",
        "query": f"/integrations/{good}/query",
        "sources": "/sources",
        "fleet": "/fleet",
        "api": "/api",
        "delivered-status": f"/integrations/{good}",
        "delivered-live-events": f"/integrations/{good}/live",
        "objects": f"/integrations/{good}/objects",
        "find-event": f"/integrations/{held}/live/find?event_id=xss-event",
    }
    for name, path in pages.items():
        page.goto(console_url + path)
        expect(page.locator("h1")).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], name
        assert page.evaluate(OVERFLOW) <= 0, f"{name} is wider than the {size} screen: {page.evaluate(WIDE)}"
        screenshot(page, f"console-{name}-{size}")
    page.goto(console_url + "/integrations/library/amazon_s3/install")
    page.get_by_role("combobox", name="Server-side encryption").select_option("aws:kms")
    page.get_by_role("button", name="Install Integration").click()
    expect(page.locator("#error-summary")).to_be_focused()
    assert page.evaluate(OVERFLOW) <= 0
    screenshot(page, f"console-install-errors-{size}")
    page.context.clear_cookies()
    page.goto(console_url + "/signin")
    screenshot(page, f"console-signin-{size}")
    assert errors == []
    assert [u for u in requested if not u.startswith(console_url + "/")] == []  # nothing from anywhere else
    assert any(u.endswith("/static/console.js") for u in requested)
    page.context.close()


TABS = """nav => { const links = Array.from(nav.querySelectorAll('a'));
  return { rows: new Set(links.map(a => Math.round(a.getBoundingClientRect().top))).size,
           overflowX: getComputedStyle(nav).overflowX, scrollWidth: nav.scrollWidth, clientWidth: nav.clientWidth,
           current: links.findIndex(a => a.getAttribute('aria-current') === 'page') }; }"""
SHOWN = """el => { const r = el.getBoundingClientRect(), box = el.closest('nav').getBoundingClientRect();
  return r.left >= box.left - 1 && r.right <= box.right + 1 && r.right <= document.documentElement.clientWidth + 1; }"""
CODE = """() => Array.from(document.querySelectorAll('pre')).map(pre => {
  const before = pre.scrollLeft; pre.scrollLeft = pre.scrollWidth;
  const reached = pre.scrollLeft + pre.clientWidth >= pre.scrollWidth - 1; pre.scrollLeft = before;
  return { id: pre.id, wider: pre.scrollWidth > pre.clientWidth, overflowX: getComputedStyle(pre).overflowX,
           right: pre.getBoundingClientRect().right, reached }; })"""


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390x844", "1280x800"])
def test_tabs_stay_one_row_and_code_scrolls_inside_its_box_at_phone_width(browser, console_url, populated, viewport):
    size = f"{viewport['width']}x{viewport['height']}"
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    sign_in_with_the_keyboard(page, console_url)
    width = viewport["width"]
    for path in (f"/integrations/{populated['good']}/query", "/integrations/library"):
        page.goto(console_url + path)
        assert page.evaluate(OVERFLOW) <= 0, f"{path} is wider than the screen: {page.evaluate(WIDE)}"
        nav = page.locator("main nav.tabs")
        tabs = nav.evaluate(TABS)
        assert tabs["rows"] == 1, tabs  # one row, never wrapped
        if tabs["scrollWidth"] > tabs["clientWidth"]:
            assert tabs["overflowX"] in ("auto", "scroll"), tabs  # the row scrolls sideways
        links = nav.locator("a")
        assert links.nth(tabs["current"]).evaluate(SHOWN), f"the current tab of {path} is out of view"
        for i in range(links.count()):  # every tab can be scrolled into view and followed
            links.nth(i).scroll_into_view_if_needed()
            assert links.nth(i).evaluate(SHOWN), (path, i)
    page.goto(console_url + f"/integrations/{populated['good']}/query")
    blocks = page.evaluate(CODE)
    assert {b["id"] for b in blocks} >= {"ddl", "iam-policy"}
    for block in blocks:
        assert block["right"] <= width + 1, block  # the box fits the screen
        if block["wider"]:
            assert block["overflowX"] in ("auto", "scroll") and block["reached"], block  # its lines scroll inside it
    if viewport == PHONE:
        assert any(b["wider"] for b in blocks)  # the DDL's long lines do not fit a phone
    page.locator("#ddl").focus()  # the keyboard scrolls it too
    page.keyboard.press("End")
    screenshot(page, f"console-query-code-{size}")
    assert errors == []
    page.context.close()


def test_the_keyboard_alone_reaches_every_section_and_action(browser, console_url, populated, fleet):
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)

    def tab_to(name: str, limit: int = 40) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == name:
                return
        raise AssertionError(f"Tab never reached {name!r}")

    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Installed")  # past the sidebar, into the page
    page.goto(console_url + "/integrations")
    tab_to("Sources")
    page.keyboard.press("Enter")
    page.wait_for_url(console_url + "/sources")
    tab_to("Fleet")
    page.keyboard.press("Enter")
    page.wait_for_url(console_url + "/fleet")
    page.goto(console_url + f"/integrations/{populated['good']}/settings")
    tab_to("Disable integration", limit=80)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("is disabled")
    assert registry.get(fleet.r, populated["good"]).enabled is False
    # the focus is always visible
    tab_to("Enable integration", limit=80)
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    assert errors == []
    page.context.close()


def test_markup_sent_by_a_website_or_typed_as_a_name_is_shown_as_text(browser, console_url, fleet, populated):
    iid = install(fleet, unique_bucket(), name=f"Lake {XSS}", source_id=populated["website"])
    ingest(fleet, iid, [{"type": "track", "event": XSS, "anonymous_id": XSS, "event_id": "xss-2"}])
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)
    for path in (
        "/integrations",
        "/sources",
        f"/integrations/{iid}",
        f"/integrations/{iid}/live",
        f"/integrations/{populated['held']}/live",
    ):
        page.goto(console_url + path)
        assert page.locator("img").count() == 0, path
    expect(page.locator("#live-events tr", has_text="xss-event")).to_contain_text(XSS)
    page.goto(console_url + f"/integrations/{iid}/live")
    expect(page.locator("h1")).to_have_text(f"Lake {XSS}")
    # and after the rows refreshed themselves in place
    page.evaluate("document.querySelector('#live-events tbody').textContent = ''")
    expect(page.locator("#live-events tr", has_text="xss-2")).to_contain_text(XSS, timeout=15_000)
    assert page.locator("img").count() == 0
    assert errors == []  # no alert() dialog, no error
    page.context.close()


class _Evil(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/submit.js":
            body, kind = b"document.forms[0].submit();", "text/javascript"
        else:
            body = (
                f'<!doctype html><form method="post" action="{self.target}">'
                '<input name="csrf_token" value="guessed"></form><script src="/submit.js"></script>'
            ).encode()
            kind = "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def evil_site() -> Iterator[tuple[str, type[_Evil]]]:
    """A page on another origin (another port of 127.0.0.1: the same site, so SameSite lets cookies through)."""
    handler = type("Evil", (_Evil,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_a_form_posted_from_another_origin_changes_nothing(browser, console_url, populated, fleet, evil_site):
    evil_url, handler = evil_site
    good = populated["good"]
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)
    for action in (f"/integrations/{good}/disable", f"/integrations/{good}/delete", "/sources"):
        handler.target = console_url + action
        page.goto(evil_url + "/")
        page.wait_for_url(console_url + action)
        expect(page.locator("h1")).to_have_text("Refused")
        expect(page.locator("#message")).to_contain_text("nothing was changed")
    assert registry.get(fleet.r, good).enabled is True
    assert [s.name for s in sources.list_all(fleet.r)] == ["Website", "Default source"]


def test_copy_buttons_copy_the_write_key_and_the_policy(browser, console_url, populated, fleet):
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors, permissions=["clipboard-read", "clipboard-write"])
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + "/sources")
    source = sources.get(fleet.r, populated["website"])
    card = page.locator(f"#source-{source.id}")
    card.get_by_role("button", name="Copy write key").click()
    expect(card.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == source.write_key
    page.goto(console_url + f"/integrations/{populated['good']}/query")
    page.get_by_role("button", name="Copy policy").click()
    assert '"s3:PutObject"' in page.evaluate("navigator.clipboard.readText()")
    assert errors == []
    page.context.close()


def test_the_kms_key_is_asked_for_only_with_aws_kms(browser, console_url):
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + "/integrations/library/amazon_s3/install")
    kms = page.locator("#field-config-kms-key-id")
    expect(kms).to_be_hidden()
    page.get_by_role("combobox", name="Server-side encryption").select_option("aws:kms")
    expect(page.get_by_role("textbox", name="KMS key ID (required)")).to_be_visible()
    expect(page.get_by_role("combobox", name="S3 Bucket Key")).to_be_visible()
    page.get_by_role("combobox", name="Server-side encryption").select_option("AES256")
    expect(kms).to_be_hidden()
    expect(page.locator("#field-config-bucket-key-enabled")).to_be_hidden()
    expect(page.locator("details.advanced")).not_to_have_attribute("open", "")
    expect(page.get_by_role("textbox", name="Batch max events")).to_be_hidden()
    page.get_by_text("Advanced settings").click()
    expect(page.get_by_role("textbox", name="Batch max events")).to_be_visible()
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_example_key_follows_the_partition_fields_date_layout_and_variant(browser, console_url, fleet, viewport):
    size = f"{viewport['width']}x{viewport['height']}"
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + "/integrations/library/amazon_s3/install")
    page.get_by_text("Advanced settings").click()
    preview = page.locator("#key-preview")
    expect(preview).to_have_text(re.compile(r"^\d{4}/\d{2}/\d{2}/\d{2}/<batch-uuid>\.json\.gz$"))
    page.get_by_role("textbox", name="Prefix").fill("events/")
    page.get_by_role("textbox", name="Partition fields").fill("event, consent.marketing, properties.plan")
    page.get_by_role("combobox", name="Date layout").select_option("hive")
    page.get_by_role("combobox", name="Variant").select_option("parquet")
    expect(preview).to_have_text(
        re.compile(
            r"^events/event=order_completed/consent_marketing=true/properties_plan=pro/"
            r"dt=\d{4}-\d{2}-\d{2}/hr=\d{2}/<batch-uuid>\.parquet$"
        )
    )
    expect(page.locator("#key-preview-error")).to_be_hidden()
    page.get_by_role("textbox", name="Partition fields").fill("event, properties")
    expect(page.locator("#key-preview-error")).to_contain_text("'properties' is not a field")
    expect(preview).to_be_hidden()
    assert page.locator("#key-preview-error").bounding_box()["width"] <= viewport["width"]
    page.get_by_role("textbox", name="Partition fields").fill("type")
    expect(preview).to_have_text(re.compile(r"^events/type=track/"))
    screenshot(page, f"key-preview-{size}")
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_credentials_choice_asks_for_what_it_needs_and_proposes_an_external_id(
    browser, console_url, fleet, make_bucket, viewport
):
    size = f"{viewport['width']}x{viewport['height']}"
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + "/integrations/library/amazon_s3/install")
    credentials = page.get_by_role("combobox", name="Credentials")
    access_key = page.get_by_label("Access key ID (required)")
    role_arn = page.locator("#field-config-role-arn")
    expect(access_key).to_be_visible()  # the setup guide's way, by default
    expect(role_arn).to_be_hidden()
    credentials.select_option("assume_role")
    expect(page.get_by_role("textbox", name="Role ARN (required)")).to_be_visible()
    external_id = page.get_by_role("textbox", name="External ID (required)")
    expect(external_id).to_have_value(re.compile(r"^signal-[0-9a-f]{32}$"))  # proposed, kept unless changed
    expect(page.get_by_label("Access key ID (required with access_key)")).to_be_visible()  # optional for a role
    screenshot(page, f"console-install-role-{size}")
    assert page.evaluate(OVERFLOW) <= 0
    credentials.select_option("fleet")
    expect(access_key).to_be_hidden()
    expect(role_arn).to_be_hidden()

    # Saved without a bucket check (the role does not exist yet): the key fields it does not use are not sent.
    credentials.select_option("assume_role")
    page.get_by_role("textbox", name="Name").fill("By role")
    page.get_by_role("textbox", name="Bucket (required)").fill(make_bucket())
    page.get_by_role("combobox", name="Region (required)").select_option("us-east-1")
    role_arn.fill("arn:aws:iam::123456789012:role/signal-writer")
    proposed = external_id.input_value()
    page.get_by_label("Save without checking the bucket").check()
    page.get_by_role("button", name="Install Integration").click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]+$"))
    iid = page.url.rsplit("/", 1)[1]
    config = registry.get(fleet.r, iid).config
    assert (config.credentials, config.role_arn, config.external_id) == (
        "assume_role",
        "arn:aws:iam::123456789012:role/signal-writer",
        proposed,
    )
    assert config.access_key_id is None
    page.goto(console_url + f"/integrations/{iid}/query")
    trust = page.locator("#trust-policy")
    expect(trust).to_contain_text(proposed)
    expect(trust).to_contain_text("sts:AssumeRole")
    expect(page.locator("#principal-unknown")).to_contain_text("SIGNAL_FLEET_PRINCIPAL_ARN")  # no AWS identity here
    screenshot(page, f"console-query-role-{size}")
    assert page.evaluate(WIDE) == []
    assert errors == []
    page.context.close()


def test_a_signed_out_page_that_refreshes_itself_sends_the_person_to_sign_in(browser, console_url, populated, fleet):
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + f"/integrations/{populated['good']}/live")
    page.context.clear_cookies()
    page.wait_for_url(re.compile(r"/signin\?next=/integrations/[0-9a-f-]+/live$"), timeout=15_000)
    assert [e for e in errors if "401" not in e] == []  # the refresh that found the session gone
    page.context.close()
