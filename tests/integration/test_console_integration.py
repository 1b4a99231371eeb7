"""One installed integration's pages in the console, read over HTTP: Status, Live Events, Dead letter (with replay),
Settings (with enable / disable and delete) and Query & access.

The console runs in this process (uvicorn in a thread) against the fleet's redis-server and moto; uploads run in this
process too (``upload.upload`` against moto) unless a test starts a worker.
"""

from __future__ import annotations

import json

from tests.support.console import cells, flush, ingest, install, parse, row_of
from tests.support.fleet import event_counts, make_events, read_objects
from tests.support.s3_fixtures import unique_bucket
from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN
from workers.classify import HINTS
from workers.events.blueprint import parse_blueprint
from workers.integrations import registry
from workers.sink import athena, iam


def test_status_shows_buffered_delivered_retrying_held_and_the_last_error(fleet, console, make_bucket):
    bucket = make_bucket()
    iid = install(fleet, bucket)
    ingest(fleet, iid, make_events(12))
    flush(fleet, iid)
    ingest(fleet, iid, make_events(3))
    page = console.page(f"/integrations/{iid}")
    stats = {s.find("h2").text: s.text for s in page.by_id("status-panel").find_all("section", class_="stat")}
    assert stats["Buffered"].startswith("Buffered 3 events")
    assert stats["Delivered"].startswith("Delivered 12 events in 1 object")
    assert "s ago" in stats["Last success"] and "events/" in stats["Last success"]
    assert stats["Retrying"].startswith("Retrying 0") and stats["Held"].startswith("Held 0")
    assert not page.find_all(id="last-error")

    registry.update(
        fleet.r, iid, config=registry.get(fleet.r, iid).config.model_copy(update={"bucket": unique_bucket()})
    )
    flush(fleet, iid)
    panel = console.page(f"/integrations/{iid}/status/panel")
    error = panel.by_id("last-error")
    assert error.find("h2").text == "Last error: NoSuchBucket"
    assert HINTS["NoSuchBucket"] in error.text and "UTC" in error.find("time").text
    after = {s.find("h2").text: s.text for s in panel.find_all("section", class_="stat")}
    assert after["Held"] == "Held 1 batch · 3 events"
    assert after["Buffered"].startswith("Buffered 0 events")  # held is not buffered


def test_status_and_live_events_show_what_the_blueprint_removed_and_the_partition_fallbacks(
    fleet, console, make_bucket
):
    iid = install(fleet, make_bucket(), partition_time="timestamp", partition_time_bound_s=3600)
    registry.update(
        fleet.r,
        iid,
        blueprint=parse_blueprint({"events": {"exclude": ["identify"]}, "consent": {"require": ["analytics"]}}),
    )
    registry.invalidate(iid)
    ok = {"consent": {"analytics": True}}
    ingest(
        fleet,
        iid,
        [
            {"event_id": "kept", "type": "track", "event": "Buy", "user_id": "u", "context": ok},
            {
                "event_id": "far",
                "type": "track",
                "event": "Buy",
                "user_id": "u",
                "context": ok,
                "timestamp": "2020-01-01T00:00:00Z",
            },
            {"event_id": "who", "type": "identify", "user_id": "u", "context": ok},
            {"event_id": "no-consent", "type": "page", "user_id": "u"},
        ],
    )
    panel = console.page(f"/integrations/{iid}/status/panel")
    removed = panel.by_id("removed-events")
    assert [cells(tr) for tr in removed.find("tbody").find_all("tr")] == [
        ["consent_denied", "1"],
        ["filtered_out", "1"],
    ]
    assert "Not errors" in removed.text
    assert panel.by_id("partition-fallback").find("p", class_="big").text == "1"
    table = console.page(f"/integrations/{iid}/live").by_id("live-events")
    assert cells(row_of(table, "who"))[4:] == ["filtered", "filtered_out removed by the blueprint, not delivered"]
    assert cells(row_of(table, "no-consent"))[4:] == [
        "filtered",
        "consent_denied removed by the blueprint, not delivered",
    ]
    assert cells(row_of(table, "far"))[4] == "buffered"


def test_live_events_show_each_events_state_object_key_and_error(fleet, console, make_bucket):
    iid = install(fleet, make_bucket())
    events = make_events(3, run="live")
    ingest(fleet, iid, events[:2])
    (key,) = flush(fleet, iid)
    ingest(fleet, iid, events[2:])
    page = console.page(f"/integrations/{iid}/live")
    table = page.by_id("live-events")
    assert [th.text for th in table.find_all("th")] == [
        "Event ID",
        "Type",
        "Event",
        "Received",
        "State",
        "Object key or error",
    ]
    event_id, kind, name, received, state, detail = cells(row_of(table, "live-2"))
    assert kind == "identify" and state == "buffered" and received.endswith("UTC")
    event_id, kind, name, received, state, detail = cells(row_of(table, "live-0"))
    assert (kind, name, state, detail) == ("track", "order_completed", "delivered", key)
    assert table.find("tbody").get("data-refresh") == f"/integrations/{iid}/live/rows"
    assert page.find("form", action=f"/integrations/{iid}/test-event").find("button").text == "Send test event"

    registry.update(
        fleet.r, iid, config=registry.get(fleet.r, iid).config.model_copy(update={"bucket": unique_bucket()})
    )
    flush(fleet, iid)
    rows = console.page(f"/integrations/{iid}/live/rows")
    assert cells(row_of(rows, "live-2"))[4:] == ["failed", f"NoSuchBucket {HINTS['NoSuchBucket']}"]


