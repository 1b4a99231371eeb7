"""The operator's view in a real browser (Chromium driven by Playwright) at 1280x800 and 390x844: the overview's charts
say what the API says, the Objects tab lists the ledger and copies its commands, Live Events finds delivered, held and
filtered events, filters and pauses, shows the pinned test event, and shows an event whose name and properties hold
markup as text. Screenshots of the overview and the inspector go to docs/."""

from __future__ import annotations

import re
import shutil
import uuid
from typing import Any

import pytest

from tests.support.browser import (
    DESKTOP,
    OVERFLOW,
    PHONE,
    WIDE,
    XSS,
    PageErrors,
    expect,
    new_page,
    screenshot,
    sign_in_with_the_keyboard,
)
from tests.support.console import flush, ingest
from tests.support.console import install as install_integration
from tests.support.fleet import make_events
from tests.support.processes import REPO_ROOT
from tests.support.s3_fixtures import unique_bucket
from workers.integrations import overview, registry

DOCS = REPO_ROOT / "docs"


def install(fleet: Any, bucket: str, name: str) -> str:
    return install_integration(
        fleet, bucket, name=name, blueprint={"consent": {"require": ["analytics"], "missing": "allow"}}
    )


@pytest.fixture
def account(fleet: Any, make_bucket: Any) -> dict[str, str]:
    """An integration with every fate: delivered (two objects), held, filtered, rejected, buffered, and an event
    whose name and properties hold markup."""
    iid = install(fleet, make_bucket(), "Web events")
    ingest(fleet, iid, make_events(60, run="first"))
    flush(fleet, iid)
    marked = {
        "event_id": "markup-1",
        "type": "track",
        "event": XSS,
        "anonymous_id": "visitor-1",
        "properties": {"note": "<script>alert('x')</script>", "html": "<b>bold</b> & <i>more</i>"},
    }
    denied = {
        "event_id": "denied-1",
        "type": "track",
        "event": "Ad Click",
        "anonymous_id": "visitor-2",
        "context": {"consent": {"analytics": False}},
    }
    ingest(fleet, iid, [*make_events(20, run="second"), marked, denied, {"type": "track", "event_id": "no-id"}])
    flush(fleet, iid)
    good = registry.get(fleet.r, iid).config
    registry.update(fleet.r, iid, config=good.model_copy(update={"bucket": unique_bucket()}))
    ingest(fleet, iid, make_events(4, run="held"))
    flush(fleet, iid)
    registry.update(fleet.r, iid, config=good)
    ingest(fleet, iid, make_events(3, run="waiting"))
    return {"iid": iid}


def column_title(page: Any, hour: str) -> str:
    return page.locator(f'#overview-bars g.column[data-hour="{hour}"] > title').text_content()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_overview_charts_show_the_apis_numbers(browser, console_url, fleet, account, viewport):
    size = f"{viewport['width']}x{viewport['height']}"
    iid = account["iid"]
    api = overview.integration_overview(fleet.r, iid, hours=24)
    now = next(h for h in reversed(api["hours"]) if h["received"])
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + f"/integrations/{iid}")
    bars = page.locator("#overview-bars svg")
    expect(bars).to_be_visible()
    title = column_title(page, now["hour"])
    for number in (now["received"], now["delivered"], now["held"], now["objects"]):
        assert f"{number:,}" in title, title
    assert f"{now['received']:,} received, {now['delivered']:,} delivered in {now['objects']:,} objects" in title
    assert page.locator(f'#overview-bars g.column[data-hour="{now["hour"]}"] rect.bar').count() == 4
    stats = page.locator("#overview .stats")
    expect(stats).to_contain_text(f"Received{api['totals']['received']}")
    expect(stats).to_contain_text(f"Buffered now{api['buffered']}")
    page.get_by_text("The numbers, hour by hour").click()
    row = page.locator(f'#overview-table tr[data-hour="{now["hour"]}"]')
    cells = [c.strip() for c in row.locator("td").all_text_contents()]
    assert cells[1:5] == [
        str(now["received"]),
        str(now["delivered"]),
        str(now["held"]),
        str(sum(now["filtered"].values())),
    ]
    expect(page.locator("#overview-latency polyline.p95")).to_have_count(1)
    assert page.evaluate(OVERFLOW) <= 0, page.evaluate(WIDE)
    page.locator("#overview").scroll_into_view_if_needed()
    shot = screenshot(page, f"console-overview-{size}")
    if viewport is DESKTOP:
        shutil.copy(shot, DOCS / "console-overview.png")
    page.goto(console_url + "/fleet")
    expect(page.locator("#overview-bars svg")).to_be_visible()
    fleet_now = overview.fleet_overview(fleet.r, hours=24, buffered=0, held=0)
    assert (
        f"{fleet_now['totals']['received']:,}" in page.locator("#overview .stats").text_content().replace("\u202f", ",")
        or str(fleet_now["totals"]["received"]) in page.locator("#overview .stats").text_content()
    )
    assert errors == []
    page.context.close()


