"""``prepare`` with an integration's blueprint and its partition_time: removed events, changed lines, hours."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from workers.events.blueprint import parse_blueprint
from workers.events.prepared import Prepared, Removed, prepare
from workers.events.reasons import MISSING_IDENTITY, NOT_SERIALIZABLE, TOO_LARGE
from workers.events.rules import CONSENT_DENIED, FILTERED_OUT, Rules, compile_rules

RECEIVED_AT = datetime(2026, 5, 12, 10, 30, 15, 123456, tzinfo=UTC)
RECEIVED_AT_ISO = "2026-05-12T10:30:15.123Z"
HOUR = "2026051210"
KEY = bytes(range(32))
DAY_S = 86_400


@dataclass
class Partition:
    partition_time: str = "timestamp"
    partition_time_bound_s: int = 7 * DAY_S


def rules(body: dict[str, Any]) -> Rules:
    compiled = compile_rules(parse_blueprint(body), KEY)
    assert compiled is not None
    return compiled


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "anonymous_id": "a-1", **fields}


def run(events: list[Any], *, rules: Rules | None = None, partition: Any = None, max_bytes: int = 32_768) -> Prepared:
    return prepare(
        events, "int-1", received_at=RECEIVED_AT, event_max_bytes=max_bytes, rules=rules, partition=partition
    )


def lines(prepared: Prepared) -> dict[str, list[dict[str, Any]]]:
    return {hour: [orjson.loads(line) for line in group] for hour, group in prepared.lines_by_hour.items()}


def test_without_rules_or_partition_the_result_is_the_same_as_before() -> None:
    events = [track(event_id="e1", timestamp="2026-05-01T01:00:00.000Z"), {"type": "nope"}]
    plain = prepare(events, "int-1", received_at=RECEIVED_AT, event_max_bytes=32_768)
    explicit = run(events, rules=None, partition=Partition(partition_time="received_at"))
    assert plain.lines_by_hour == explicit.lines_by_hour
    assert plain.rejected == explicit.rejected
    assert explicit.removed == [] and explicit.partition_fallback == 0


def test_removed_events_are_reported_with_their_reason_not_as_rejections() -> None:
    bp = rules({"events": {"exclude": ["identify"]}, "consent": {"require": ["analytics"]}})
    events = [
        track(event_id="granted", context={"consent": {"analytics": True}}),
        {"type": "identify", "user_id": "u-1", "event_id": "excluded"},
        track(event_id="denied", context={"consent": {"analytics": False}}),
        track(event_id="missing"),
        {"type": "track", "event": "x", "event_id": "bad"},  # invalid: rejected, whatever the rules would say
    ]
    prepared = run(events, rules=bp)
    assert [orjson.loads(x)["event_id"] for x in prepared.lines_by_hour[HOUR]] == ["granted"]
    assert prepared.accepted == 1
    assert [(r.index, r.reason, r.envelope["event_id"]) for r in prepared.removed] == [
        (1, FILTERED_OUT, "excluded"),
        (2, CONSENT_DENIED, "denied"),
        (3, CONSENT_DENIED, "missing"),
    ]
    assert all(isinstance(r, Removed) and r.envelope["received_at"] == RECEIVED_AT_ISO for r in prepared.removed)
    assert [(r.index, r.reason) for r in prepared.rejected] == [(4, MISSING_IDENTITY)]


def test_rules_see_the_stamped_envelope_and_the_line_is_the_changed_event() -> None:
    bp = rules({"drop_fields": ["context.ip"], "hash_fields": ["user_id", "traits.email"]})
    event = track(
        event_id="e1", user_id="u-1", context={"ip": "10.0.0.1", "locale": "fr"}, traits={"email": "a@example.com"}
    )
    [line] = lines(run([event], rules=bp))[HOUR]
    assert line["context"] == {"locale": "fr"}
    assert line["user_id"] == hmac.new(KEY, b"u-1", hashlib.sha256).hexdigest()
    assert line["traits"]["email"] == hmac.new(KEY, b"a@example.com", hashlib.sha256).hexdigest()
    assert line["received_at"] == RECEIVED_AT_ISO and line["integration_id"] == "int-1"
    assert list(line) == [
        "event_id",
        "type",
        "event",
        "anonymous_id",
        "user_id",
        "received_at",
        "context",
        "traits",
        "integration_id",
    ]
    assert event["context"] == {"ip": "10.0.0.1", "locale": "fr"}  # the input is not modified


def test_the_size_limit_applies_to_the_line_after_the_rules() -> None:
    big = track(event_id="big", context={"blob": "x" * 600})
    assert run([big], max_bytes=500).rejected[0].reason == TOO_LARGE
    prepared = run([big], rules=rules({"drop_fields": ["context.blob"]}), max_bytes=500)
    assert prepared.accepted == 1 and prepared.rejected == []


def test_a_value_to_hash_without_json_text_rejects_that_event_only() -> None:
    prepared = run(
        [
            track(event_id="huge", properties={"n": 2**70}),
            track(event_id="fine", properties={"n": 1}),
            track(event_id="surrogate", properties={"n": "\ud800"}),
        ],
        rules=rules({"hash_fields": ["properties.n"]}),
    )
    assert [(r.index, r.reason, r.event_id) for r in prepared.rejected] == [
        (0, NOT_SERIALIZABLE, "huge"),
        (2, NOT_SERIALIZABLE, "surrogate"),
    ]
    assert [x["event_id"] for x in lines(prepared)[HOUR]] == ["fine"]


def test_partition_time_timestamp_groups_by_the_events_own_hour() -> None:
    events = [
        track(event_id="late", timestamp="2026-05-10T23:59:59.999Z"),
        track(event_id="now", timestamp="2026-05-12T10:00:00Z"),
        track(event_id="none"),
        track(event_id="other-zone", timestamp="2026-05-11T01:30:00+02:00"),
    ]
    prepared = run(events, partition=Partition())
    assert {h: [x["event_id"] for x in group] for h, group in lines(prepared).items()} == {
        "2026051023": ["late", "other-zone"],
        HOUR: ["now", "none"],
    }
    assert prepared.indexes_by_hour == {"2026051023": [0, 3], HOUR: [1, 2]}
    assert prepared.partition_fallback == 0


@pytest.mark.parametrize("timestamp", ["2026-05-05T10:30:15.122Z", "2026-05-19T10:30:15.124Z", "1999-01-01T00:00:00Z"])
def test_a_timestamp_outside_the_bound_goes_to_the_received_hour_and_is_counted(timestamp: str) -> None:
    prepared = run(
        [track(event_id="far", timestamp=timestamp), track(event_id="in", timestamp="2026-05-05T11:00:00Z")],
        partition=Partition(),
    )
    assert {h: [x["event_id"] for x in group] for h, group in lines(prepared).items()} == {
        HOUR: ["far"],
        "2026050511": ["in"],
    }
    assert prepared.partition_fallback == 1


def test_the_bound_is_the_configs() -> None:
    prepared = run([track(timestamp="2026-05-12T08:30:15.123Z")], partition=Partition(partition_time_bound_s=3600))
    assert list(prepared.lines_by_hour) == [HOUR] and prepared.partition_fallback == 1
    prepared = run([track(timestamp="2026-05-12T08:30:15.123Z")], partition=Partition(partition_time_bound_s=7200))
    assert list(prepared.lines_by_hour) == ["2026051208"] and prepared.partition_fallback == 0


def test_received_at_partitioning_ignores_the_timestamp() -> None:
    prepared = run([track(timestamp="2026-05-10T23:00:00Z")], partition=Partition(partition_time="received_at"))
    assert list(prepared.lines_by_hour) == [HOUR] and prepared.partition_fallback == 0


def test_removed_and_rejected_events_are_not_counted_outside_the_bound() -> None:
    far = "2020-01-01T00:00:00Z"
    prepared = run(
        [
            track(timestamp=far, context={"consent": {"ads": False}}),
            track(timestamp=far, context={"consent": {"ads": True}, "blob": "x" * 600}),
        ],
        rules=rules({"consent": {"require": ["ads"]}, "events": {"include": ["Order Completed"]}}),
        partition=Partition(),
        max_bytes=500,
    )
    assert prepared.partition_fallback == 0 and prepared.accepted == 0
    assert [r.reason for r in prepared.removed] == [CONSENT_DENIED]
    assert [r.reason for r in prepared.rejected] == [TOO_LARGE]