def test_dead_letter_lists_held_batches_and_replay_delivers_them_once(fleet, console, s3_admin):
    missing = unique_bucket()
    iid = install(fleet, missing)
    events = make_events(7)
    ingest(fleet, iid, events[:4])
    flush(fleet, iid)
    ingest(fleet, iid, events[4:])
    flush(fleet, iid)
    page = console.page(f"/integrations/{iid}/dead-letter")
    table = page.by_id("held-batches")
    assert [th.text for th in table.find_all("th")][:5] == ["Batch", "Error", "Events", "First failure", "Last failure"]
    rows = table.find("tbody").find_all("tr")
    assert len(rows) == 2
    for row in rows:
        batch, error, count, first, last, _ = cells(row)
        assert error.startswith("NoSuchBucket") and HINTS["NoSuchBucket"] in error
        assert count.split()[0] in ("4", "3") and first.endswith("UTC") and last.endswith("UTC")
    assert page.find("form", action=f"/integrations/{iid}/dead-letter/replay").find("button").text == "Replay all (2)"

    one = rows[0].find("input", name="batch_id").get("value")
    failing = console.post(f"/integrations/{iid}/dead-letter/replay", {"batch_id": one}, follow=True)
    outcome = parse(failing.text).by_id("replay-outcome")
    assert "0 batches delivered, 0 already delivered, 1 still failing" in outcome.text
    assert HINTS["NoSuchBucket"] in outcome.text

    s3_admin.create_bucket(Bucket=missing)
    done = console.post(f"/integrations/{iid}/dead-letter/replay", follow=True)
    assert "2 batches delivered, 0 already delivered, 0 still failing" in parse(done.text).by_id("replay-outcome").text
    assert "Nothing is held" in parse(done.text).text
    delivered = [e["event_id"] for objs in read_objects(s3_admin, missing).values() for e in objs]
    assert sorted(delivered) == sorted(e["event_id"] for e in events)


def test_settings_show_redacted_secrets_keep_blank_ones_and_report_errors_next_to_fields(fleet, console, make_bucket):
    bucket = make_bucket()
    iid = install(fleet, bucket, session_token=SESSION_TOKEN)
    page = console.page(f"/integrations/{iid}/settings")
    secret = page.find(name="config.secret_access_key")
    assert secret.get("type") == "password" and secret.get("value") == "" and secret.get("placeholder") == "****EKEY"
    assert "Current value ****EKEY: leave blank to keep it." in page.by_id(secret.get("id") + "-help").text
    assert page.find(name="config.bucket").get("value") == bucket
    assert page.find(name="config.session_token.remove")

    typed = {
        "name": "Renamed",
        "config.bucket": bucket,
        "config.region": "us-east-1",
        "config.prefix": "other/",
        "config.storage_class": "STANDARD",
        "config.batch_max_events": "",
    }
    assert console.post(f"/integrations/{iid}/settings", typed).status_code == 303
    integ = registry.get(fleet.r, iid)
    assert integ.name == "Renamed" and integ.config.prefix == "other/"
    assert integ.config.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY  # blank kept it
    assert integ.config.session_token.get_secret_value() == SESSION_TOKEN
    assert integ.config.batch_max_events == 100_000

    wrong = console.post(
        f"/integrations/{iid}/settings",
        {**typed, "config.region": "moon-1", "config.secret_access_key": "new-secret-value"},
    )
    page = parse(wrong.text)
    region = page.find(name="config.region")
    assert page.by_id(region.get("id") + "-error").text.startswith("Error: region must be an AWS region code")
    assert "new-secret-value" not in wrong.text and page.find(name="config.prefix").get("value") == "other/"
    access_key = page.find(name="config.access_key_id")  # stored: shown redacted only
    assert access_key.get("value") == "" and "Current value ****MPLE" in page.by_id(access_key.get("id") + "-help").text
    failed_text = console.post(
        f"/integrations/{iid}/settings",
        {
            **typed,
            "config.bucket": unique_bucket(),
            "config.session_token.remove": "1",
            "config.access_key_id": "AKIATYPEDKEY0000TEST",
            "config.secret_access_key": "typed-secret-value",
        },
    ).text
    failed = parse(failed_text)
    assert [td.text for td in failed.by_id("bucket-check").find_all("td")][0] == "NoSuchBucket"
    assert failed.find(name="config.access_key_id").get("value") == "AKIATYPEDKEY0000TEST"  # what was just typed
    assert failed.find(name="config.secret_access_key").get("value") == "" and "typed-secret-value" not in failed_text
    assert ACCESS_KEY_ID not in failed_text and SECRET_ACCESS_KEY not in failed_text  # nothing stored, unredacted
    assert registry.get(fleet.r, iid).config.bucket == bucket
    assert (
        console.post(f"/integrations/{iid}/settings", {**typed, "config.session_token.remove": "1"}).status_code == 303
    )
    assert registry.get(fleet.r, iid).config.session_token is None

    assert console.post(f"/integrations/{iid}/disable").headers["location"] == f"/integrations/{iid}/settings"
    page = console.page(f"/integrations/{iid}/settings")
    assert "Renamed is disabled" in page.find("div", class_="notice").text
    assert page.find("form", action=f"/integrations/{iid}/enable").find("button").text == "Enable integration"
    console.post(f"/integrations/{iid}/enable")
    assert registry.get(fleet.r, iid).enabled is True


