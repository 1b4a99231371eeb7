"""The account of every event through the admin API of a real `signal-s3 api` process, on redis-server and moto:
the overview's funnel adds up over a settled window, the ledger's sums are the overview's, and any event can be
found where it is (delivered with its object and line, held, filtered, rejected, buffered), or is reported not found
with what was searched. A test event is followed however busy its integration."""

from __future__ import annotations

import gzip
import threading
from typing import Any

from tests.support.console import flush, ingest
from tests.support.console import install as install_integration
from tests.support.fleet import make_events
from tests.support.s3_fixtures import unique_bucket
from workers import clock
from workers.integrations import registry
from workers.pipeline import replay
from workers.settings import get_settings


def install(fleet: Any, bucket: str) -> str:
    """An integration whose blueprint delivers only events with analytics consent."""
    return install_integration(fleet, bucket, name="Account", blueprint={"consent": {"require": ["analytics"]}})


def consented(events: list[dict[str, Any]], ok: bool) -> list[dict[str, Any]]:
    for e in events:
        e.setdefault("context", {})["consent"] = {"categoryPreferences": {"analytics": ok}}
    return events


def totals(api: Any, iid: str) -> dict[str, Any]:
    answer = api.admin.get(f"/v1/admin/integrations/{iid}/overview", params={"hours": 3})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_funnel_adds_up_and_the_ledger_matches_it(fleet, make_bucket, start_api):
    bucket = make_bucket()
    iid = install(fleet, bucket)
    delivered = consented(make_events(40, run="ok"), True)
    filtered = consented(make_events(7, run="no"), False)
    rejected = [{"type": "track", "event_id": "bad-1"}, {"type": "nope", "event_id": "bad-2"}]  # no ids / bad type
    ingest(fleet, iid, delivered + filtered + rejected)
    assert len(flush(fleet, iid)) == 1
    ingest(fleet, iid, consented(make_events(12, run="more"), True))
    assert len(flush(fleet, iid)) == 1
    good_config = registry.get(fleet.r, iid).config
    registry.update(fleet.r, iid, config=good_config.model_copy(update={"bucket": unique_bucket()}))
    held = consented(make_events(5, run="held"), True)
    ingest(fleet, iid, held)
    assert flush(fleet, iid) == []  # NoSuchBucket: held
    waiting = consented(make_events(3, run="wait"), True)
    ingest(fleet, iid, waiting)  # buffered

    api = start_api()
    ov = totals(api, iid)
    t = ov["totals"]
    assert t["received"] == 40 + 7 + 2 + 12 + 5 + 3
    assert (t["delivered"], t["held"], ov["buffered"]) == (52, 5, 3)
    assert t["filtered"] == {"consent_denied": 7} and sum(t["rejected"].values()) == 2
    assert (
        t["received"]
        == sum(t["filtered"].values()) + sum(t["rejected"].values()) + t["delivered"] + t["held"] + ov["buffered"]
    )
    assert t["objects"] == 2 and t["latency_p50_s"] is not None and t["latency_p95_s"] >= t["latency_p50_s"]
    assert sum(h["received"] for h in ov["hours"]) == t["received"] and len(ov["hours"]) == 3

    ledger = api.admin.get(f"/v1/admin/integrations/{iid}/objects").json()
    assert len(ledger["objects"]) == 2 and ledger["next_cursor"] is None
    assert sum(o["events"] for o in ledger["objects"]) == t["delivered"]
    assert sum(o["bytes"] for o in ledger["objects"]) == t["bytes"]
    newest = ledger["objects"][0]
    head = fleet.s3.head_object(Bucket=bucket, Key=newest["key"])
    assert head["ContentLength"] == newest["bytes"] and head["ETag"].strip('"') == newest["etag"]
    assert newest["copy_command"] == f"aws s3 cp s3://{bucket}/{newest['key']} ."
    assert newest["attempts"] == 1 and newest["first_event_at"] <= newest["last_event_at"] <= newest["written_at"]
    page = api.admin.get(f"/v1/admin/integrations/{iid}/objects", params={"limit": 1}).json()
    assert [o["key"] for o in page["objects"]] == [newest["key"]] and page["next_cursor"]
    rest = api.admin.get(f"/v1/admin/integrations/{iid}/objects", params={"limit": 1, "cursor": page["next_cursor"]})
    assert [o["key"] for o in rest.json()["objects"]] == [ledger["objects"][1]["key"]]
    bad = api.admin.get(f"/v1/admin/integrations/{iid}/objects", params={"since": "yesterday"})
    assert bad.status_code == 422 and "since must be an ISO 8601 time" in bad.text

    # a replay after the fix: the held events move to delivered, and the funnel still adds up
    registry.update(fleet.r, iid, config=good_config)
    report = replay.replay(fleet.r, iid, settings=get_settings())
    assert len(report.delivered) == 1
    after = totals(api, iid)["totals"]
    assert (after["delivered"], after["held"], after["objects"]) == (57, 0, 3)
    assert after["received"] == t["received"]

    fleet_view = api.admin.get("/v1/admin/overview", params={"hours": 3}).json()
    assert fleet_view["totals"]["delivered"] >= 57 and fleet_view["integrations"] >= 1
    assert api.admin.get(f"/v1/admin/integrations/{iid}/overview", params={"hours": 169}).status_code == 422


