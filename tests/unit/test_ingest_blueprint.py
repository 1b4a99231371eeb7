"""Ingest with a blueprint and partition_time on fakeredis: what is buffered, what is counted, once per message."""

from __future__ import annotations

from typing import Any

import fakeredis
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.support.fleet import lines_of
from tests.support.seed import install_body
from workers.integrations import registry, status
from workers.observe import metrics
from workers.pipeline import ingest
from workers.settings import get_settings
from workers.store import buffer, keys


def install(r: fakeredis.FakeRedis, blueprint: dict[str, Any] | None = None, **config: Any) -> str:
    body = install_body()
    body["config"].update(config)
    if blueprint is not None:
        body["blueprint"] = blueprint
    return registry.install(r, body).id


def buffered(r: fakeredis.FakeRedis, iid: str) -> dict[str, list[dict[str, Any]]]:
    hours = buffer.open_buffers(r, [iid]).get(iid, [])
    return {hour: [orjson.loads(x) for x in lines_of(r.lrange(keys.buffer(iid, hour), 0, -1))] for hour, _ in hours}


def track(event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "track", "event": "Order Completed", "anonymous_id": "a-1", **fields}


def test_removed_events_are_counted_once_per_message_and_shown_as_filtered() -> None:
    r = fakeredis.FakeRedis()
    iid = install(r, {"consent": {"require": ["analytics"]}, "events": {"exclude": ["identify"]}})
    events = [
        track("granted", context={"consent": {"analytics": True}}),
        track("denied", context={"consent": {"categoryPreferences": {"analytics": False}}}),
        {"event_id": "who", "type": "identify", "user_id": "u-1"},
        {"type": "nope"},
    ]
    result = ingest.ingest(r, iid, events, message_id="m-1", settings=get_settings())
    assert result.accepted == 1 and [x["reason"] for x in result.rejected] == ["invalid_type"]
    assert result.removed == {"consent_denied": 1, "filtered_out": 1}
    assert result.summary()["removed"] == {"consent_denied": 1, "filtered_out": 1}
    again = ingest.ingest(r, iid, events, message_id="m-1", settings=get_settings())
    assert again.duplicate
    [(_, lines)] = buffered(r, iid).items()
    assert [e["event_id"] for e in lines] == ["granted"]
    st = status.integration_status(r, iid)
    assert st["removed_events"] == {"consent_denied": 1, "filtered_out": 1}
    assert st["rejected_events"] == {"invalid_type": 1} and st["ingested_events"] == 1
    live = {v["event_id"]: v for v in status.live_events(r, iid)}
    assert live["granted"]["state"] == "buffered"
    assert {k: live[k]["state"] for k in ("denied", "who")} == {"denied": "filtered", "who": "filtered"}
    assert (live["denied"]["reason"], live["who"]["reason"]) == ("consent_denied", "filtered_out")
    assert live["who"]["batch_id"] is None and live["who"]["type"] == "identify"
    scraped = {
        (s.name, s.labels.get("reason")): s.value
        for f in text_string_to_metric_families(metrics.render(r)[0].decode())
        for s in f.samples
        if s.labels.get("integration_id") == iid
    }
    assert scraped[("signal_events_removed_total", "consent_denied")] == 1
    assert scraped[("signal_events_removed_total", "filtered_out")] == 1
    assert scraped[("signal_events_partition_fallback_total", None)] == 0


def test_a_message_whose_events_are_all_removed_buffers_nothing() -> None:
    r = fakeredis.FakeRedis()
    iid = install(r, {"events": {"include": ["page"]}})
    result = ingest.ingest(r, iid, [track("a"), track("b")], message_id="m", settings=get_settings())
    assert (result.accepted, result.removed) == (0, {"filtered_out": 2})
    assert buffered(r, iid) == {} and r.zcard(keys.open_index(iid)) == 0
    assert status.integration_status(r, iid)["removed_events"] == {"filtered_out": 2}


def test_partition_time_timestamp_buffers_late_events_in_their_hour_and_counts_the_far_ones() -> None:
    r = fakeredis.FakeRedis()
    iid = install(r, partition_time="timestamp", partition_time_bound_s=86_400)
    events = [
        track("late", timestamp="2020-01-01T05:00:00Z", received_at="2020-01-01T09:10:00Z"),
        track("far", timestamp="2019-12-01T05:00:00Z", received_at="2020-01-01T09:10:00Z"),
    ]
    result = ingest.ingest(r, iid, events, message_id="m", settings=get_settings())
    ingest.ingest(r, iid, events, message_id="m", settings=get_settings())  # redelivered: counted once
    assert result.partition_fallback == 1
    assert {h: [e["event_id"] for e in lines] for h, lines in buffered(r, iid).items()} == {
        "2020010105": ["late"],
        "2020010109": ["far"],
    }
    assert status.integration_status(r, iid)["partition_fallback_events"] == 1


def test_the_default_blueprint_and_received_at_partitioning_change_nothing() -> None:
    r = fakeredis.FakeRedis()
    iid = install(r)
    result = ingest.ingest(
        r, iid, [track("x", timestamp="2020-01-01T05:00:00Z")], message_id="m", settings=get_settings()
    )
    assert (result.accepted, result.removed, result.partition_fallback) == (1, {}, 0)
    [(hour, [line])] = buffered(r, iid).items()
    assert hour == line["received_at"][:13].replace("-", "").replace("T", "")
    st = status.integration_status(r, iid)
    assert (st["removed_events"], st["partition_fallback_events"]) == ({}, 0)


def test_a_message_prepared_by_the_api_carries_the_blueprint_and_partition_results_to_the_append() -> None:
    """The API prepares (rules and partition hours applied there) and the worker appends what the wire carried."""
    from workers.events.message import decode_message, describe_message, encode_message

    r = fakeredis.FakeRedis()
    iid = install(r, {"consent": {"require": ["analytics"]}}, partition_time="timestamp", partition_time_bound_s=86_400)
    events = [
        track(
            "late",
            timestamp="2020-01-01T05:00:00Z",
            received_at="2020-01-01T09:10:00Z",
            context={"consent": {"analytics": "granted"}},
        ),
        track(
            "far",
            timestamp="2019-12-01T05:00:00Z",
            received_at="2020-01-01T09:10:00Z",
            context={"consent": {"analytics": True}},
        ),
        track("denied", received_at="2020-01-01T09:10:00Z", context={"consent": {"analytics": False}}),
        {"type": "nope"},
    ]
    encoded = encode_message(ingest.prepare(r, iid, events, settings=get_settings()))
    assert describe_message(encoded) == "<4 events: 2 prepared, 1 rejected, 1 removed>"
    message = decode_message(orjson.loads(orjson.dumps(encoded)))
    assert (message.removed, message.partition_fallback, message.events) == ({"consent_denied": 1}, 1, 4)
    for _ in range(2):  # redelivered: appended and counted once
        result = ingest.append(r, iid, message, message_id="m", settings=get_settings())
    assert result.duplicate
    assert {h: [e["event_id"] for e in lines] for h, lines in buffered(r, iid).items()} == {
        "2020010105": ["late"],
        "2020010109": ["far"],
    }
    st = status.integration_status(r, iid)
    assert (st["removed_events"], st["partition_fallback_events"]) == ({"consent_denied": 1}, 1)
    assert st["rejected_events"] == {"invalid_type": 1}
    live = {v["event_id"]: v for v in status.live_events(r, iid)}
    assert (live["denied"]["state"], live["denied"]["reason"]) == ("filtered", "consent_denied")
    assert live["late"]["state"] == "buffered"
