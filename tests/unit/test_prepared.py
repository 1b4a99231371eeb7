"""Prepared events on the wire (``signal.append``): encode/decode round trip, counts, and bad messages refused."""

from __future__ import annotations

import base64
import json
import zlib
from datetime import UTC, datetime

import fakeredis
import orjson
import pytest
from kombu import Connection

from tests.support.fleet import lines_of
from workers.events import prepared
from workers.events.message import (
    BadMessage,
    Message,
    count_events,
    decode_message,
    describe_message,
    encode_message,
    message_of,
)
from workers.integrations import registry
from workers.pipeline import ingest
from workers.queue import wire
from workers.queue.producer import Broker
from workers.settings import Settings
from workers.store import buffer, keys

NOW = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
SETTINGS = Settings(redis_url="memory://")


def lines_by_hour(message: Message) -> dict[str, list[bytes]]:
    return {hour: lines_of([text]) for hour, text in message.texts_by_hour.items()}


def event(i: int, **fields: object) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "type": "track",
        "event": "Order Completed",
        "anonymous_id": f"a{i}",
        "properties": {"note": 'line\nbreak "quoted" é', "n": i},
        **fields,
    }


MIXED = [
    event(0),
    {"type": "nope", "anonymous_id": "a", "event_id": "bad-type"},
    event(2, received_at="2026-11-27T14:59:59.000Z"),  # another hour
    "not an object",
    event(4),
]


def wire_round_trip(message: dict) -> object:
    """What the worker gets: the message through JSON as the broker carries it."""
    return orjson.loads(orjson.dumps(message))


def test_a_prepared_message_decodes_to_the_lines_indexes_and_rejections_prepare_made():
    p = prepared.prepare(MIXED, "int-1", received_at=NOW, event_max_bytes=32 * 1024)
    message = decode_message(wire_round_trip(encode_message(p)))
    assert lines_by_hour(message) == p.lines_by_hour  # byte for byte, newlines inside events included
    assert message.indexes_by_hour == p.indexes_by_hour == {"2026112715": [0, 4], "2026112714": [2]}
    assert message.rejected == p.rejected
    assert [(rj.index, rj.reason, rj.event_id) for rj in message.rejected] == [
        (1, "invalid_type", "bad-type"),
        (3, "not_an_object", None),
    ]
    assert (message.accepted, message.events) == (3, 5)
    assert message.live == [
        (0, "2026112715", "e0", "track", "Order Completed", "2026-11-27T15:30:00.000Z"),
        (1, "2026112715", "e4", "track", "Order Completed", "2026-11-27T15:30:00.000Z"),
        (2, "2026112714", "e2", "track", "Order Completed", "2026-11-27T14:59:59.000Z"),
    ]


def test_a_worker_that_prepares_gets_the_message_the_wire_would_give():
    p = prepared.prepare(MIXED, "int-1", received_at=NOW, event_max_bytes=32 * 1024)
    assert message_of(p) == decode_message(wire_round_trip(encode_message(p)))


def test_a_message_with_nothing_accepted_carries_its_rejections():
    p = prepared.prepare([1, 2], "int-1", received_at=NOW, event_max_bytes=32 * 1024)
    encoded = encode_message(p)
    message = decode_message(wire_round_trip(encoded))
    assert (message.accepted, message.events, message.live) == (0, 2, [])
    assert describe_message(encoded) == "<2 events: 0 prepared, 2 rejected, 0 removed>"


def test_the_description_and_count_are_numbers_only():
    encoded = encode_message(prepared.prepare(MIXED, "int-1", received_at=NOW, event_max_bytes=32 * 1024))
    assert describe_message(encoded) == "<5 events: 3 prepared, 2 rejected, 0 removed>"
    assert count_events(encoded) == 5
    assert count_events("garbage") == count_events({"indexes": 3}) == 1


def test_live_events_are_the_last_accepted_lines_in_the_order_they_are_appended():
    old = [event(i, received_at="2026-11-27T14:00:00.000Z") for i in range(30)]
    new = [event(i) for i in range(30, 150)]
    p = prepared.prepare(old + new, "int-1", received_at=NOW, event_max_bytes=32 * 1024)
    message = decode_message(wire_round_trip(encode_message(p)))
    records = ingest._live_records(message.live, 1234)
    assert sorted(records) == list(range(150 - buffer.LIST_MAX, 150))
    first = orjson.loads(records[150 - buffer.LIST_MAX] + b"0}")
    assert first == {
        "event_id": f"e{150 - buffer.LIST_MAX}",
        "type": "track",
        "event": "Order Completed",
        "received_at": "2026-11-27T15:30:00.000Z",
        "at_ms": 1234,
        "hour": "2026112715",
        "gen": 0,
    }
    small = encode_message(prepared.prepare([old[0], new[0]], "int-1", received_at=NOW, event_max_bytes=1 << 15))
    small_message = decode_message(small)
    live = ingest._live_records(small_message.live, 1)
    assert [orjson.loads(live[p] + b"0}")["hour"] for p in (0, 1)] == ["2026112714", "2026112715"]