def test_any_event_is_found_where_it_is(fleet, make_bucket, start_api):
    bucket = make_bucket()
    iid = install(fleet, bucket)
    early = consented(make_events(150, run="early"), True)  # more than the recent records keep
    ingest(fleet, iid, early)
    flush(fleet, iid)
    ingest(fleet, iid, consented(make_events(120, run="late"), True))  # the early ones leave the recent records
    flush(fleet, iid)
    ingest(fleet, iid, consented(make_events(1, run="nope"), False) + [{"type": "track", "event_id": "no-name"}])
    good = registry.get(fleet.r, iid).config
    registry.update(fleet.r, iid, config=good.model_copy(update={"bucket": unique_bucket()}))
    ingest(fleet, iid, consented(make_events(4, run="held"), True))
    flush(fleet, iid)
    registry.update(fleet.r, iid, config=good)
    ingest(fleet, iid, consented(make_events(2, run="waiting"), True))

    api = start_api()

    def find(event_id: str, **params: str) -> Any:
        return api.admin.get(f"/v1/admin/integrations/{iid}/events/{event_id}", params=params)

    recent = find("late-119").json()
    assert recent["state"] == "delivered" and recent["object_key"].startswith("events/")
    assert recent["line_number"] == 120 and '"event_id":"late-119"' in recent["line"]

    assert find("early-3").status_code == 404  # not recent, not in the store: needs the time to search objects
    gone = find("early-3").json()
    assert gone["error"] == "not_found" and "at=" in gone["message"] and gone["searched"]["hours"] is None
    delivered = find("early-3", at=_now_iso()).json()  # about when it was sent: the objects of that hour are read
    assert delivered["state"] == "delivered" and delivered["line_number"] == 4
    body = gzip.decompress(fleet.s3.get_object(Bucket=bucket, Key=delivered["object_key"])["Body"].read())
    assert body.splitlines()[3].decode() == delivered["line"]

    held = find("held-2").json()
    assert held["state"] == "held" and held["code"] == "NoSuchBucket" and held["hint"] and held["batch_id"]
    assert find("nope-0").json()["state"] == "filtered" and find("nope-0").json()["reason"] == "consent_denied"
    rejected = find("no-name").json()
    assert rejected["state"] == "rejected" and rejected["reason"]
    waiting = find("waiting-1").json()
    assert waiting["state"] == "buffered" and '"event_id":"waiting-1"' in waiting["line"]
    missing = find("never-sent", at=_now_iso())
    assert missing.status_code == 404 and missing.json()["searched"]["objects_read"] >= 2


def _now_iso() -> str:
    return clock.iso(clock.now())


def test_a_test_event_is_followed_however_busy_its_integration(fleet, make_bucket, start_api, start_worker, start_beat):
    iid = install_integration(fleet, make_bucket())
    start_worker()
    start_beat()
    api = start_api()
    stop = threading.Event()

    def flood() -> None:
        n = 0
        while not stop.is_set():
            fleet.sender.ingest(iid, make_events(200, start=n, run="busy"))
            n += 200
            stop.wait(0.2)  # ~1,000 events a second: the recent records roll over many times a second

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    try:
        answer = api.admin.post(f"/v1/admin/integrations/{iid}/test-event", params={"timeout_s": 60}, timeout=90)
    finally:
        stop.set()
        flooding.join(timeout=30)
    assert answer.status_code == 200, answer.text
    test = answer.json()
    assert test["state"] == "delivered" and test["object_key"]
    live = api.admin.get(f"/v1/admin/integrations/{iid}/live-events", params={"limit": 100}).json()
    assert test["event_id"] not in {e["event_id"] for e in live["events"]}  # the busy list moved on
    assert live["pinned"]["event_id"] == test["event_id"] and live["pinned"]["state"] == "delivered"
