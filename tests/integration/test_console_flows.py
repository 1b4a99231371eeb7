"""The seed's console flows in a real browser (Debian's Chromium, driven by Playwright) against the real fleet:
``signal-s3 api`` under uvicorn, a celery worker and beat, and moto S3 (IAM-enforcing moto for the wrong secret).

Screenshots of each step are written under .artifacts/screenshots/ for a person to look at after the run.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import start_api_process
from tests.support.browser import screenshot
from tests.support.fleet import event_counts, read_objects
from tests.support.s3_fixtures import s3_client
from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from workers.classify import HINTS
from workers.errors import ConfigError
from workers.events.blueprint import parse_blueprint

TOKEN = "flows-" + uuid.uuid4().hex
EXPECT_S = 60_000  # ms Playwright waits for a page to show what a step expects
SIGNATURE_HINT = (
    "The secret access key does not match the access key ID. Check it for a typo or stray spaces and paste it "
    "again; regenerate the key pair only if the secret is lost."
)


@pytest.fixture
def running(
    request: pytest.FixtureRequest,
    fleet: Any,
    tmp_path_factory: pytest.TempPathFactory,
    start_worker: Any,
    start_beat: Any,
) -> Iterator[str]:
    """The whole fleet with the console: API process, worker, beat; yields the console's address. Its processes read
    an integration afresh for every message, so a setting saved in the console applies to the next event sent."""
    fleet.env["SIGNAL_INTEGRATION_CACHE_TTL_S"] = "0"
    process, base_url = start_api_process(request, {**fleet.env, "SIGNAL_ADMIN_TOKEN": TOKEN}, tmp_path_factory)
    start_worker()
    start_beat()
    yield base_url
    process.stop(timeout=15)
    assert TOKEN not in process.log_text() and SECRET_ACCESS_KEY not in process.log_text()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in(page: Any, base_url: str) -> None:
    page.goto(base_url + "/")
    assert "/signin" in page.url
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base_url + "/integrations")


def send_events(base_url: str, write_key: str, calls: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{base_url}/v1/batch", json={"batch": calls}, auth=(write_key, ""), timeout=30)
    assert response.status_code == 200, response.text


def track_calls(n: int, run: str, name: str = "Order Completed") -> list[dict[str, Any]]:
    return [
        {"type": "track", "event": name, "messageId": f"{run}-{i}", "userId": f"user-{i}", "properties": {"i": i}}
        for i in range(n)
    ]


def test_quick_setup_from_the_library_to_a_delivered_test_event(running, page, page_errors, make_bucket, s3_admin):
    base_url, bucket = running, make_bucket()
    sign_in(page, base_url)
    screenshot(page, "quick-setup-1-integrations")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Integrations").click()
    page.get_by_role("navigation", name="Integrations").get_by_role("link", name="Integration Library").click()
    page.get_by_label("Category").select_option("Cloud Storage")  # submits itself
    page.wait_for_url(re.compile(r"category=Cloud\+Storage"))
    card = page.locator("#library li", has_text="Amazon S3")
    expect(card).to_contain_text("Writes batches of first-party events as objects into an S3 bucket")
    screenshot(page, "quick-setup-2-library")
    card.get_by_role("link", name="Install Amazon S3").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Install Amazon S3")

    page.get_by_label("Variant (required)", exact=True).select_option("default")
    page.get_by_label("Bucket (required)", exact=True).fill("Datafly_Events")
    page.get_by_label("Region (required)", exact=True).select_option("us-east-1")
    page.get_by_label("Access key ID (required)", exact=True).fill(ACCESS_KEY_ID)
    page.get_by_label("Secret access key (required)", exact=True).fill(SECRET_ACCESS_KEY)
    page.get_by_label("Prefix", exact=True).fill("events/")
    page.get_by_label("Server-side encryption", exact=True).select_option("AES256")
    page.get_by_role("button", name="Install Integration").click()
    bucket_error = page.locator("#field-config-bucket-error")
    expect(bucket_error).to_have_text(
        "Error: bucket may contain only lowercase letters, digits, dots (.) and hyphens (-)"
    )
    expect(page.get_by_label("Bucket (required)", exact=True)).to_have_value("Datafly_Events")
    expect(page.get_by_label("Secret access key (required)", exact=True)).to_have_value("")
    screenshot(page, "quick-setup-3-wrong-field")

    page.get_by_label("Bucket (required)", exact=True).fill(bucket)
    page.get_by_label("Access key ID (required)", exact=True).fill(ACCESS_KEY_ID)
    page.get_by_label("Secret access key (required)", exact=True).fill(SECRET_ACCESS_KEY)
    page.get_by_role("button", name="Install Integration").click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]{36}$"))
    expect(page.locator("#blueprint")).to_have_text("Forwards all events unchanged.")
    expect(page.get_by_role("status")).to_have_text("Amazon S3 installed with the default blueprint.")
    integration_url = page.url
    screenshot(page, "quick-setup-4-installed")

    page.get_by_role("link", name="Live Events").click()
    page.evaluate("window.signalNoReload = true")
    page.get_by_role("button", name="Send test event").click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_contain_text("Test event delivered", timeout=EXPECT_S)
    object_key = re.search(rf"s3://{bucket}/(\S+\.json\.gz)", outcome.inner_text()).group(1)
    test_row = page.locator("#live-events tbody tr").first
    expect(test_row).to_contain_text("Signal Test Event")
    expect(test_row.locator(".badge")).to_have_text("delivered")
    expect(test_row).to_contain_text(object_key)
    objects = read_objects(s3_admin, bucket)
    assert [e["event"] for e in objects[object_key]] == ["Signal Test Event"]
    screenshot(page, "quick-setup-5-test-event-delivered")

    # events from a website show up by themselves, without reloading the page
    page.evaluate("window.signalNoReload = true")
    write_key = httpx.get(f"{base_url}/v1/admin/sources/default", headers={"Authorization": f"Bearer {TOKEN}"}).json()[
        "write_key"
    ]
    run = uuid.uuid4().hex[:8]
    send_events(base_url, write_key, track_calls(5, run, "Checkout Started"))
    delivered_rows = page.locator("#live-events tbody tr", has_text="Checkout Started").locator(
        ".badge", has_text="delivered"
    )
    expect(delivered_rows).to_have_count(5, timeout=EXPECT_S)
    assert page.evaluate("window.signalNoReload") is True
    assert page.url == integration_url + "/live"
    counts = event_counts(read_objects(s3_admin, bucket))
    assert all(counts[f"{run}-{i}"] == 1 for i in range(5))
    screenshot(page, "quick-setup-6-live-events")
    assert page_errors == []


def test_a_wrong_secret_is_shown_fixed_in_settings_and_replayed_exactly_once(
    request, fleet, moto_iam, page, page_errors, tmp_path_factory, start_worker, start_beat, monkeypatch
):
    fleet.env["AWS_ENDPOINT_URL_S3"] = moto_iam.endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_iam.endpoint)
    process, base_url = start_api_process(request, {**fleet.env, "SIGNAL_ADMIN_TOKEN": TOKEN}, tmp_path_factory)
    start_worker()
    start_beat()
    admin = s3_client(moto_iam.endpoint, moto_iam.admin.access_key_id, moto_iam.admin.secret_access_key)
    prefix = f"console-{uuid.uuid4().hex[:8]}/"
    wrong_secret = base64.b64encode(os.urandom(30)).decode()
    sign_in(page, base_url)

    page.get_by_role("link", name="Sources").click()
    page.get_by_label("New source name").fill("Website")
    page.get_by_role("button", name="Create source").click()
    expect(page.get_by_role("status")).to_contain_text("Source Website created")
    write_key = page.locator(".source", has_text="Website").locator("code.key").inner_text()

    page.goto(base_url + "/integrations/library/amazon_s3/install")
    page.get_by_label("Source", exact=True).select_option(label="Website")

    def fill_connection() -> None:
        page.get_by_label("Bucket (required)", exact=True).fill(moto_iam.bucket)
        page.get_by_label("Region (required)", exact=True).select_option("us-east-1")
        page.get_by_label("Access key ID (required)", exact=True).fill(moto_iam.limited.access_key_id)
        page.get_by_label("Secret access key (required)", exact=True).fill(wrong_secret)
        page.get_by_label("Prefix", exact=True).fill(prefix)

    fill_connection()
    page.get_by_role("button", name="Install Integration").click()
    check = page.locator("#bucket-check tbody td")
    expect(check.nth(0)).to_have_text("SignatureDoesNotMatch")
    expect(check.nth(2)).to_have_text(SIGNATURE_HINT)
    screenshot(page, "wrong-secret-1-bucket-check")
    # what was typed stays, the access key ID included; only the secret is asked for again
    expect(page.get_by_label("Access key ID (required)", exact=True)).to_have_value(moto_iam.limited.access_key_id)
    expect(page.get_by_label("Bucket (required)", exact=True)).to_have_value(moto_iam.bucket)
    expect(page.get_by_label("Secret access key (required)", exact=True)).to_have_value("")
    expect(page.locator("#retype-secrets")).to_contain_text("type the secret access key again")
    page.get_by_label("Secret access key (required)", exact=True).fill(wrong_secret)
    page.get_by_label("Save without checking the bucket").check()
    page.get_by_role("button", name="Install Integration").click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]{36}$"))
    integration_url = page.url

    run = uuid.uuid4().hex[:8]
    calls = track_calls(40, run)
    send_events(base_url, write_key, calls[:25])
    send_events(base_url, write_key, calls[25:])
    last_error = page.locator("#last-error")  # the Status tab refreshes itself
    expect(last_error).to_contain_text("Last error: SignatureDoesNotMatch", timeout=EXPECT_S)
    expect(last_error).to_contain_text(SIGNATURE_HINT)
    expect(page.locator("#status-panel .stat", has_text="Held")).to_contain_text("40 events", timeout=EXPECT_S)
    screenshot(page, "wrong-secret-2-status")

    page.get_by_role("link", name="Live Events").click()
    page.get_by_role("button", name="Send test event").click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_contain_text("Test event failed: SignatureDoesNotMatch", timeout=EXPECT_S)
    expect(outcome).to_contain_text(SIGNATURE_HINT)
    failed = page.locator("#live-events tbody tr", has_text="Order Completed")
    expect(failed.first.locator(".badge")).to_have_text("failed")
    expect(failed.first).to_contain_text(f"SignatureDoesNotMatch {SIGNATURE_HINT}")
    screenshot(page, "wrong-secret-3-live-events")
    page.goto(base_url + "/integrations")
    expect(page.locator("#installed .badge.error")).to_have_text("SignatureDoesNotMatch")
    assert read_objects(admin, moto_iam.bucket, prefix) == {}

    page.goto(integration_url + "/settings")
    expect(page.get_by_label("Secret access key", exact=True)).to_have_attribute(
        "placeholder", "****" + wrong_secret[-4:]
    )
    page.get_by_label("Secret access key", exact=True).fill(moto_iam.limited.secret_access_key)
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")

    page.get_by_role("link", name="Dead letter").click()
    held = page.locator("#held-batches tbody tr")
    assert held.count() >= 2
    expect(held.first).to_contain_text("SignatureDoesNotMatch")
    screenshot(page, "wrong-secret-4-dead-letter")
    page.get_by_role("button", name=re.compile(r"^Replay all")).click()
    expect(page.locator("#replay-outcome")).to_contain_text(re.compile(r"\d+ batch(es)? delivered"), timeout=EXPECT_S)
    expect(page.locator("#replay-outcome")).to_contain_text("0 still failing")
    expect(page.get_by_text("Nothing is held.")).to_be_visible()
    screenshot(page, "wrong-secret-5-replayed")

    objects = read_objects(admin, moto_iam.bucket, prefix)
    counts = event_counts(objects)
    assert {f"{run}-{i}" for i in range(40)} <= set(counts)
    assert set(counts.values()) == {1} and len(counts) == 41  # the 40 events and the test event, once each
    page.goto(integration_url)
    expect(page.locator("#status-panel .stat", has_text="Delivered").locator(".big")).to_have_text("41")
    expect(page.locator("#last-error")).to_have_count(0)
    page.goto(base_url + "/integrations")
    expect(page.locator("#installed .badge.error")).to_have_count(0)
    assert page_errors == []
    process.stop(timeout=15)
    log = process.log_text()
    assert wrong_secret not in log and moto_iam.limited.secret_access_key not in log and TOKEN not in log
    assert HINTS["SignatureDoesNotMatch"] == SIGNATURE_HINT


def test_a_blueprint_set_at_install_and_changed_in_settings_decides_what_is_delivered(
    running, page, page_errors, make_bucket, s3_admin
):
    base_url, bucket = running, make_bucket()
    sign_in(page, base_url)
    page.goto(base_url + "/integrations/library/amazon_s3/install")
    section = page.locator("#blueprint-section")
    expect(section).not_to_have_attribute("open", "")  # folded: the default forwards all events
    page.get_by_label("Bucket (required)", exact=True).fill(bucket)
    page.get_by_label("Region (required)", exact=True).select_option("us-east-1")
    page.get_by_label("Access key ID (required)", exact=True).fill(ACCESS_KEY_ID)
    page.get_by_label("Secret access key (required)", exact=True).fill(SECRET_ACCESS_KEY)
    section.locator("summary").click()
    page.get_by_label("Required consent categories", exact=True).fill("analytics")
    page.get_by_label("Fields to hash", exact=True).fill("event_id, traits.email")
    page.get_by_role("button", name="Install Integration").click()

    with pytest.raises(ConfigError) as api_error:  # what the API's 422 says for the same blueprint
        parse_blueprint({"consent": {"require": ["analytics"]}, "hash_fields": ["event_id", "traits.email"]})
    [expected] = [e["message"] for e in api_error.value.errors if e["field"] == "blueprint.hash_fields"]
    expect(page.locator("#field-blueprint-hash-fields-error")).to_have_text("Error: " + expected)
    expect(page.locator("#blueprint-section")).to_have_attribute("open", "")
    expect(page.get_by_label("Fields to hash", exact=True)).to_have_value("event_id, traits.email")
    expect(page.get_by_label("Required consent categories", exact=True)).to_have_value("analytics")
    screenshot(page, "blueprint-1-error-next-to-its-field")

    page.get_by_label("Fields to hash", exact=True).fill("traits.email")
    page.get_by_label("Access key ID (required)", exact=True).fill(ACCESS_KEY_ID)
    page.get_by_label("Secret access key (required)", exact=True).fill(SECRET_ACCESS_KEY)
    page.get_by_role("button", name="Install Integration").click()
    page.wait_for_url(re.compile(r"/integrations/[0-9a-f-]{36}$"))
    integration_url = page.url
    rules = (
        "Delivers an event only when consent is granted for analytics; an event without consent information is "
        "not delivered. Replaces traits.email with a keyed hash (HMAC-SHA-256)."
    )
    expect(page.locator("#blueprint")).to_have_text(rules)
    expect(page.get_by_role("status")).to_have_text("Amazon S3 installed. Blueprint: " + rules)

    write_key = httpx.get(f"{base_url}/v1/admin/sources/default", headers={"Authorization": f"Bearer {TOKEN}"}).json()[
        "write_key"
    ]
    run = uuid.uuid4().hex[:8]
    send_events(
        base_url,
        write_key,
        [
            {
                "type": "track",
                "event": "Granted",
                "messageId": f"{run}-granted",
                "userId": "u1",
                "context": {"consent": {"categoryPreferences": {"analytics": True}}},
                "traits": {"email": "a@example.com"},
            },
            {
                "type": "track",
                "event": "Refused",
                "messageId": f"{run}-denied",
                "userId": "u2",
                "context": {"consent": {"analytics": False}},
            },
            {"type": "track", "event": "Unknown", "messageId": f"{run}-unknown", "userId": "u3"},
        ],
    )
    page.get_by_role("link", name="Live Events").click()
    rows = page.locator("#live-events tbody tr")
    expect(rows.filter(has_text="Granted").locator(".badge")).to_have_text("delivered", timeout=EXPECT_S)
    for name in ("Refused", "Unknown"):
        expect(rows.filter(has_text=name).locator(".badge")).to_have_text("filtered")
        expect(rows.filter(has_text=name)).to_contain_text("consent_denied removed by the blueprint, not delivered")
    page.evaluate("window.signalNoReload = true")
    page.get_by_role("button", name="Send test event").click()
    outcome = page.locator("#test-outcome")
    expect(outcome).to_contain_text("Test event removed by the blueprint: consent_denied", timeout=EXPECT_S)
    expect(outcome).to_contain_text("nothing was written to S3")
    expect(outcome).to_contain_text("Blueprint: Delivers an event only when consent is granted for analytics")
    screenshot(page, "blueprint-2-live-events-filtered")

    page.get_by_role("link", name="Status").click()
    removed = page.locator("#removed-events")
    expect(removed).to_contain_text("consent_denied")
    expect(removed.locator("td.num")).to_have_text("3")  # two events and the test event

    page.goto(integration_url + "/settings")
    expect(page.locator("#blueprint-summary")).to_have_text("Now: " + rules)
    page.locator("#blueprint-section summary").click()
    expect(page.get_by_label("Required consent categories", exact=True)).to_have_value("analytics")
    expect(page.get_by_label("Fields to hash", exact=True)).to_have_value("traits.email")
    page.get_by_label("Only these events", exact=True).fill("Checkout")
    page.get_by_label("All events except", exact=True).fill("Refused")
    page.get_by_role("button", name="Save settings").click()
    with pytest.raises(ConfigError) as api_error:
        parse_blueprint({"events": {"include": ["Checkout"], "exclude": ["Refused"]}})
    expect(page.locator("#field-blueprint-events-include-error")).to_have_text(
        "Error: " + api_error.value.errors[0]["message"]
    )
    screenshot(page, "blueprint-3-settings-error")
    page.get_by_label("Only these events", exact=True).fill("")
    page.get_by_label("Required consent categories", exact=True).fill("")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    after = (
        "Removes events whose type or event name is Refused. Replaces traits.email with a keyed hash (HMAC-SHA-256)."
    )
    expect(page.locator("#blueprint")).to_have_text(after)
    expect(page.locator("#blueprint-summary")).to_have_text("Now: " + after)

    send_events(
        base_url,
        write_key,
        [
            {"type": "track", "event": "Refused", "messageId": f"{run}-denied-2", "userId": "u2"},
            {"type": "track", "event": "Unknown", "messageId": f"{run}-unknown-2", "userId": "u3"},
        ],
    )
    page.get_by_role("link", name="Live Events").click()
    expect(rows.filter(has_text="Unknown").first.locator(".badge")).to_have_text("delivered", timeout=EXPECT_S)
    expect(rows.filter(has_text="Refused").first).to_contain_text("filtered_out")
    screenshot(page, "blueprint-4-settings-changed")
    counts = event_counts(read_objects(s3_admin, bucket))
    assert set(counts) == {f"{run}-granted", f"{run}-unknown-2"} and set(counts.values()) == {1}
    assert page_errors == []
