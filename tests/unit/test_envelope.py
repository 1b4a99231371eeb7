"""The canonical envelope: what is accepted, what is rejected and why, and the exact line written."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from workers.events.envelope import CANONICAL_ORDER
from workers.events.prepared import Prepared, Rejection, prepare
from workers.events.reasons import REASONS

RECEIVED_AT = datetime(2026, 5, 12, 10, 30, 15, 123456, tzinfo=UTC)
RECEIVED_AT_ISO = "2026-05-12T10:30:15.123Z"
HOUR = "2026051210"
MAX_BYTES = 32_768


def track(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"type": "track", "event": "order_completed", "anonymous_id": "anon-1"}
    event.update(fields)
    return event


def run(events: list[Any], *, integration_id: str = "int-1", event_max_bytes: int = MAX_BYTES) -> Prepared:
    return prepare(events, integration_id, received_at=RECEIVED_AT, event_max_bytes=event_max_bytes)


def only_line(prepared: Prepared) -> dict[str, Any]:
    assert prepared.rejected == []
    assert prepared.accepted == 1
    [lines] = prepared.lines_by_hour.values()
    [line] = lines
    return orjson.loads(line)


def event_ids_by_hour(prepared: Prepared) -> dict[str, list[str]]:
    return {hour: [orjson.loads(line)["event_id"] for line in lines] for hour, lines in prepared.lines_by_hour.items()}


def only_rejection(prepared: Prepared) -> Rejection:
    assert prepared.accepted == 0
    assert prepared.lines_by_hour == {}
    [rejection] = prepared.rejected
    return rejection


# --- accepted events and stamping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"type": "track", "event": "Signed Up", "user_id": "u1"},
        {"type": "page", "anonymous_id": "a1", "name": "Home"},
        {"type": "page", "anonymous_id": "a1"},
        {"type": "screen", "user_id": "u1", "name": "Settings"},
        {"type": "identify", "user_id": "u1", "traits": {"email": "x@example.com"}},
        {"type": "group", "user_id": "u1", "group_id": "g1", "traits": {"plan": "pro"}},
        {"type": "alias", "user_id": "u1", "previous_id": "a1"},
    ],
)
def test_every_event_type_is_accepted(event: dict[str, Any]) -> None:
    line = only_line(run([event]))
    assert line["type"] == event["type"]
    for key, value in event.items():
        assert line[key] == value


def test_missing_received_at_and_event_id_are_stamped_and_integration_id_is_set() -> None:
    line = only_line(run([track()], integration_id="int-42"))
    assert line["received_at"] == RECEIVED_AT_ISO
    stamped = uuid.UUID(line["event_id"])
    assert str(stamped) == line["event_id"]
    assert stamped.version == 4
    assert stamped.variant == uuid.RFC_4122
    assert line["integration_id"] == "int-42"


def test_stamped_event_ids_are_unique() -> None:
    prepared = run([track() for _ in range(1000)])
    ids = {orjson.loads(line)["event_id"] for line in prepared.lines_by_hour[HOUR]}
    assert len(ids) == 1000


def test_client_event_id_and_received_at_are_kept() -> None:
    line = only_line(run([track(event_id="evt-1", received_at="2026-05-12T09:59:59.999Z")]))
    assert line["event_id"] == "evt-1"
    assert line["received_at"] == "2026-05-12T09:59:59.999Z"


def test_integration_id_from_the_event_is_overwritten() -> None:
    line = only_line(run([track(integration_id="someone-else")], integration_id="int-1"))
    assert line["integration_id"] == "int-1"


def test_one_received_at_for_the_whole_call() -> None:
    prepared = run([track(), track(), track()])
    assert {orjson.loads(line)["received_at"] for line in prepared.lines_by_hour[HOUR]} == {RECEIVED_AT_ISO}


def test_line_is_compact_json_without_newline_in_canonical_key_order_then_extras() -> None:
    event = {
        "zz_extra": 1,
        "integration_id": "ignored",
        "source_id": "src",
        "traits": {"b": 1, "a": 2},
        "properties": {"revenue": 10},
        "context": {"ip": "203.0.113.1"},
        "sent_at": "2026-05-12T10:00:01.000Z",
        "received_at": "2026-05-12T10:00:02.000Z",
        "timestamp": "2026-05-12T10:00:00.000Z",
        "previous_id": "p",
        "group_id": "g",
        "user_id": "u",
        "anonymous_id": "a",
        "name": "n",
        "event": "e",
        "type": "track",
        "event_id": "id-1",
        "aa_extra": {"nested": True},
    }
    prepared = run([event])
    [line] = prepared.lines_by_hour["2026051210"]
    assert b"\n" not in line
    assert orjson.dumps(orjson.loads(line)) == line  # compact
    assert list(orjson.loads(line)) == [*CANONICAL_ORDER, "zz_extra", "aa_extra"]
    assert line.startswith(b'{"event_id":"id-1","type":"track","event":"e","name":"n","anonymous_id":"a",')
    assert line.endswith(b'"source_id":"src","integration_id":"int-1","zz_extra":1,"aa_extra":{"nested":true}}')


def test_absent_optional_fields_are_not_written() -> None:
    line = only_line(run([{"type": "page", "user_id": "u1"}]))
    assert list(line) == ["event_id", "type", "user_id", "received_at", "integration_id"]


def test_null_canonical_fields_count_as_absent() -> None:
    event = track(
        user_id=None, event_id=None, received_at=None, timestamp=None, context=None, name=None, source_id=None
    )
    line = only_line(run([event]))
    assert list(line) == ["event_id", "type", "event", "anonymous_id", "received_at", "integration_id"]
    assert line["received_at"] == RECEIVED_AT_ISO
    uuid.UUID(line["event_id"])


def test_unicode_is_kept_as_utf8() -> None:
    event = track(event="commande passée ✓", properties={"ville": "Zürich", "emoji": "🚀", "名前": "テスト"})
    prepared = run([event])
    [line] = prepared.lines_by_hour[HOUR]
    assert "🚀".encode() in line
    parsed = orjson.loads(line)
    assert parsed["event"] == "commande passée ✓"
    assert parsed["properties"] == {"ville": "Zürich", "emoji": "🚀", "名前": "テスト"}


def test_nested_values_are_written_unchanged() -> None:
    properties = {"items": [{"sku": "A", "price": 9.99, "qty": 2}], "flag": False, "none": None, "big": 2**63 - 1}
    line = only_line(run([track(properties=properties)]))
    assert line["properties"] == properties


def test_input_events_are_not_modified() -> None:
    event = track(timestamp="2026-05-12T12:00:00+02:00")
    before = dict(event)
    run([event])
    assert event == before


# --- grouping by hour ---------------------------------------------------------------------------------------------


def test_lines_are_grouped_by_the_utc_hour_of_received_at_in_input_order() -> None:
    events = [
        track(event_id="a"),  # stamped: 10h
        track(event_id="b", received_at="2026-05-12T09:59:59.999Z"),
        track(event_id="c", received_at="2026-05-12T11:00:00.000Z"),
        track(event_id="d", received_at="2026-05-12T12:30:00+01:00"),  # 11:30 UTC
        track(event_id="e"),
        track(event_id="f", received_at="2026-05-12T10:00:00"),  # naive: UTC
    ]
    prepared = run(events)
    assert prepared.accepted == 6
    assert event_ids_by_hour(prepared) == {"2026051210": ["a", "e", "f"], "2026051209": ["b"], "2026051211": ["c", "d"]}


def test_hour_boundary_across_midnight_and_new_year() -> None:
    events = [
        track(event_id="old", received_at="2025-12-31T23:59:59.999Z"),
        track(event_id="new", received_at="2026-01-01T00:00:00.000Z"),
        track(event_id="shifted", received_at="2026-01-01T00:30:00+01:00"),
    ]
    prepared = run(events)
    assert {hour: len(lines) for hour, lines in prepared.lines_by_hour.items()} == {"2025123123": 2, "2026010100": 1}


def test_call_received_at_in_another_zone_is_converted_to_utc() -> None:
    received_at = datetime(2026, 5, 12, 1, 15, tzinfo=timezone(timedelta(hours=-5)))
    prepared = prepare([track()], "int-1", received_at=received_at, event_max_bytes=MAX_BYTES)
    assert list(prepared.lines_by_hour) == ["2026051206"]
    assert orjson.loads(prepared.lines_by_hour["2026051206"][0])["received_at"] == "2026-05-12T06:15:00.000Z"


def test_naive_call_received_at_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        prepare([track()], "int-1", received_at=datetime(2026, 5, 12, 10), event_max_bytes=MAX_BYTES)


@pytest.mark.parametrize("integration_id", ["", None, 7])
def test_integration_id_must_be_a_non_empty_string(integration_id: Any) -> None:
    with pytest.raises(ValueError, match="integration_id"):
        prepare([track()], integration_id, received_at=RECEIVED_AT, event_max_bytes=MAX_BYTES)


def test_empty_input() -> None:
    prepared = run([])
    assert prepared == Prepared(lines_by_hour={}, rejected=[], accepted=0)


# --- timestamps ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("2026-05-12T10:00:00Z", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12T10:00:00.123Z", "2026-05-12T10:00:00.123Z"),
        ("2026-05-12T10:00:00.123456789Z", "2026-05-12T10:00:00.123Z"),
        ("2026-05-12T10:00:00,5Z", "2026-05-12T10:00:00.500Z"),
        ("2026-05-12T10:00Z", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12T10:00:00", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12 10:00:00", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12t10:00:00z", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12T10:00:00+00:00", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12T12:00:00.250+02:00", "2026-05-12T10:00:00.250Z"),
        ("2026-05-12T05:30:00-0430", "2026-05-12T10:00:00.000Z"),
        ("2026-05-12T15:00:00+05", "2026-05-12T10:00:00.000Z"),
        ("2026-05-13T01:00:00+15:00", "2026-05-12T10:00:00.000Z"),
        ("20260512T100000Z", "2026-05-12T10:00:00.000Z"),
        ("20260512T120000.5+0200", "2026-05-12T10:00:00.500Z"),
        ("2024-02-29T23:59:59.999Z", "2024-02-29T23:59:59.999Z"),
    ],
)
@pytest.mark.parametrize("field", ["timestamp", "sent_at", "received_at"])
def test_timestamps_are_normalised_to_utc_milliseconds(field: str, given: str, normalised: str) -> None:
    line = only_line(run([track(**{field: given})]))
    assert line[field] == normalised


@pytest.fixture
def local_zone_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_not_utc")
def test_naive_timestamps_are_utc_whatever_the_machine_zone() -> None:
    line = only_line(run([track(timestamp="2026-05-12T10:00:00", received_at="2026-05-12T23:30:00.5")]))
    assert line["timestamp"] == "2026-05-12T10:00:00.000Z"
    assert line["received_at"] == "2026-05-12T23:30:00.500Z"
    assert list(run([track(received_at="2026-05-12T23:30:00")]).lines_by_hour) == ["2026051223"]


@pytest.mark.parametrize(
    "given",
    [
        "2026-05-12",  # date only
        "20260512",
        "10:00:00",  # time only
        "2026-05-12T10",  # hour only
        "2026-W19-2T10:00:00",  # week date
        "2026-13-01T10:00:00Z",
        "2026-02-30T10:00:00Z",
        "2025-02-29T10:00:00.000Z",
        "2026-05-12T24:00:00Z",
        "2026-05-12T10:60:00Z",
        "2026-05-12T10:00:61Z",
        "2026-05-12T10:00:00+25:00",
        "2026-05-12x10:00:00",
        " 2026-05-12T10:00:00Z",
        "2026-05-12T10:00:00Z ",
        "２０２６-05-12T10:00:00Z",
        "0999-12-31T23:00:00Z",
        "1000-01-01T00:30:00+01:00",  # before the year 1000 in UTC
        "9999-12-31T23:30:00-01:00",  # past the year 9999 in UTC
        "yesterday",
        "",
        "1715508000",
    ],
)
@pytest.mark.parametrize("field", ["timestamp", "sent_at", "received_at"])
def test_invalid_timestamp_strings_are_rejected(field: str, given: str) -> None:
    rejection = only_rejection(run([track(**{field: given})]))
    assert rejection.reason == "invalid_timestamp"
    assert rejection.detail.startswith(field + " ")
    assert rejection.index == 0


@pytest.mark.parametrize("given", [1715508000, 1715508000.5, True, ["2026-05-12T10:00:00Z"], {"iso": "x"}])
def test_non_string_timestamps_are_rejected(given: Any) -> None:
    rejection = only_rejection(run([track(sent_at=given)]))
    assert rejection.reason == "invalid_timestamp"
    assert "sent_at must be an ISO-8601 date-time string" in rejection.detail


def test_timestamp_detail_does_not_echo_a_long_value() -> None:
    rejection = only_rejection(run([track(timestamp="x" * 5000)]))
    assert rejection.reason == "invalid_timestamp"
    assert len(rejection.detail) < 300


# --- rejections -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "kind"),
    [(None, "null"), ("track", "a string"), (["a"], "an array"), (42, "a number"), (True, "a boolean")],
)
def test_non_object_events_are_rejected(given: Any, kind: str) -> None:
    rejection = only_rejection(run([given]))
    assert rejection == Rejection(0, "not_an_object", f"event must be a JSON object, got {kind}", None)


@pytest.mark.parametrize("given", ["Track", "purchase", "", 1, None, ["track"], {"t": 1}])
def test_unknown_or_missing_type_is_rejected(given: Any) -> None:
    event = {"event": "x", "user_id": "u"}
    if given is not None:
        event["type"] = given
    rejection = only_rejection(run([event]))
    assert rejection.reason == "invalid_type"
    assert rejection.detail.startswith("type ")
    assert "track" in rejection.detail


@pytest.mark.parametrize("given", [None, ""])
def test_track_without_event_name_is_rejected(given: Any) -> None:
    event = track()
    if given is None:
        del event["event"]
    else:
        event["event"] = given
    rejection = only_rejection(run([event]))
    assert rejection.reason == "missing_event"
    assert "event" in rejection.detail and "track" in rejection.detail


def test_event_name_is_optional_for_other_types() -> None:
    line = only_line(run([{"type": "page", "user_id": "u"}]))
    assert "event" not in line


@pytest.mark.parametrize(
    "identity",
    [{}, {"user_id": ""}, {"anonymous_id": ""}, {"user_id": "", "anonymous_id": ""}, {"user_id": None}],
)
def test_event_without_identity_is_rejected(identity: dict[str, Any]) -> None:
    event = {"type": "track", "event": "x", **identity}
    rejection = only_rejection(run([event]))
    assert rejection.reason == "missing_identity"
    assert "user_id" in rejection.detail and "anonymous_id" in rejection.detail


@pytest.mark.parametrize("identity", [{"user_id": "u"}, {"anonymous_id": "a"}, {"user_id": "", "anonymous_id": "a"}])
def test_one_identity_is_enough(identity: dict[str, Any]) -> None:
    only_line(run([{"type": "identify", **identity}]))


@pytest.mark.parametrize(
    "field", ["event_id", "user_id", "anonymous_id", "source_id", "event", "name", "group_id", "previous_id"]
)
@pytest.mark.parametrize(
    ("given", "kind"), [(12, "a number"), (True, "a boolean"), (["x"], "an array"), ({}, "an object")]
)
def test_string_fields_must_be_strings(field: str, given: Any, kind: str) -> None:
    event = track(user_id="u")
    event[field] = given
    rejection = only_rejection(run([event]))
    assert rejection.reason == "invalid_field"
    assert rejection.detail == f"{field} must be a string, got {kind}"


@pytest.mark.parametrize(
    "field", ["event_id", "user_id", "anonymous_id", "source_id", "event", "name", "group_id", "previous_id"]
)
def test_string_fields_are_limited_to_1024_characters(field: str) -> None:
    at_limit = track(user_id="u")
    at_limit[field] = "é" * 1024
    assert only_line(run([at_limit]))[field] == "é" * 1024

    over = track(user_id="u")
    over[field] = "x" * 1025
    rejection = only_rejection(run([over]))
    assert rejection.reason == "invalid_field"
    assert rejection.detail == f"{field} is 1025 characters long, over the limit of 1024"


def test_empty_event_id_is_rejected() -> None:
    rejection = only_rejection(run([track(event_id="")]))
    assert rejection.reason == "invalid_field"
    assert "event_id" in rejection.detail


@pytest.mark.parametrize("field", ["context", "properties", "traits"])
@pytest.mark.parametrize(
    ("given", "kind"), [([], "an array"), ("{}", "a string"), (1, "a number"), (False, "a boolean")]
)
def test_object_fields_must_be_objects(field: str, given: Any, kind: str) -> None:
    rejection = only_rejection(run([track(**{field: given})]))
    assert rejection.reason == "invalid_field"
    assert rejection.detail == f"{field} must be a JSON object, got {kind}"


@pytest.mark.parametrize("field", ["context", "properties", "traits"])
def test_empty_objects_are_kept(field: str) -> None:
    assert only_line(run([track(**{field: {}})]))[field] == {}


@pytest.mark.parametrize(
    "properties",
    [
        {"tags": {"a", "b"}},
        {"amount": Decimal("1.5")},
        {"huge": 2**64},
        {"blob": b"bytes"},
        {1: "non-string key"},
        {"bad": "\ud800"},
    ],
)
def test_values_orjson_cannot_serialise_are_rejected(properties: dict[Any, Any]) -> None:
    rejection = only_rejection(run([track(event_id="evt-9", properties=properties)]))
    assert rejection.reason == "not_serializable"
    assert rejection.event_id == "evt-9"
    assert rejection.detail.startswith("event cannot be serialised as JSON")


def test_unserialisable_extra_top_level_key_is_rejected() -> None:
    event = track()
    event[3] = "x"
    assert only_rejection(run([event])).reason == "not_serializable"


def test_size_limit_applies_to_the_serialised_line() -> None:
    probe = run([track(event_id="evt-1", properties={"pad": ""})])
    base = len(probe.lines_by_hour[HOUR][0])
    limit = 500
    fits = track(event_id="evt-1", properties={"pad": "x" * (limit - base)})
    too_big = track(event_id="evt-2", properties={"pad": "x" * (limit - base + 1)})

    accepted = run([fits], event_max_bytes=limit)
    assert len(accepted.lines_by_hour[HOUR][0]) == limit

    rejection = only_rejection(run([too_big], event_max_bytes=limit))
    assert rejection == Rejection(
        0, "too_large", f"event is {limit + 1} bytes as JSON, over the limit of {limit} bytes", "evt-2"
    )


def test_size_limit_counts_utf8_bytes() -> None:
    probe = run([track(event_id="evt-1", properties={"pad": ""})])
    base = len(probe.lines_by_hour[HOUR][0])
    # "€" is one character but three bytes: ten of them take 30 bytes.
    euros = track(event_id="evt-1", properties={"pad": "€" * 10})
    assert only_rejection(run([euros], event_max_bytes=base + 29)).reason == "too_large"
    assert len(run([euros], event_max_bytes=base + 30).lines_by_hour[HOUR][0]) == base + 30


def test_rejection_carries_the_client_event_id_when_it_is_usable() -> None:
    events = [
        track(event_id="evt-1", type="bogus"),
        track(type="bogus"),
        track(event_id=12, user_id="u"),
        track(event_id="x" * 2000),
    ]
    prepared = run(events)
    assert [(r.index, r.event_id) for r in prepared.rejected] == [(0, "evt-1"), (1, None), (2, None), (3, None)]


def test_details_never_echo_the_event() -> None:
    secret = "very-private-value-0123456789"
    events = [
        {"type": "nope", "properties": {"ssn": secret}},
        track(timestamp="garbage", properties={"ssn": secret}),
        track(properties={"ssn": secret, "s": {1}}),
        track(properties={"ssn": secret, "pad": "x" * 100}),
        track(context=[secret]),
    ]
    prepared = prepare(events, "int-1", received_at=RECEIVED_AT, event_max_bytes=150)
    assert len(prepared.rejected) == 5
    for rejection in prepared.rejected:
        assert secret not in rejection.detail
        assert rejection.reason in REASONS


def test_one_bad_event_never_affects_the_others() -> None:
    events: list[Any] = [
        track(event_id="ok-1"),
        "not an object",
        track(event_id="bad-type", type="purchase"),
        track(event_id="ok-2", received_at="2026-05-12T11:00:00Z"),
        {"type": "track", "event": "x", "event_id": "no-identity"},
        track(event_id="bad-ts", timestamp="soon"),
        track(event_id="bad-props", properties=[]),
        track(event_id="bad-json", properties={"s": {1, 2}}),
        track(event_id="too-big", properties={"pad": "x" * 2000}),
        track(event_id="ok-3"),
        {"type": "track", "anonymous_id": "a", "event_id": "no-event"},
    ]
    prepared = run(events, event_max_bytes=1000)
    assert prepared.accepted == 3
    assert event_ids_by_hour(prepared) == {
        "2026051210": ["ok-1", "ok-3"],
        "2026051211": ["ok-2"],
    }
    assert [(r.index, r.reason, r.event_id) for r in prepared.rejected] == [
        (1, "not_an_object", None),
        (2, "invalid_type", "bad-type"),
        (4, "missing_identity", "no-identity"),
        (5, "invalid_timestamp", "bad-ts"),
        (6, "invalid_field", "bad-props"),
        (7, "not_serializable", "bad-json"),
        (8, "too_large", "too-big"),
        (10, "missing_event", "no-event"),
    ]
    assert prepared.accepted + len(prepared.rejected) == len(events)


def test_rejection_is_immutable() -> None:
    rejection = Rejection(0, "invalid_type", "type is required", None)
    with pytest.raises(AttributeError):
        rejection.reason = "other"  # type: ignore[misc]


def test_indexes_by_hour_follow_lines_by_hour():
    from datetime import UTC, datetime

    from workers.events.prepared import prepare

    events = [
        {"type": "track", "event": "a", "user_id": "u", "received_at": "2026-11-25T10:59:59Z"},
        {"type": "nope"},
        {"type": "page", "user_id": "u", "received_at": "2026-11-25T11:00:00Z"},
        {"type": "track", "event": "b", "user_id": "u", "received_at": "2026-11-25T10:00:00Z"},
    ]
    p = prepare(events, "i", received_at=datetime(2026, 11, 25, 12, tzinfo=UTC), event_max_bytes=32768)
    assert p.indexes_by_hour == {"2026112510": [0, 3], "2026112511": [2]}
    assert [len(v) for v in p.lines_by_hour.values()] == [2, 1]


# --- the one-pass path agrees with the full check ---------------------------------------------------------------


def _varied_events() -> list[Any]:
    from bench.events import make_events

    base = make_events(40, seed=3)
    odd: list[Any] = [
        track(timestamp="2026-05-12T10:00:00Z"),  # valid, not canonical: normalised by the full check
        track(received_at="2026-05-12T12:00:00+02:00"),
        track(received_at="2026-05-12T09:00:00.000Z", sent_at="2026-05-12T09:00:01.000Z"),
        track(sent_at="2026-13-12T09:00:01.000Z"),  # canonical shape, impossible month
        track(timestamp=["not", "hashable"]),
        track(type=["track"]),
        track(user_id={"id": 1}),
        track(event=""),
        track(anonymous_id="", user_id=None),
        track(event_id=""),
        track(context=[1]),
        track(properties=None, traits=None, context=None),
        track(name="x" * 1025),
        track(zz_extra=1, integration_id="someone", aa={"b": True}),
        {"type": "alias", "user_id": "u", "previous_id": "p", "source_id": "s"},
        "not an object",
    ]
    return [*base, *odd, *(dict(e, event_id=f"x-{i}") for i, e in enumerate(base[:5]))]


def test_the_one_pass_path_builds_exactly_what_the_full_check_builds() -> None:
    from workers.events.envelope import _envelope, _fast_envelope

    events = [
        e if not isinstance(e, dict) or "event_id" in e else {**e, "event_id": f"id-{i}"}
        for i, e in enumerate(_varied_events())
    ]
    fast_accepted = 0
    for event in events:
        if not isinstance(event, dict):
            continue
        try:
            fast = _fast_envelope(event, "int-1", RECEIVED_AT_ISO, HOUR, set())
        except TypeError:
            fast = None
        if fast is None:
            continue
        fast_accepted += 1
        full = _envelope(event, "int-1", RECEIVED_AT_ISO, HOUR)
        assert orjson.dumps(fast[0]) == orjson.dumps(full[0]) and fast[1] == full[1]
    assert fast_accepted >= 40  # the realistic events all take the one-pass path
    # and the whole call gives the same lines and rejections as one event at a time
    together = run(events)
    one_by_one = [run([e]) for e in events]
    assert together.accepted == sum(p.accepted for p in one_by_one)
    assert [r.reason for r in together.rejected] == [r.reason for p in one_by_one for r in p.rejected]
    lines = sorted(line for group in together.lines_by_hour.values() for line in group)
    assert lines == sorted(line for p in one_by_one for group in p.lines_by_hour.values() for line in group)