def test_objects_lists_the_ledger_and_copies_its_commands(browser, console_url, fleet, account):
    iid = account["iid"]
    ledger = overview.objects(fleet.r, iid)
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors, permissions=["clipboard-read", "clipboard-write"])
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + f"/integrations/{iid}")
    page.get_by_role("link", name="Objects").click()
    rows = page.locator("#objects tbody tr")
    expect(rows).to_have_count(len(ledger["objects"]))
    assert [k.strip() for k in page.locator("#objects tbody tr code.key").all_text_contents()] == [
        o["key"] for o in ledger["objects"]
    ]
    rows.first.get_by_role("button", name="Copy aws s3 cp").click()
    assert page.evaluate("navigator.clipboard.readText()") == ledger["objects"][0]["copy_command"]
    screenshot(page, "console-objects-1280x800")
    assert errors == []
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_live_events_finds_delivered_held_and_filtered_events_and_shows_markup_as_text(
    browser, console_url, fleet, account, viewport
):
    size = f"{viewport['width']}x{viewport['height']}"
    iid = account["iid"]
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    sign_in_with_the_keyboard(page, console_url)

    def find(event_id: str) -> Any:
        page.goto(console_url + f"/integrations/{iid}/live")
        page.get_by_label("Find an event by ID").fill(event_id)
        page.get_by_role("button", name="Find", exact=True).click()
        page.wait_for_url(re.compile(r"/live/find\?"))
        return page.locator("#found-event")

    delivered = find("first-7")
    expect(delivered.locator(".badge")).to_have_text("delivered")
    expect(delivered).to_contain_text("line 8")
    held = find("held-1")
    expect(held.locator(".badge")).to_have_text("held")
    expect(held).to_contain_text("NoSuchBucket")
    filtered = find("denied-1")
    expect(filtered.locator(".badge")).to_have_text("filtered")
    expect(filtered).to_contain_text("consent_denied")
    rejected = find("no-id")
    expect(rejected.locator(".badge")).to_have_text("rejected")

    # select a row: the event as stored, its markup shown as text and never run
    page.goto(console_url + f"/integrations/{iid}/live")
    page.locator('tr[data-event-id="markup-1"] a').click()
    stored = page.locator("#found-line")
    expect(stored).to_contain_text("<script>alert('x')</script>")
    expect(stored).to_contain_text(XSS)
    assert page.locator("#found-event script, #found-event img").count() == 0
    assert page.evaluate(OVERFLOW) <= 0, page.evaluate(WIDE)
    shot = screenshot(page, f"console-event-{size}")
    if viewport is DESKTOP:
        shutil.copy(shot, DOCS / "console-event.png")

    missing = page.goto(console_url + f"/integrations/{iid}/live/find?event_id=never-sent")
    assert missing is not None and missing.ok
    expect(page.locator("#not-found")).to_contain_text("Give the time it was sent")
    assert errors == [], errors
    page.context.close()


def test_live_events_filters_pauses_and_pins_the_test_event(browser, console_url, fleet, account):
    iid = account["iid"]
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + f"/integrations/{iid}/live")
    page.get_by_label("State").select_option("filtered")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"state=filtered"))
    assert {s.strip() for s in page.locator("#live-rows .badge").all_text_contents()} == {"filtered"}
    expect(page.locator('#live-rows tr[data-event-id="denied-1"]')).to_have_count(1)
    page.get_by_label("Event name contains").fill("no such name")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#live-rows")).to_contain_text("No recent event matches these filters.")
    pause = page.get_by_role("button", name="Pause")
    pause.click()
    expect(page.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    assert page.locator("#live-rows").get_attribute("data-paused") == "true"

    test_id = f"test-{uuid.uuid4()}"
    ingest(fleet, iid, [{"event_id": test_id, "type": "track", "event": "Signal Test Event", "anonymous_id": "t"}])
    ingest(fleet, iid, make_events(120, run="after"))  # the test event leaves the recent records
    page.goto(console_url + f"/integrations/{iid}/live")
    pinned = page.locator("#pinned-event")
    expect(pinned).to_have_attribute("data-event-id", test_id)
    expect(pinned.locator(".badge.pin")).to_have_text("test event")
    expect(pinned.locator(".badge.state-buffered")).to_be_visible()
    flush(fleet, iid)  # delivered: no longer on top
    page.goto(console_url + f"/integrations/{iid}/live")
    expect(page.locator("#pinned-event")).to_have_count(0)
    assert errors == []
    page.context.close()


def test_a_failed_replay_keeps_the_first_failure_and_held_events_are_never_buffered(
    browser, console_url, fleet, account
):
    iid = account["iid"]
    errors = PageErrors()
    page = new_page(browser, DESKTOP, errors)
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + f"/integrations/{iid}")
    panel = page.locator("#status-panel")
    expect(panel.locator("section.stat").filter(has_text="Buffered")).to_contain_text("Buffered3")
    expect(panel.locator("section.stat").filter(has_text="Held")).to_contain_text("Held1batch · 4 events")

    registry.update(
        fleet.r, iid, config=registry.get(fleet.r, iid).config.model_copy(update={"bucket": unique_bucket()})
    )
    page.goto(console_url + f"/integrations/{iid}/dead-letter")
    first = page.locator("#held-batches td[data-label='First failure'] time").get_attribute("datetime")
    last = page.locator("#held-batches td[data-label='Last failure'] time").get_attribute("datetime")
    page.wait_for_timeout(1100)  # a replay a second later: its failure has another time
    page.get_by_role("button", name="Replay all (1)").click()
    page.wait_for_url(re.compile(r"/dead-letter$"))
    expect(page.locator(".flash, .notice").first).to_contain_text("NoSuchBucket")
    cells = page.locator("#held-batches tbody tr").first
    assert cells.locator("td[data-label='First failure'] time").get_attribute("datetime") == first
    assert cells.locator("td[data-label='Last failure'] time").get_attribute("datetime") > last
    page.goto(console_url + f"/integrations/{iid}")
    expect(panel.locator("section.stat").filter(has_text="Buffered")).to_contain_text("Buffered3")
    assert errors == []
    page.context.close()
