"""Segment HTTP Tracking API calls -> canonical envelopes; request limits."""

from __future__ import annotations

import gzip

import orjson
import pytest

from workers import collect, envelope

NOW = "2026-05-12T10:00:00.000Z"


def test_every_segment_field_maps_to_its_canonical_name():
    call = {
        "type": "track", "messageId": "m-1", "anonymousId": "a-1", "userId": "u-1", "event": "Order Completed",
        "timestamp": "2026-05-12T09:59:58Z", "sentAt": "2026-05-12T09:59:59Z", "receivedAt": "2026-05-12T10:00:00Z",
        "context": {"ip": "203.0.113.7"}, "properties": {"revenue": 9.5}, "traits": {"plan": "pro"},
        "name": "n", "groupId": "g-1", "previousId": "p-1",
    }
    out = collect.to_envelope(call, source_id="src", received_at=NOW)
    assert out == {
        "type": "track", "event_id": "m-1", "anonymous_id": "a-1", "user_id": "u-1", "event": "Order Completed",
        "timestamp": "2026-05-12T09:59:58Z", "sent_at": "2026-05-12T09:59:59Z", "received_at": "2026-05-12T10:00:00Z",
        "context": {"ip": "203.0.113.7"}, "properties": {"revenue": 9.5}, "traits": {"plan": "pro"},
        "name": "n", "group_id": "g-1", "previous_id": "p-1", "source_id": "src",
    }


def test_the_mapped_envelope_passes_ingest_validation():
    calls = collect.Calls([{"type": "identify", "userId": "u", "traits": {"a": 1}},
                           {"type": "track", "anonymousId": "a", "event": "x", "messageId": "m"}])
    events = collect.envelopes(calls, source_id="src", received_at=NOW, event_type=None)
    from datetime import UTC, datetime

    prepared = envelope.prepare(events, "iid", received_at=datetime(2026, 5, 12, 10, tzinfo=UTC),
                                event_max_bytes=32 * 1024)
    assert prepared.accepted == 2 and prepared.rejected == []
    lines = [orjson.loads(line) for lines in prepared.lines_by_hour.values() for line in lines]
    assert {e["source_id"] for e in lines} == {"src"}
    assert lines[1]["event_id"] == "m"


def test_missing_message_id_gets_one_uuid_shared_by_every_integration():
    out = collect.to_envelope({"type": "page", "anonymousId": "a"}, source_id="s", received_at=NOW)
    assert len(out["event_id"]) == 36
    assert out["received_at"] == NOW


def test_path_type_wins_and_server_fields_cannot_be_forged():
    call = {"type": "alias", "userId": "u", "writeKey": "wk_secret", "integration_id": "other", "source_id": "evil",
            "sourceId": "evil", "integrations": {"All": True}}
    out = collect.to_envelope(call, source_id="mine", received_at=NOW, event_type="track")
    assert out["type"] == "track"
    assert out["source_id"] == "mine"
    assert "writeKey" not in out and "integration_id" not in out and "sourceId" not in out
    assert out["integrations"] == {"All": True}  # other fields are kept as sent


def test_snake_case_is_accepted_when_camel_case_is_absent_and_camel_case_wins():
    out = collect.to_envelope({"type": "track", "event": "e", "user_id": "snake", "anonymous_id": "x",
                               "anonymousId": "camel"}, source_id="s", received_at=NOW)
    assert out["user_id"] == "snake"
    assert out["anonymous_id"] == "camel"


def test_batch_context_and_sent_at_apply_to_each_call_without_overriding_its_own():
    document = {"batch": [{"type": "track", "event": "a", "userId": "u", "context": {"ip": "1.1.1.1"}},
                          {"type": "track", "event": "b", "userId": "u", "sentAt": "2026-05-12T09:00:00Z"}],
                "context": {"ip": "9.9.9.9", "library": {"name": "analytics-python"}},
                "sentAt": "2026-05-12T08:00:00Z"}
    calls = collect.read_calls(document, None, event_max_bytes=32 * 1024)
    first, second = collect.envelopes(calls, source_id="s", received_at=NOW, event_type=None)
    assert first["context"] == {"ip": "1.1.1.1", "library": {"name": "analytics-python"}}
    assert first["sent_at"] == "2026-05-12T08:00:00Z"
    assert second["context"] == {"ip": "9.9.9.9", "library": {"name": "analytics-python"}}
    assert second["sent_at"] == "2026-05-12T09:00:00Z"


def test_non_objects_in_a_batch_are_passed_on_for_ingest_to_reject():
    calls = collect.read_calls({"batch": ["nope", 3]}, None, event_max_bytes=1024)
    assert collect.envelopes(calls, source_id="s", received_at=NOW, event_type=None) == ["nope", 3]


@pytest.mark.parametrize(
    ("document", "event_type", "reason"),
    [([], None, "not_an_object"), ({"batch": {}}, None, "invalid_batch"), ({}, None, "invalid_batch"),
     ("track", "track", "not_an_object")],
)
def test_malformed_requests_are_refused_with_a_reason(document, event_type, reason):
    with pytest.raises(collect.MalformedRequest) as info:
        collect.read_calls(document, event_type, event_max_bytes=1024)
    assert info.value.reason == reason and info.value.status == 400


def test_a_call_over_the_per_event_limit_refuses_the_request_naming_it():
    big = {"type": "track", "event": "e", "userId": "u", "properties": {"blob": "x" * 2000}}
    with pytest.raises(collect.MalformedRequest) as info:
        collect.read_calls({"batch": [{"type": "page", "userId": "u"}, big]}, None, event_max_bytes=1024)
    assert info.value.reason == "event_too_large" and info.value.status == 400
    assert "call 1" in info.value.message


def test_parse_json_refuses_empty_and_invalid_bodies():
    for body, reason in ((b"", "empty_body"), (b"{nope", "invalid_json")):
        with pytest.raises(collect.MalformedRequest) as info:
            collect.parse_json(body)
        assert info.value.reason == reason


def test_gunzip_round_trip_and_bomb_refused_without_expanding_it():
    assert collect.gunzip(gzip.compress(b'{"a":1}'), max_bytes=100) == b'{"a":1}'
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(collect.MalformedRequest) as info:
        collect.gunzip(bomb, max_bytes=500 * 1024)
    assert info.value.status == 413 and info.value.reason == "body_too_large"
    with pytest.raises(collect.MalformedRequest) as info:
        collect.gunzip(b"not gzip at all", max_bytes=100)
    assert info.value.reason == "invalid_gzip"
    with pytest.raises(collect.MalformedRequest) as info:
        collect.gunzip(gzip.compress(b"x" * 1000)[:-12], max_bytes=10_000)
    assert info.value.reason == "invalid_gzip"
