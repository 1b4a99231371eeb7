"""Websites send events: the real browser SDKs (analytics-next, RudderStack JS v3, pinned from npm), in Chromium, on
a page of another origin (http://localhost:A) than the API (http://127.0.0.1:B under uvicorn), through the real
worker and beat into moto S3; each event is read back from the bucket in the canonical envelope. Nothing may be
requested from anywhere but loopback (the SDKs' CDNs included)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.support.api import Api
from tests.support.fleet import read_objects
from tests.support.processes import wait_until
from tests.support.website import Visit, Website, visit
from workers.websites import snippet

WAIT_S = 60


def landed(api: Api, s3: Any, integration_id: str, bucket: str, count: int) -> list[dict[str, Any]]:
    """The events in the bucket, once ``count`` of them were delivered."""
    wait_until(
        lambda: api.status(integration_id)["delivered_events"] >= count,
        WAIT_S,
        message=lambda: f"status: {api.status(integration_id)}",
    )
    return [e for events in read_objects(s3, bucket).values() for e in events]


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_envelope(
    event: dict[str, Any], *, source: dict[str, Any], integration_id: str, started: datetime, site: Website
) -> None:
    """What every event sent by a browser SDK must look like in the bucket."""
    ended = datetime.now(UTC)
    assert event["source_id"] == source["id"] and event["integration_id"] == integration_id
    assert event["anonymous_id"] and event["event_id"]
    for name in ("timestamp", "sent_at", "received_at"):
        assert started.timestamp() - 1 <= parse(event[name]).timestamp() <= ended.timestamp() + 1, (name, event)
    for internal in ("writeKey", "_metadata", "originalTimestamp", "messageId", "anonymousId", "userId", "sentAt"):
        assert internal not in event, (internal, event)
    context = event["context"]
    assert context["ip"] == "127.0.0.1"  # from the connection: the SDKs send none
    assert "HeadlessChrome" in context["userAgent"]
    assert context["page"]["url"].startswith(site.origin)


def posts(seen: Visit, api: Api) -> list[str]:
    """The events the page posted, in order (analytics.js' own metrics, POST /v1/m, left out)."""
    return [r for r in seen.requests if r.startswith("POST ") and r != f"POST {api.base_url}/v1/m"]


def by_type(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        out.setdefault(event["type"], []).append(event)
    return out


def test_analytics_next_delivers_page_identify_and_track_one_by_one_and_in_batches(
    api: Api,
    make_bucket: Callable[..., str],
    start_worker: Callable,
    start_beat: Callable,
    s3_admin: Any,
    browser: Any,
    website: Website,
) -> None:
    source = api.source("Shop", allowed_origins=[website.origin])
    bucket = make_bucket()
    integration_id = api.install(bucket, source_id=source["id"])["id"]
    start_worker()
    start_beat()
    started = datetime.now(UTC)
    script = (
        'analytics.identify("user-42", {plan: "pro", email: "ada@example.com"});\n'
        'analytics.track("Order Completed", {order_id: "o-1", revenue: 42.5});'
    )
    single = visit(
        browser,
        website.page(
            "single.html", script=script, snippet=snippet.analytics_next(source["write_key"], api_url=api.base_url)
        ),
    )
    events = landed(api, s3_admin, integration_id, bucket, 3)
    single.close()

    # one POST per call, to Segment's short paths, text/plain with Basic auth (so each was preflighted)
    assert sorted(posts(single, api)) == sorted(f"POST {api.base_url}/v1/{p}" for p in "pit"), single.requests
    assert single.external == [] and single.errors == []
    found = by_type(events)
    (page,) = found["page"]
    (identify,) = found["identify"]
    (track,) = found["track"]
    for event in (page, identify, track):
        check_envelope(event, source=source, integration_id=integration_id, started=started, site=website)
        assert event["event_id"].startswith("ajs-next-")
        assert event["context"]["library"]["name"] == "analytics.js"
    assert page["properties"]["url"] == f"{website.origin}/single.html"
    assert page["properties"]["title"] == "Signal test shop"
    assert identify["user_id"] == "user-42" and identify["traits"] == {"plan": "pro", "email": "ada@example.com"}
    assert track["event"] == "Order Completed" and track["properties"] == {"order_id": "o-1", "revenue": 42.5}
    assert track["user_id"] == "user-42" and track["anonymous_id"] == page["anonymous_id"]

    batching = {
        "integrations": {
            "Segment.io": {"deliveryStrategy": {"strategy": "batching", "config": {"size": 3, "timeout": 300}}}
        }
    }
    batched = visit(
        browser,
        website.page(
            "batched.html",
            script='analytics.track("Batched Order", {n: 1});\nanalytics.track("Batched Order", {n: 2});',
            snippet=snippet.analytics_next(source["write_key"], api_url=api.base_url, options=batching),
        ),
    )
    events = landed(api, s3_admin, integration_id, bucket, 6)
    batched.close()
    assert posts(batched, api) == [f"POST {api.base_url}/v1/b"]
    assert batched.external == [] and batched.errors == []
    orders = sorted((e for e in events if e.get("event") == "Batched Order"), key=lambda e: e["properties"]["n"])
    assert [e["properties"]["n"] for e in orders] == [1, 2]
    for event in orders:
        check_envelope(event, source=source, integration_id=integration_id, started=started, site=website)
    assert len({e["event_id"] for e in events}) == 6


def test_rudderstack_delivers_page_identify_and_track_by_xhr_and_by_beacon(
    api: Api,
    make_bucket: Callable[..., str],
    start_worker: Callable,
    start_beat: Callable,
    s3_admin: Any,
    browser: Any,
    website: Website,
) -> None:
    source = api.source("Shop")
    bucket = make_bucket()
    integration_id = api.install(bucket, source_id=source["id"])["id"]
    start_worker()
    start_beat()
    started = datetime.now(UTC)
    script = (
        'rudderanalytics.identify("user-7", {plan: "team"});\nrudderanalytics.track("Signed Up", {method: "email"});'
    )
    xhr = visit(
        browser,
        website.page(
            "xhr.html",
            script=script,
            snippet=snippet.rudderstack(source["write_key"], api_url=api.base_url, source_id=source["id"]),
        ),
    )
    events = landed(api, s3_admin, integration_id, bucket, 3)
    xhr.close()
    assert sorted(posts(xhr, api)) == sorted(f"POST {api.base_url}/v1/{p}" for p in ("page", "identify", "track"))
    assert xhr.external == [] and xhr.errors == []
    found = by_type(events)
    (page,) = found["page"]
    (identify,) = found["identify"]
    (track,) = found["track"]
    for event in (page, identify, track):
        check_envelope(event, source=source, integration_id=integration_id, started=started, site=website)
        assert event["channel"] == "web"
        assert event["context"]["library"]["name"] == "RudderLabs JavaScript SDK"
    assert identify["user_id"] == "user-7" and identify["context"]["traits"] == {"plan": "team"}
    assert track["event"] == "Signed Up" and track["properties"] == {"method": "email"}
    assert track["user_id"] == "user-7" and track["anonymous_id"] == page["anonymous_id"]

    beacon = visit(
        browser,
        website.page(
            "beacon.html",
            script='rudderanalytics.track("Beacon Sent", {n: 1});',
            snippet=snippet.rudderstack(
                source["write_key"],
                api_url=api.base_url,
                source_id=source["id"],
                options={"useBeacon": True, "beaconQueueOptions": {"flushQueueInterval": 200}},
            ),
        ),
    )
    events = landed(api, s3_admin, integration_id, bucket, 5)
    beacon.close()
    beacons = posts(beacon, api)
    assert beacons and set(beacons) == {f"POST {api.base_url}/beacon/v1/batch?writeKey={source['write_key']}"}
    assert beacon.external == [] and beacon.errors == []
    sent = [e for e in events if e["event_id"] not in {page["event_id"], identify["event_id"], track["event_id"]}]
    assert sorted(e["type"] for e in sent) == ["page", "track"]  # the snippet's page view, then the track
    for event in sent:
        check_envelope(event, source=source, integration_id=integration_id, started=started, site=website)
    assert [e["event"] for e in sent if e["type"] == "track"] == ["Beacon Sent"]


def test_a_site_the_source_does_not_allow_gets_no_cors_grant_and_nothing_is_stored(
    api: Api, make_bucket: Callable[..., str], start_worker: Callable, browser: Any, website: Website
) -> None:
    source = api.source("Shop", allowed_origins=["https://www.shop.example"])
    integration_id = api.install(make_bucket(), source_id=source["id"])["id"]
    start_worker()
    refused = visit(
        browser,
        website.page(
            "other.html",
            script='analytics.track("Should Not Land");',
            snippet=snippet.analytics_next(source["write_key"], api_url=api.base_url),
        ),
    )
    wait_until(
        lambda: api.source_view(source["id"])["refused"]["origin_not_allowed"]["requests"] >= 2,
        WAIT_S,
        message=lambda: f"source: {api.source_view(source['id'])}",
    )
    refused.close()
    assert any("CORS policy" in e and "Access-Control-Allow-Origin" in e for e in refused.errors), refused.errors
    assert refused.external == []
    assert api.status(integration_id)["ingested_events"] == 0


def test_a_page_reads_retry_after_when_its_source_is_over_the_limit(api: Api, browser: Any, website: Website) -> None:
    source = api.source("Shop", rate_limit_eps=1)  # a burst of 2 events
    tab = visit(browser, website.page("limit.html", snippet=""))
    answers = tab.page.evaluate(
        """async ([url, key]) => {
        const out = [];
        for (let n = 0; n < 4; n++) {
            const response = await fetch(url, {method: "POST", headers: {"Content-Type": "text/plain"},
                body: JSON.stringify({writeKey: key, event: "Clicked", anonymousId: "a-1"})});
            out.push([response.status, response.headers.get("Retry-After"), (await response.json()).error || null]);
        }
        return out;
    }""",
        [f"{api.base_url}/v1/t", source["write_key"]],
    )
    tab.close()
    assert answers[:2] == [[200, None, None], [200, None, None]]
    assert answers[2:] == [[429, "1", "rate_limited"], [429, "1", "rate_limited"]]
