"""Segment HTTP Tracking API calls -> canonical envelopes; request limits."""

from __future__ import annotations

import gzip
import ipaddress

import orjson
import pytest

from workers.events import prepared, segment
from workers.web.client import client_ip

NOW = "2026-05-12T10:00:00.000Z"


def test_every_segment_field_maps_to_its_canonical_name():
    call = {
        "type": "track",
        "messageId": "m-1",
        "anonymousId": "a-1",
        "userId": "u-1",
        "event": "Order Completed",
        "timestamp": "2026-05-12T09:59:58Z",
        "sentAt": "2026-05-12T09:59:59Z",
        "receivedAt": "2026-05-12T10:00:00Z",
        "context": {"ip": "203.0.113.7"},
        "properties": {"revenue": 9.5},
        "traits": {"plan": "pro"},
        "name": "n",
        "groupId": "g-1",
        "previousId": "p-1",
    }
    out = segment.to_envelope(call, source_id="src", received_at=NOW)
    assert out == {
        "type": "track",
        "event_id": "m-1",
        "anonymous_id": "a-1",
        "user_id": "u-1",
        "event": "Order Completed",
        "timestamp": "2026-05-12T09:59:58Z",
        "sent_at": "2026-05-12T09:59:59Z",
        "received_at": "2026-05-12T10:00:00Z",
        "context": {"ip": "203.0.113.7"},
        "properties": {"revenue": 9.5},
        "traits": {"plan": "pro"},
        "name": "n",
        "group_id": "g-1",
        "previous_id": "p-1",
        "source_id": "src",
    }


def test_the_mapped_envelope_passes_ingest_validation():
    calls = segment.Calls(
        [
            {"type": "identify", "userId": "u", "traits": {"a": 1}},
            {"type": "track", "anonymousId": "a", "event": "x", "messageId": "m"},
        ]
    )
    events = segment.envelopes(calls, source_id="src", received_at=NOW, event_type=None)
    from datetime import UTC, datetime

    result = prepared.prepare(
        events, "iid", received_at=datetime(2026, 5, 12, 10, tzinfo=UTC), event_max_bytes=32 * 1024
    )
    assert result.accepted == 2 and result.rejected == []
    lines = [orjson.loads(line) for lines in result.lines_by_hour.values() for line in lines]
    assert {e["source_id"] for e in lines} == {"src"}
    assert lines[1]["event_id"] == "m"


def test_missing_message_id_gets_one_uuid_shared_by_every_integration():
    out = segment.to_envelope({"type": "page", "anonymousId": "a"}, source_id="s", received_at=NOW)
    assert len(out["event_id"]) == 36
    assert out["received_at"] == NOW


def test_path_type_wins_and_server_fields_cannot_be_forged():
    call = {
        "type": "alias",
        "userId": "u",
        "writeKey": "wk_secret",
        "integration_id": "other",
        "source_id": "evil",
        "sourceId": "evil",
        "integrations": {"All": True},
    }
    out = segment.to_envelope(call, source_id="mine", received_at=NOW, event_type="track")
    assert out["type"] == "track"
    assert out["source_id"] == "mine"
    assert "writeKey" not in out and "integration_id" not in out and "sourceId" not in out
    assert out["integrations"] == {"All": True}  # other fields are kept as sent


def test_snake_case_is_accepted_when_camel_case_is_absent_and_camel_case_wins():
    out = segment.to_envelope(
        {"type": "track", "event": "e", "user_id": "snake", "anonymous_id": "x", "anonymousId": "camel"},
        source_id="s",
        received_at=NOW,
    )
    assert out["user_id"] == "snake"
    assert out["anonymous_id"] == "camel"


