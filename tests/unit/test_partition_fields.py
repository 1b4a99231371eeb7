"""Partition fields: their values as key segments, slots, grouping and the bound on values per hour."""

from __future__ import annotations

from datetime import UTC, datetime

import fakeredis
import pytest

from workers import clock
from workers.errors import ConfigError
from workers.events import partitions, prepared
from workers.events.message import decode_message, encode_message
from workers.events.partitions import MISSING, OTHER, encode, parse_fields
from workers.integrations.config import parse_config
from workers.store import partition_values

HOUR = "2026120705"
RECEIVED = datetime(2026, 12, 7, 5, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("order_completed", "order_completed"),
        ("Order Completed", "%4Frder%20%43ompleted"),
        ("a/b", "a%2Fb"),
        ("../x", "%2E%2E%2Fx"),
        ("x=y", "x%3Dy"),
        ("", MISSING),
        ("__missing__", "%5F_missing__"),
        ("__other__", "%5F_other__"),
        ("café", "caf%C3%A9"),
        ("100%", "100%25"),
        ("a~b", "a%7Eb"),
    ],
)
def test_a_value_becomes_one_safe_segment(value: str, segment: str) -> None:
    assert encode(value) == segment


def test_long_values_stay_distinct_and_within_64_characters() -> None:
    a, b = "x" * 500 + "a", "x" * 500 + "b"
    assert encode(a) != encode(b)
    assert len(encode(a)) <= 64 and "~" in encode(a)
    assert encode("x" * 64) == "x" * 64  # exactly at the limit: kept as it is
    # a cut never splits a percent escape
    shortened = encode("é" * 100)
    assert shortened.split("~")[0].count("%") * 3 == len(shortened.split("~")[0])
    for text in ("a/b" * 30, "../" * 40, "Z" * 64, "日本語" * 30):
        out = encode(text)
        assert "/" not in out and ".." not in out and "=" not in out and len(out) <= 64


def test_every_kind_of_field_reads_its_value() -> None:
    fields = parse_fields("event, consent.marketing, properties.plan.tier")
    assert [f.name for f in fields] == ["event", "consent_marketing", "properties_plan_tier"]
    track = {
        "type": "track",
        "event": "Signed Up",
        "context": {"consent": {"categoryPreferences": {"marketing": True}}},
        "properties": {"plan": {"tier": "Pro"}},
    }
    assert [f.value(track) for f in fields] == ["%53igned%20%55p", "true", "%50ro"]
    page = {"type": "page", "name": "home", "context": {"consent": {"marketing": "denied"}}, "properties": {}}
    assert [f.value(page) for f in fields] == ["home", "false", MISSING]
    identify = {"type": "identify", "properties": {"plan": {"tier": ["a"]}}}
    assert [f.value(identify) for f in fields] == ["identify", "unknown", OTHER]
    (source, kind, flag, number) = parse_fields(["source_id", "type", "context.flag"]) + parse_fields(["properties.n"])
    event = {"type": "screen", "source_id": "src_1", "context": {"flag": False}, "properties": {"n": 2.5}}
    assert (source.value(event), kind.value(event), flag.value(event), number.value(event)) == (
        "src_1",
        "screen",
        "false",
        "2%2E5",
    )


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        (["event", "type", "source_id", "consent.ads"], "at most 3"),
        (["events"], "is not a field"),
        (["properties"], "is not a field"),
        (["properties.a..b"], "is not a field"),
        (["context.a.b.c.d.e"], "is not a field"),
        (["properties.a-b", "properties.a_b"], "both named 'properties_a_b'"),
        (5, "must be a list"),
        ([1], "must be a list"),
    ],
)
def test_fields_that_cannot_be_used_are_refused_by_name(specs: object, problem: str) -> None:
    with pytest.raises(partitions.FieldsError, match=problem):
        parse_fields(specs)


def test_a_slot_carries_the_hour_and_the_values_and_splits_back() -> None:
    fields = parse_fields(["event", "consent.marketing"])
    slot = partitions.slot(HOUR, fields, {"type": "track", "event": "a/b"})
    assert slot == f"{HOUR}|event=a%2Fb/consent_marketing=unknown"
    assert partitions.is_slot(slot) and not partitions.is_slot(HOUR) and not partitions.is_slot(f"{HOUR}|x")
    hour, values = partitions.split_slot(slot)
    assert (hour, values) == (HOUR, (("event", "a%2Fb"), ("consent_marketing", "unknown")))
    assert partitions.join_slot(hour, values) == slot
    assert partitions.key_path(values) == "event=a%2Fb/consent_marketing=unknown/"
    assert partitions.split_slot(HOUR) == (HOUR, ()) and partitions.key_path(()) == ""