def good() -> dict:
    return wire_round_trip(encode_message(prepared.prepare(MIXED, "int-1", received_at=NOW, event_max_bytes=32 * 1024)))


def test_a_version_1_message_of_a_producer_not_yet_upgraded_is_read_as_before():
    message = good()
    assert message["v"] == 2
    assert decode_message({**message, "v": 1}) == decode_message(message)


def broken(change) -> dict:
    message = good()
    change(message)
    return message


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (["int-1", []], "expected a JSON object, got list"),
        (broken(lambda m: m.pop("live")), "missing keys ['live']"),
        (broken(lambda m: m.update(extra=1)), "unknown keys ['extra']"),
        (broken(lambda m: m.update(v=3)), "version 3"),
        (broken(lambda m: m.update(v=True)), "version True"),
        (broken(lambda m: m["indexes"].pop("2026112714")), "hours and indexes must be objects with the same hours"),
        (
            broken(lambda m: m["indexes"]["2026112715"].append(9)),
            "hours['2026112715'] has 2 lines: indexes['2026112715'] must list as many integers",
        ),
        (
            broken(lambda m: m["hours"].update({"2026112715": m["hours"]["2026112715"] + "\n"})),
            "must be non-empty lines of JSON objects",
        ),
        (broken(lambda m: m["hours"].update({"2026112715": ""})), "must be non-empty lines of JSON objects"),
        (broken(lambda m: m["hours"].update({"2026112715": 3})), "must be non-empty lines of JSON objects"),
        (
            broken(lambda m: (m["hours"].update({"2026-11-27": "{}"}), m["indexes"].update({"2026-11-27": [0]}))),
            "hour '2026-11-27' is not YYYYMMDDHH",
        ),
        (broken(lambda m: m["rejected"].append([1, "x"])), "rejected must list [index, reason, detail, event_id"),
        (broken(lambda m: m["live"][0].__setitem__(0, 3)), "live must list at most 100 [position below 3"),
        (broken(lambda m: m["live"].extend(m["live"] * 100)), "live must list at most 100"),
        (broken(lambda m: m["hours"].update({"2026112715": b'{"a":1}\n\n{"b":2}'})), "non-empty lines of JSON objects"),
        (broken(lambda m: m["hours"].update({"2026112715": b'{"a":1}\n {"b":2}'})), "non-empty lines of JSON objects"),
        (broken(lambda m: m["live"][0].__setitem__(1, "2026010100")), "live must list"),
        (broken(lambda m: m.update(removed={"consent_denied": 0})), "removed must map each reason to a positive count"),
        (
            broken(
                lambda m: m["removed_live"].append(["e9", "track", None, "2026-11-27T15:30:00.000Z", "filtered_out"])
            ),
            "removed_live must list at most 100 [event_id, type, event, received_at, reason in removed]",
        ),
        (broken(lambda m: m.update(fallback=4)), "fallback must be a count of the message's lines (0 to 3)"),
    ],
)
def test_a_message_of_another_form_is_refused_with_what_is_wrong(message, problem):
    with pytest.raises(BadMessage) as caught:
        decode_message(message)
    assert problem in str(caught.value)
    assert str(caught.value).startswith("not a prepared message (version 2): ")