def test_batch_context_and_sent_at_apply_to_each_call_without_overriding_its_own():
    document = {
        "batch": [
            {"type": "track", "event": "a", "userId": "u", "context": {"ip": "1.1.1.1"}},
            {"type": "track", "event": "b", "userId": "u", "sentAt": "2026-05-12T09:00:00Z"},
        ],
        "context": {"ip": "9.9.9.9", "library": {"name": "analytics-python"}},
        "sentAt": "2026-05-12T08:00:00Z",
    }
    calls = segment.read_calls(document, None, event_max_bytes=32 * 1024)
    first, second = segment.envelopes(calls, source_id="s", received_at=NOW, event_type=None)
    assert first["context"] == {"ip": "1.1.1.1", "library": {"name": "analytics-python"}}
    assert first["sent_at"] == "2026-05-12T08:00:00Z"
    assert second["context"] == {"ip": "9.9.9.9", "library": {"name": "analytics-python"}}
    assert second["sent_at"] == "2026-05-12T09:00:00Z"


def test_non_objects_in_a_batch_are_passed_on_for_ingest_to_reject():
    calls = segment.read_calls({"batch": ["nope", 3]}, None, event_max_bytes=1024)
    assert segment.envelopes(calls, source_id="s", received_at=NOW, event_type=None) == ["nope", 3]


@pytest.mark.parametrize(
    ("document", "event_type", "reason"),
    [
        ([], None, "not_an_object"),
        ({"batch": {}}, None, "invalid_batch"),
        ({}, None, "invalid_batch"),
        ("track", "track", "not_an_object"),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(document, event_type, reason):
    with pytest.raises(segment.MalformedRequest) as info:
        segment.read_calls(document, event_type, event_max_bytes=1024)
    assert info.value.reason == reason and info.value.status == 400


def test_a_call_over_the_per_event_limit_refuses_the_request_naming_it():
    big = {"type": "track", "event": "e", "userId": "u", "properties": {"blob": "x" * 2000}}
    with pytest.raises(segment.MalformedRequest) as info:
        segment.read_calls({"batch": [{"type": "page", "userId": "u"}, big]}, None, event_max_bytes=1024)
    assert info.value.reason == "event_too_large" and info.value.status == 400
    assert "call 1" in info.value.message


def test_parse_json_refuses_empty_and_invalid_bodies():
    for body, reason in ((b"", "empty_body"), (b"{nope", "invalid_json")):
        with pytest.raises(segment.MalformedRequest) as info:
            segment.parse_json(body)
        assert info.value.reason == reason


def test_gunzip_round_trip_and_bomb_refused_without_expanding_it():
    assert segment.gunzip(gzip.compress(b'{"a":1}'), max_bytes=100) == b'{"a":1}'
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(segment.MalformedRequest) as info:
        segment.gunzip(bomb, max_bytes=500 * 1024)
    assert info.value.status == 413 and info.value.reason == "body_too_large"
    with pytest.raises(segment.MalformedRequest) as info:
        segment.gunzip(b"not gzip at all", max_bytes=100)
    assert info.value.reason == "invalid_gzip"
    with pytest.raises(segment.MalformedRequest) as info:
        segment.gunzip(gzip.compress(b"x" * 1000)[:-12], max_bytes=10_000)
    assert info.value.reason == "invalid_gzip"


# -- what browsers' SDKs send --------------------------------------------------------------------------------------


def test_rudderstack_original_timestamp_becomes_the_timestamp_when_there_is_none():
    out = segment.to_envelope(
        {"type": "track", "event": "e", "anonymousId": "a", "originalTimestamp": "2026-05-12T09:59:58.123Z"},
        source_id="s",
        received_at=NOW,
    )
    assert out["timestamp"] == "2026-05-12T09:59:58.123Z" and "originalTimestamp" not in out
    out = segment.to_envelope(
        {
            "type": "track",
            "event": "e",
            "anonymousId": "a",
            "timestamp": "2026-05-12T09:00:00Z",
            "originalTimestamp": "2026-05-12T08:00:00Z",
        },
        source_id="s",
        received_at=NOW,
    )
    assert out["timestamp"] == "2026-05-12T09:00:00Z" and out["originalTimestamp"] == "2026-05-12T08:00:00Z"


def test_sdk_internal_fields_are_not_stored():
    out = segment.to_envelope(
        {
            "type": "page",
            "anonymousId": "a",
            "writeKey": "wk_1",
            "_metadata": {"bundled": ["Segment.io"]},
            "channel": "web",
        },
        source_id="s",
        received_at=NOW,
    )
    assert "_metadata" not in out and "writeKey" not in out
    assert out["channel"] == "web"


def test_ip_and_user_agent_come_from_the_request_when_the_client_sent_none():
    def envelope(context):
        call = {"type": "track", "event": "e", "anonymousId": "a"}
        if context is not None:
            call["context"] = context
        return segment.to_envelope(
            call, source_id="s", received_at=NOW, client_ip="198.51.100.9", user_agent="Mozilla/5.0 (X11)"
        )

    assert envelope(None)["context"] == {"ip": "198.51.100.9", "userAgent": "Mozilla/5.0 (X11)"}
    assert envelope({"locale": "de-DE"})["context"] == {
        "locale": "de-DE",
        "ip": "198.51.100.9",
        "userAgent": "Mozilla/5.0 (X11)",
    }
    assert envelope({"ip": "203.0.113.7", "userAgent": "Own/1.0"})["context"] == {
        "ip": "203.0.113.7",
        "userAgent": "Own/1.0",
    }
    assert envelope("not an object")["context"] == "not an object"  # left for ingest to reject


def test_the_batch_context_ip_counts_as_sent_by_the_client():
    calls = segment.read_calls(
        {"batch": [{"type": "track", "event": "e", "userId": "u"}], "context": {"ip": "203.0.113.1"}},
        None,
        event_max_bytes=1024,
    )
    (event,) = segment.envelopes(
        calls, source_id="s", received_at=NOW, event_type=None, client_ip="10.0.0.1", user_agent=None
    )
    assert event["context"] == {"ip": "203.0.113.1"}


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"writeKey": "wk_1", "event": "e"}, "wk_1"),  # analytics.js single call
        ({"writeKey": "wk_2", "batch": [], "sentAt": NOW}, "wk_2"),  # analytics.js batching
        ({"batch": [{"writeKey": "wk_3"}, {"writeKey": "wk_x"}]}, "wk_3"),
        ({"batch": [{"type": "track"}]}, None),
        ({"writeKey": ""}, None),
        ({"writeKey": 3}, None),
        ([], None),
        ({"batch": ["x"]}, None),
    ],
)
def test_the_write_key_of_a_body(document, key):
    assert segment.body_write_key(document) == key


PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        ("203.0.113.5", "198.51.100.1", "203.0.113.5"),  # not a trusted proxy: its header is not believed
        ("10.0.0.2", "198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "192.0.2.99, 198.51.100.1, 10.1.1.1", "198.51.100.1"),  # the first untrusted hop from the right
        ("10.0.0.2", "10.9.9.9, 10.1.1.1", "10.9.9.9"),  # all trusted: the farthest one
        ("10.0.0.2", "garbage, 198.51.100.1", "198.51.100.1"),
        ("10.0.0.2", "198.51.100.1, garbage", "10.0.0.2"),  # stops at what it cannot read
        ("10.0.0.2", "198.51.100.1:4711", "198.51.100.1"),
        ("10.0.0.2", "[2001:db8::1]:4711", "2001:db8::1"),
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),
        (None, "198.51.100.1", None),
    ],
)
def test_client_ip_believes_x_forwarded_for_only_from_trusted_proxies(peer, forwarded, client):
    assert client_ip(peer, forwarded, PROXIES) == client
    if peer is not None and ":" not in peer:
        assert client_ip(peer, forwarded, []) == peer  # without trusted proxies: always the peer


def test_trusted_proxies_setting_takes_a_comma_separated_list_and_refuses_nonsense(monkeypatch):
    from pydantic import ValidationError

    from workers.settings import Settings

    monkeypatch.setenv("SIGNAL_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7,fd00::/8")
    assert [str(n) for n in Settings().trusted_proxies] == ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]
    monkeypatch.setenv("SIGNAL_TRUSTED_PROXIES", "")
    assert Settings().trusted_proxies == ()
    monkeypatch.setenv("SIGNAL_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "'proxy.local' is not an IP address or CIDR network" in str(info.value)