def test_prepare_groups_lines_by_slot_and_regroup_merges_renamed_slots() -> None:
    fields = parse_fields(["event"])
    events = [{"type": "track", "event": name, "anonymous_id": "a"} for name in ("b", "a", "b", "c")]
    ready = prepared.prepare(events, "iid", received_at=RECEIVED, event_max_bytes=10_000, fields=fields)
    assert {s: i for s, i in ready.indexes_by_hour.items()} == {
        f"{HOUR}|event=b": [0, 2],
        f"{HOUR}|event=a": [1],
        f"{HOUR}|event=c": [3],
    }
    prepared.regroup(ready, {f"{HOUR}|event=a": f"{HOUR}|event={OTHER}", f"{HOUR}|event=c": f"{HOUR}|event={OTHER}"})
    assert ready.indexes_by_hour == {f"{HOUR}|event=b": [0, 2], f"{HOUR}|event={OTHER}": [1, 3]}
    assert [len(v) for v in ready.lines_by_hour.values()] == [2, 2] and ready.partition_other == 2


def test_the_bound_admits_values_until_full_and_every_process_decides_alike() -> None:
    r = fakeredis.FakeRedis()
    partition_values.forget()
    hour = clock.hour_of(clock.now())
    asked = [(hour, "event", f"e{i}") for i in range(5)]
    assert partition_values.admit(r, "iid", asked, 3) == {a: i < 3 for i, a in enumerate(asked)}
    partition_values.forget()  # another process, knowing nothing yet
    again = partition_values.admit(r, "iid", [asked[4], asked[1], (hour, "other_field", "e4")], 3)
    assert again == {asked[4]: False, asked[1]: True, (hour, "other_field", "e4"): True}
    assert partition_values.admit(r, "iid", [asked[4]], 5) == {asked[4]: True}  # a larger bound: asked again
    assert r.scard(f"sig:{{iid}}:pvals:{hour}:event") == 4


def test_a_set_lives_as_long_as_its_hour_can_receive_events_and_processes_forget_with_it(monkeypatch) -> None:
    now = clock.now_ms()
    hour = clock.hour_of_ms(now)
    end = (now // 3_600_000 + 1) * 3_600_000
    day = partition_values.AFTER_LAST_EVENT_MS
    assert partition_values.expires_at_ms(hour, 0, now) == end + day
    assert partition_values.expires_at_ms(hour, 7 * 86_400_000, now) == end + 7 * 86_400_000 + day
    # an hour long past (an event's own received_at) still gets a set that lives a while
    assert partition_values.expires_at_ms("2020010100", 0, now) == now + partition_values.MIN_LIFE_MS
    r = fakeredis.FakeRedis()
    partition_values.forget()
    partition_values.admit(r, "iid", [(hour, "event", "a")], 1, late_ms=3_600_000)
    assert abs(r.pexpiretime(f"sig:{{iid}}:pvals:{hour}:event") - (end + 3_600_000 + day)) <= 1
    # once the set is gone, a process that decided before asks again instead of trusting its memory
    r.delete(f"sig:{{iid}}:pvals:{hour}:event")
    monkeypatch.setattr(clock, "now_ms", lambda: end + 3_600_000 + day + 1)
    assert partition_values.admit(r, "iid", [(hour, "event", "b"), (hour, "event", "a")], 1) == {
        (hour, "event", "b"): True,
        (hour, "event", "a"): False,
    }


def test_a_message_carries_other_only_when_some_events_went_there() -> None:
    events = [{"type": "track", "event": "a", "anonymous_id": "x"}]
    ready = prepared.prepare(events, "iid", received_at=RECEIVED, event_max_bytes=10_000, fields=parse_fields("event"))
    assert "other" not in encode_message(ready)  # read by ingest workers of the version before
    prepared.regroup(ready, {f"{HOUR}|event=a": f"{HOUR}|event={OTHER}"})
    assert encode_message(ready)["other"] == 1 and decode_message(encode_message(ready)).partition_other == 1


def test_fields_whose_keys_could_pass_s3s_limit_are_refused() -> None:
    base = {"bucket": "my-bucket", "region": "us-east-1", "access_key_id": "AKIAIOSFODNN7EXAMPLE"}
    base["secret_access_key"] = "x" * 40
    with pytest.raises(ConfigError) as refused:
        parse_config({**base, "prefix": "p" * 899 + "/", "partition_fields": ["event"]})
    [error] = refused.value.errors
    assert error["field"] == "config.partition_fields" and "over S3's limit of 1024" in error["message"]
    with pytest.raises(ConfigError, match="at most 64"):
        parse_config({**base, "partition_fields": ["properties." + "a" * 64]})
    assert parse_config({**base, "prefix": "p" * 600 + "/", "partition_fields": ["event", "type"]}).partition_by