def test_delete_asks_first_refuses_while_events_are_held_and_then_deletes(fleet, console, make_bucket):
    missing = unique_bucket()
    held = install(fleet, missing, name="Held")
    ingest(fleet, held, make_events(2))
    flush(fleet, held)
    settings_page = console.page(f"/integrations/{held}/settings")
    assert settings_page.find("a", href=f"/integrations/{held}/delete").text == "Delete integration…"
    confirm = console.page(f"/integrations/{held}/delete")
    assert "0 buffered events and 2 held events" in confirm.text.replace("It has ", "")
    assert confirm.find("input", name="flush", type="checkbox")
    refused = parse(console.post(f"/integrations/{held}/delete", {"flush": "1"}).text)
    assert "2 events are held in the dead-letter store" in refused.by_id("delete-refused").text
    assert registry.get(fleet.r, held)

    empty = install(fleet, make_bucket(), name="Empty")
    gone = console.post(f"/integrations/{empty}/delete")
    assert gone.status_code == 303 and gone.headers["location"] == "/integrations"
    assert "Empty was deleted." in console.page("/integrations").text
    assert [i.id for i in registry.list_all(fleet.r)] == [held]


def test_delete_with_flush_first_delivers_the_buffered_events_then_deletes(
    fleet, console, make_bucket, start_worker, s3_admin
):
    bucket = make_bucket()
    iid = install(fleet, bucket, flush_interval_s=3600)
    events = make_events(5)
    ingest(fleet, iid, events)
    refused = parse(console.post(f"/integrations/{iid}/delete").text)
    assert "5 events are buffered and not yet delivered" in refused.by_id("delete-refused").text
    assert registry.get(fleet.r, iid)
    start_worker(queues="flush")
    done = console.post(f"/integrations/{iid}/delete", {"flush": "1"})
    assert done.status_code == 303 and done.headers["location"] == "/integrations"
    assert registry.list_all(fleet.r) == []
    assert event_counts(read_objects(s3_admin, bucket)) == {e["event_id"]: 1 for e in events}


def test_query_and_access_show_the_athena_ddl_and_iam_policy_with_copy_buttons(fleet, console, make_bucket):
    iid = install(
        fleet, make_bucket(), server_side_encryption="aws:kms", kms_key_id="arn:aws:kms:us-east-1:123456789012:key/abcd"
    )
    integ = registry.get(fleet.r, iid)
    page = console.page(f"/integrations/{iid}/query")
    assert page.by_id("ddl").text == " ".join(athena.athena_ddl(iid, integ.config).split())
    assert page.by_id("ddl-partitions").text.startswith(
        "Run this in Athena to query the objects: partitioned by year, month, day, hour (the key's path date layout)"
    )
    assert json.loads(page.by_id("iam-policy").text) == iam.iam_policy(integ.config)
    assert {b.get("data-copy") for b in page.find_all("button", class_="copy")} == {"ddl", "iam-policy"}


def test_query_shows_the_table_of_the_integrations_own_format_and_date_layout(fleet, console, make_bucket):
    iid = install(fleet, make_bucket(), variant="parquet", date_layout="hive")
    integ = registry.get(fleet.r, iid)
    page = console.page(f"/integrations/{iid}/query")
    ddl = page.by_id("ddl").text
    assert ddl == " ".join(athena.athena_ddl(iid, integ.config, variant="parquet").split())
    assert "STORED AS PARQUET" in ddl and "/dt=${dt}/hr=${hr}/'" in ddl
    assert "partitioned by dt, hr (the key's hive date layout)" in page.by_id("ddl-partitions").text