# -- the two paths into the same append ---------------------------------------------------------------------------


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def install(r: fakeredis.FakeRedis) -> str:
    return registry.install(
        r,
        {
            "name": "S3",
            "config": {
                "bucket": "signal-events",
                "region": "us-east-1",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
        },
    ).id


def buffered(r: fakeredis.FakeRedis, iid: str) -> list[dict]:
    hours = [h.decode() for h in r.zrange(keys.open_index(iid), 0, -1)]
    return [orjson.loads(line) for h in sorted(hours) for line in lines_of(r.lrange(keys.buffer(iid, h), 0, -1))]


def stats(r: fakeredis.FakeRedis, iid: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in r.hgetall(keys.stats(iid)).items()}


def test_a_list_of_events_is_prepared_then_appended_like_a_prepared_message(r):
    iid = install(r)
    result = ingest.ingest(r, iid, MIXED, message_id="m1", settings=SETTINGS)
    assert result.accepted == 3 and [rj["index"] for rj in result.rejected] == [1, 3]
    assert sorted(e["event_id"] for e in buffered(r, iid)) == ["e0", "e2", "e4"]
    assert all(e["integration_id"] == iid for e in buffered(r, iid))
    assert stats(r, iid)["rejected:invalid_type"] == stats(r, iid)["rejected:not_an_object"] == 1
    records = [orjson.loads(x) for x in r.lrange(keys.rejections(iid), 0, -1)]
    assert {(x["index"], x["reason"]) for x in records} == {(1, "invalid_type"), (3, "not_an_object")}
    live = [orjson.loads(x) for x in r.lrange(keys.live(iid), 0, -1)]
    assert sorted(x["event_id"] for x in live) == ["e0", "e2", "e4"]
    assert ingest.ingest(r, iid, MIXED, message_id="m1", settings=SETTINGS).duplicate


def test_a_redelivered_prepared_message_appends_nothing_twice(r):
    iid = install(r)
    message = good()
    first = ingest.append(r, iid, decode_message(message), message_id="m1", settings=SETTINGS)
    again = ingest.append(r, iid, decode_message(message), message_id="m1", settings=SETTINGS)
    assert (first.accepted, first.duplicate) == (3, False)
    assert (again.accepted, again.duplicate) == (0, True)
    assert len(buffered(r, iid)) == 3
    assert stats(r, iid)["rejected:invalid_type"] == 1


def test_a_prepared_message_for_a_disabled_or_unknown_integration_is_refused(r):
    iid = install(r)
    registry.set_enabled(r, iid, False)
    with pytest.raises(registry.IntegrationDisabled):
        ingest.append(r, iid, decode_message(good()), message_id="m1", settings=SETTINGS)
    with pytest.raises(registry.UnknownIntegration):
        ingest.append(r, "nobody", decode_message(good()), message_id="m2", settings=SETTINGS)
    assert buffered(r, iid) == [] and r.exists(keys.stats(iid)) == 0


def test_lines_over_the_buffer_cap_are_refused_with_their_event_ids(r):
    iid = install(r)
    capped = Settings(redis_url="memory://", buffer_max_bytes=300)
    result = ingest.append(r, iid, decode_message(good()), message_id="m1", settings=capped)
    full = [rj for rj in result.rejected if rj["reason"] == "buffer_full"]
    assert result.accepted + len(full) == 3 and full
    assert {rj["event_id"] for rj in full} | {e["event_id"] for e in buffered(r, iid)} == {"e0", "e2", "e4"}
    assert {rj["index"] for rj in full} <= {0, 2, 4}


# -- the producer -------------------------------------------------------------------------------------------------


def take(queue: str = "ingest") -> dict:
    with Connection("memory://") as conn:
        return conn.default_channel._get(queue)


def test_the_api_publishes_prepared_events_that_show_only_ids_and_counts(r):
    iid = install(r)
    with Connection("memory://") as conn:
        conn.default_channel.queue_purge("ingest")  # the in-memory transport is shared by every test of the process
    broker = Broker(SETTINGS)
    try:
        task_id = ingest.publish(r, broker, iid, MIXED, settings=SETTINGS)
        raw = take()
        unknown_id = ingest.publish(
            r, broker, "nobody", MIXED, settings=SETTINGS
        )  # not preparable here: sent as it came, the worker refuses it
        legacy = take()
    finally:
        broker.close()
    headers = raw["headers"]
    assert headers["id"] == task_id and headers["task"] == "signal.append"
    assert headers["argsrepr"] == f"('{iid}', '<5 events: 3 prepared, 2 rejected, 0 removed>')"
    assert "Order Completed" not in json.dumps(headers) and "note" not in json.dumps(headers)
    assert raw["content-type"] == "application/x-signal-prepared" and raw["content-encoding"] == "binary"
    assert headers["compression"] == "application/x-gzip"  # no text large enough to be compressed alone
    body = zlib.decompress(base64.b64decode(raw["body"]))  # stdlib zlib reads it
    header, _, texts = body.partition(b"\n")  # a JSON header, then the lines as they are stored
    args = wire.load_prepared(body)[0]
    assert args[0] == iid
    message = decode_message(args[1])
    texts_by_hour = message.texts_by_hour
    assert b"".join(texts_by_hour.values()) == texts and b'line\\nbreak \\"quoted\\"' in texts  # as stored
    assert json.loads(header)[0][1]["hours"] == {hour: len(text) for hour, text in texts_by_hour.items()}
    assert sorted(orjson.loads(x)["event_id"] for xs in lines_by_hour(message).values() for x in xs) == [
        "e0",
        "e2",
        "e4",
    ]
    assert legacy["headers"]["id"] == unknown_id and legacy["headers"]["task"] == "signal.ingest"
    assert legacy["headers"]["argsrepr"] == "('nobody', '<5 items>')"
