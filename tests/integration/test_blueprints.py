"""Blueprints and partition_time end to end on real processes: events in through signal.ingest, objects out of the
worker and beat into moto_server, read back. The bucket must hold exactly the events the blueprint lets through, as
the blueprint changed them, in the variant's format, at the partition the config asks for; removed events are
counted per reason in status, metrics and Live Events."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fleet import read_objects
from tests.support.processes import REPO_ROOT, venv_command, wait_until
from workers import clock
from workers.integrations import registry, status
from workers.observe import metrics


def run_id() -> str:
    return uuid.uuid4().hex[:8]


def track(event_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "track",
        "event": "Order Completed",
        "anonymous_id": "anon-1",
        "user_id": "user-1",
        **fields,
    }


def delivered(fleet: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """Every delivered event by id (each must be in exactly one object), with its object key under ``_key``."""
    out: dict[str, dict[str, Any]] = {}
    for key, events in read_objects(fleet.s3, bucket).items():
        for e in events:
            assert e["event_id"] not in out, f"{e['event_id']} delivered twice"
            out[e["event_id"]] = {**e, "_key": key}
    return out


def wait_settled(fleet: Any, iid: str, *, delivered_events: int, removed: int) -> dict[str, Any]:
    """Wait until the integration delivered and removed that many events and nothing is buffered; its status."""

    def settled() -> bool:
        st = status.integration_status(fleet.r, iid)
        return (
            st["delivered_events"] == delivered_events
            and sum(st["removed_events"].values()) == removed
            and st["buffered_events"] == 0
        )

    wait_until(settled, 60, message=lambda: str(status.integration_status(fleet.r, iid)))
    return status.integration_status(fleet.r, iid)


def scraped(fleet: Any, iid: str) -> dict[tuple[str, str | None], float]:
    text = metrics.render(fleet.r)[0].decode()
    return {
        (s.name, s.labels.get("reason")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.labels.get("integration_id") == iid
    }


# -- consent ----------------------------------------------------------------------------------------------------------


def test_consent_delivers_only_granted_events_and_counts_the_others_once(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket, blueprint={"consent": {"require": ["analytics", "marketing"]}})
    start_worker()
    start_beat()
    run = run_id()
    granted = [
        track(f"{run}-seed", context={"consent": {"analytics": True, "marketing": "granted"}}),
        track(f"{run}-segment", context={"consent": {"categoryPreferences": {"analytics": True, "marketing": True}}}),
        track(
            f"{run}-mixed-shapes",
            context={"consent": {"analytics": "GRANTED", "categoryPreferences": {"marketing": True}}},
        ),
    ]
    denied = [
        track(f"{run}-seed-denied", context={"consent": {"analytics": True, "marketing": False}}),
        track(
            f"{run}-segment-denied",
            context={"consent": {"categoryPreferences": {"analytics": True, "marketing": False}}},
        ),
        track(f"{run}-one-missing", context={"consent": {"analytics": True}}),
        track(f"{run}-no-consent"),
        track(
            f"{run}-denial-wins",
            context={"consent": {"analytics": True, "marketing": True, "categoryPreferences": {"marketing": "denied"}}},
        ),
    ]
    mixed = [denied[0], granted[0], denied[1], denied[2], granted[1], denied[3], granted[2], denied[4]]
    task_id = fleet.sender.ingest(iid, mixed)
    fleet.sender.ingest(iid, mixed, task_id=task_id)  # a redelivered message counts nothing twice
    st = wait_settled(fleet, iid, delivered_events=len(granted), removed=len(denied))

    got = delivered(fleet, bucket)
    assert set(got) == {e["event_id"] for e in granted}
    for e in granted:
        assert got[e["event_id"]]["context"] == e["context"]  # delivered unchanged
    assert st["removed_events"] == {"consent_denied": len(denied)}
    assert st["rejected_events"] == {} and st["ingested_events"] == len(granted)
    live = {v["event_id"]: v for v in status.live_events(fleet.r, iid)}
    assert {live[e["event_id"]]["state"] for e in granted} == {"delivered"}
    for e in denied:
        assert (live[e["event_id"]]["state"], live[e["event_id"]]["reason"]) == ("filtered", "consent_denied")
    assert scraped(fleet, iid)[("signal_events_removed_total", "consent_denied")] == len(denied)


def test_consent_missing_allow_delivers_events_without_consent_information(
    fleet, make_bucket, start_worker, start_beat
):
    bucket = make_bucket()
    iid = fleet.install(bucket, blueprint={"consent": {"require": ["analytics"], "missing": "allow"}})
    start_worker()
    start_beat()
    run = run_id()
    events = [
        track(f"{run}-none"),
        track(f"{run}-null", context={"consent": {"analytics": None}}),
        track(f"{run}-other", context={"consent": {"ads": False}}),
        track(f"{run}-granted", context={"consent": {"categoryPreferences": {"analytics": True}}}),
        track(f"{run}-denied", context={"consent": {"analytics": False}}),
        track(f"{run}-segment-denied", context={"consent": {"categoryPreferences": {"analytics": "no"}}}),
    ]
    fleet.sender.ingest(iid, events)
    st = wait_settled(fleet, iid, delivered_events=4, removed=2)
    assert set(delivered(fleet, bucket)) == {f"{run}-{n}" for n in ("none", "null", "other", "granted")}
    assert st["removed_events"] == {"consent_denied": 2}


# -- events include / exclude -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rule, kept",
    [
        ({"include": ["page", "Order Completed"]}, {"page", "order"}),
        ({"exclude": ["identify", "Order Completed"]}, {"page", "signup", "lowercase"}),
    ],
)
def test_events_include_and_exclude(fleet, make_bucket, start_worker, start_beat, rule, kept):
    bucket = make_bucket()
    iid = fleet.install(bucket, blueprint={"events": rule})
    start_worker()
    start_beat()
    run = run_id()
    events = {
        "page": {"event_id": f"{run}-page", "type": "page", "name": "Home", "anonymous_id": "a"},
        "order": track(f"{run}-order"),
        "signup": track(f"{run}-signup", event="Signed Up"),
        "identify": {"event_id": f"{run}-identify", "type": "identify", "user_id": "u", "traits": {"plan": "pro"}},
        "lowercase": track(f"{run}-lowercase", event="order completed"),  # names match exactly
    }
    fleet.sender.ingest(iid, list(events.values()))
    st = wait_settled(fleet, iid, delivered_events=len(kept), removed=len(events) - len(kept))
    assert set(delivered(fleet, bucket)) == {events[name]["event_id"] for name in kept}
    assert st["removed_events"] == {"filtered_out": len(events) - len(kept)}
    live = {v["event_id"]: v for v in status.live_events(fleet.r, iid)}
    for name in set(events) - kept:
        assert (live[events[name]["event_id"]]["state"], live[events[name]["event_id"]]["reason"]) == (
            "filtered",
            "filtered_out",
        )


# -- drop_fields / hash_fields ----------------------------------------------------------------------------------------


def test_drop_and_hash_fields_change_what_is_stored(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(
        bucket,
        blueprint={
            "drop_fields": ["context.ip", "properties.card"],
            "hash_fields": ["user_id", "traits.email", "properties.address"],
        },
    )
    start_worker()
    start_beat()
    key = bytes.fromhex(registry.get(fleet.r, iid).hash_key.get_secret_value())

    def mac(text: str) -> str:
        return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()

    run = run_id()
    full = track(
        f"{run}-full",
        context={"ip": "203.0.113.7", "locale": "fr-FR"},
        properties={"card": "4111", "total": 10, "address": {"city": "Lyon", "zip": "69001"}},
        traits={"email": "ada@example.com", "plan": "pro"},
    )
    bare = {"event_id": f"{run}-bare", "type": "page", "anonymous_id": "anon-2"}  # nothing to drop or hash
    nulls = track(f"{run}-nulls", user_id=None, traits={"email": None}, context={"ip": None})
    fleet.sender.ingest(iid, [full, bare, nulls])
    wait_settled(fleet, iid, delivered_events=3, removed=0)
    got = delivered(fleet, bucket)

    f = got[full["event_id"]]
    assert f["context"] == {"locale": "fr-FR"}
    assert f["user_id"] == mac("user-1") != "user-1"
    assert f["traits"] == {"email": mac("ada@example.com"), "plan": "pro"}
    assert f["properties"] == {"total": 10, "address": mac('{"city":"Lyon","zip":"69001"}')}
    assert f["anonymous_id"] == "anon-1" and f["event"] == "Order Completed"
    b = got[bare["event_id"]]
    assert {k: v for k, v in b.items() if k not in ("received_at", "integration_id", "_key")} == bare
    n = got[nulls["event_id"]]
    assert "user_id" not in n and n["traits"] == {"email": None} and n["context"] == {}
    # the same value hashes the same way in every event of the integration
    fleet.sender.ingest(iid, [track(f"{run}-again", traits={"email": "ada@example.com"})])
    wait_settled(fleet, iid, delivered_events=4, removed=0)
    assert delivered(fleet, bucket)[f"{run}-again"]["traits"]["email"] == f["traits"]["email"]


# -- Parquet ----------------------------------------------------------------------------------------------------------


def test_parquet_variant_with_a_blueprint(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(
        bucket,
        variant="parquet",
        blueprint={
            "events": {"exclude": ["identify"]},
            "consent": {"require": ["analytics"]},
            "drop_fields": ["context.ip"],
            "hash_fields": ["traits.email"],
        },
    )
    start_worker()
    start_beat()
    key = bytes.fromhex(registry.get(fleet.r, iid).hash_key.get_secret_value())
    run = run_id()
    ok = {"analytics": True}
    events = [
        track(f"{run}-kept", context={"consent": ok, "ip": "203.0.113.7"}, traits={"email": "ada@example.com"}),
        {"event_id": f"{run}-page", "type": "page", "anonymous_id": "a", "context": {"consent": ok}},
        {"event_id": f"{run}-identify", "type": "identify", "user_id": "u", "context": {"consent": ok}},
        track(f"{run}-denied", context={"consent": {"analytics": False}}),
    ]
    fleet.sender.ingest(iid, events)
    st = wait_settled(fleet, iid, delivered_events=2, removed=2)
    assert st["removed_events"] == {"filtered_out": 1, "consent_denied": 1}
    objects = read_objects(fleet.s3, bucket)
    assert objects and all(k.endswith(".parquet") for k in objects)
    got = {e["event_id"]: e for events in objects.values() for e in events}
    assert set(got) == {f"{run}-kept", f"{run}-page"}
    kept = got[f"{run}-kept"]
    assert kept["context"] == {"consent": ok}
    assert kept["traits"] == {"email": hmac.new(key, b"ada@example.com", hashlib.sha256).hexdigest()}


# -- partition_time ---------------------------------------------------------------------------------------------------


def hour_prefix(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("events/%Y/%m/%d/%H/")


def test_partition_time_timestamp_puts_late_events_in_their_hour_and_far_ones_in_the_received_hour(
    fleet, make_bucket, start_worker, start_beat
):
    bucket = make_bucket()
    iid = fleet.install(bucket, partition_time="timestamp", partition_time_bound_s=7 * 86_400)
    start_worker()
    start_beat()
    now = clock.now()
    run = run_id()
    late = now - timedelta(hours=5)
    early = now + timedelta(hours=2)  # a device clock ahead, within the bound
    events = [
        track(f"{run}-late", timestamp=clock.iso(late)),
        track(f"{run}-early", timestamp=clock.iso(early)),
        track(f"{run}-far", timestamp=clock.iso(now - timedelta(days=30))),
        track(f"{run}-none"),
    ]
    task_id = fleet.sender.ingest(iid, events)
    fleet.sender.ingest(iid, events, task_id=task_id)  # redelivered: counted once
    st = wait_settled(fleet, iid, delivered_events=4, removed=0)
    got = delivered(fleet, bucket)

    def received_hour(event_id: str) -> str:
        return hour_prefix(datetime.fromisoformat(got[event_id]["received_at"]))

    assert got[f"{run}-late"]["_key"].startswith(hour_prefix(late))
    assert got[f"{run}-early"]["_key"].startswith(hour_prefix(early))
    assert got[f"{run}-far"]["_key"].startswith(received_hour(f"{run}-far"))
    assert got[f"{run}-none"]["_key"].startswith(received_hour(f"{run}-none"))
    assert got[f"{run}-late"]["timestamp"] == clock.iso(late)  # the event itself is unchanged
    assert st["partition_fallback_events"] == 1
    assert scraped(fleet, iid)[("signal_events_partition_fallback_total", None)] == 1


def test_partition_time_received_at_ignores_the_timestamp(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket)  # the default: received_at
    start_worker()
    start_beat()
    run = run_id()
    fleet.sender.ingest(iid, [track(f"{run}-late", timestamp=clock.iso(clock.now() - timedelta(days=2)))])
    st = wait_settled(fleet, iid, delivered_events=1, removed=0)
    [event] = delivered(fleet, bucket).values()
    assert event["_key"].startswith(hour_prefix(datetime.fromisoformat(event["received_at"])))
    assert st["partition_fallback_events"] == 0


# -- the test event ---------------------------------------------------------------------------------------------------


def test_a_test_event_the_blueprint_removes_says_so(start_api, make_bucket, start_worker, fleet):
    # every process reads the integration afresh for each message: a blueprint changed below applies at once
    fleet.env["SIGNAL_INTEGRATION_CACHE_TTL_S"] = "0"
    api = start_api(SIGNAL_API_ACCESS_LOG="true")
    bucket = make_bucket()
    iid = api.install(bucket, blueprint={"consent": {"require": ["analytics"]}})["id"]
    start_worker()
    response = api.admin.post(f"/v1/admin/integrations/{iid}/test-event", params={"timeout_s": 30})
    assert response.status_code == 409, response.text
    body = response.json()
    assert (body["error"], body["state"], body["reason"]) == ("filtered", "filtered", "consent_denied")
    assert "removed by the integration's blueprint (consent_denied)" in body["message"]
    assert "nothing was written to S3" in body["message"]
    assert "consent is granted for analytics" in body["hint"]
    assert read_objects(fleet.s3, bucket) == {}
    assert api.status(iid)["removed_events"] == {"consent_denied": 1}
    live = api.admin.get(f"/v1/admin/integrations/{iid}/live-events").json()["events"]
    assert (live[0]["event_id"], live[0]["state"], live[0]["reason"]) == (
        body["event_id"],
        "filtered",
        "consent_denied",
    )

    done = subprocess.run(
        [*venv_command("signal-s3"), "test", iid],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **fleet.env, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode != 0
    assert json.loads(done.stdout)["state"] == "filtered"

    response = api.admin.patch(f"/v1/admin/integrations/{iid}", json={"blueprint": {"events": {"include": ["page"]}}})
    assert response.status_code == 200, response.text
    body = api.admin.post(f"/v1/admin/integrations/{iid}/test-event").json()
    assert (body["state"], body["reason"]) == ("filtered", "filtered_out")
    assert 'does not deliver a track event named "Signal Test Event"' in body["message"]

    assert api.admin.patch(f"/v1/admin/integrations/{iid}", json={"blueprint": {}}).status_code == 200
    body = api.admin.post(f"/v1/admin/integrations/{iid}/test-event").json()
    assert body["state"] == "delivered", body
    assert [e["event_id"] for e in read_objects(fleet.s3, bucket)[body["object_key"]]] == [body["event_id"]]
    assert api.status(iid)["removed_events"] == {"consent_denied": 2, "filtered_out": 1}
