"""Task messages on the broker: standard JSON (orjson), each body parsed once, ingest bodies compressed."""

from __future__ import annotations

import base64
import json
import zlib

import orjson
import pytest
from kombu import Connection, compression, serialization
from kombu.exceptions import DecodeError, EncodeError

from workers.events.message import BadMessage, count_events, decode_message, encode_message
from workers.queue import wire
from workers.queue.producer import Broker
from workers.settings import Settings
from workers.store import elements

EVENTS = [{"type": "track", "event": "é", "anonymous_id": "a", "properties": {"n": 1.5}}] * 3


def test_task_bodies_are_plain_json_read_and_written_by_orjson():
    wire.install()
    body = [["int-1", EVENTS], {}, {"callbacks": None}]
    content_type, encoding, payload = serialization.dumps(body, serializer="json")
    assert (content_type, encoding) == ("application/json", "utf-8")
    assert json.loads(payload) == body  # any JSON producer reads it, and...
    assert serialization.loads(json.dumps(body), content_type, encoding) == body  # ...we read any JSON producer's


def test_the_same_body_is_parsed_once_and_another_body_afresh():
    decode = wire._DecodeOnce()
    body = json.dumps([["int-1", EVENTS], {}, {}]).encode()
    first = decode(body)
    assert decode(body) is first  # Celery's second decode of the same message bytes
    equal_copy = bytes(bytearray(body))
    again = decode(equal_copy)
    assert again == first and again is not first  # a new message is always parsed
    assert decode(b'{"a": 1}') == {"a": 1}


def test_ingest_messages_are_standard_zlib_any_consumer_reads_and_show_only_ids_and_counts():
    broker = Broker(Settings(redis_url="memory://"))
    with Connection("memory://") as conn:
        conn.default_channel.queue_purge("ingest")  # the in-memory transport is shared by every test of the process
    try:
        task_id = broker.ingest("int-1", EVENTS)
        with Connection("memory://") as conn:
            raw = conn.default_channel._get("ingest")
    finally:
        broker.close()
    headers = raw["headers"]
    assert headers["id"] == task_id and headers["task"] == "signal.ingest"
    assert headers["compression"] == "application/x-gzip"
    assert headers["argsrepr"] == "('int-1', '<3 items>')" and headers["kwargsrepr"] == "{}"
    assert "properties" not in json.dumps(headers)
    body = base64.b64decode(raw["body"])
    assert json.loads(zlib.decompress(body))[0] == ["int-1", EVENTS]  # stdlib zlib + json: nothing custom on the wire
    assert len(body) < len(json.dumps(EVENTS))


def test_compressed_bodies_of_other_producers_are_read():
    wire.install()
    body = json.dumps([["int-1", EVENTS], {}, {}]).encode()
    stdlib = zlib.compress(body, 6)
    assert compression.decompress(stdlib, "application/x-gzip") == body
    assert zlib.decompress(compression.compress(body, "zlib")[0]) == body


# -- signal.append's own form: the lines as raw bytes -----------------------------------------------------------------


def prepared_message() -> dict:
    from datetime import UTC, datetime

    from workers.events import prepared

    events = [
        {
            "event_id": f"e{i}",
            "type": "track",
            "event": 'é\n"x"',
            "anonymous_id": "a",
            "received_at": f"2026-11-27T1{4 + i % 2}:00:00.000Z",
        }
        for i in range(5)
    ] + ["not an object"]
    return encode_message(
        prepared.prepare(events, "int-1", received_at=datetime(2026, 11, 27, 15, tzinfo=UTC), event_max_bytes=32768)
    )


def test_a_prepared_message_round_trips_with_its_lines_as_the_bytes_prepare_made():

    wire.install()
    message = prepared_message()
    body = [["int-1", message], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    content_type, encoding, payload = serialization.dumps(body, serializer=wire.PREPARED)
    assert (content_type, encoding) == ("application/x-signal-prepared", "binary")
    assert b"\\u" not in payload and '"é\\n\\"x\\""'.encode() in payload  # each line once, not escaped again
    args, kwargs, embed = serialization.loads(payload, content_type, encoding, accept=[content_type])
    assert (args[0], kwargs, embed) == ("int-1", {}, body[2])
    assert all(type(text) is bytes for text in args[1]["hours"].values())
    assert decode_message(args[1]) == decode_message(orjson.loads(orjson.dumps(message)))  # what JSON gives
    assert len(args[1]["hours"]) == 2 and decode_message(args[1]).accepted == 5
    # a retry sends the decoded arguments (texts as bytes) again, in the same form
    assert serialization.dumps([args, kwargs, embed], serializer=wire.PREPARED)[2] == payload


def large_prepared():
    """200 events of one hour: a text over ``elements.MIN_BYTES``."""
    from datetime import UTC, datetime

    from workers.events import prepared

    events = [
        {"event_id": f"e{i}", "type": "track", "event": "Order Completed", "anonymous_id": "a"} for i in range(200)
    ]
    return prepared.prepare(events, "int-1", received_at=datetime(2026, 11, 27, 15, tzinfo=UTC), event_max_bytes=32768)


def test_large_texts_travel_as_gzip_members_that_the_worker_appends_as_they_are():
    import gzip

    wire.install()
    message = encode_message(large_prepared())
    [(hour, text)] = message["hours"].items()
    assert len(text) > elements.MIN_BYTES
    payload = serialization.dumps([["int-1", message], {}, {}], serializer=wire.PREPARED)[2]
    header, _, member = payload.partition(b"\n")
    assert gzip.decompress(member) == text.encode()  # stdlib gzip reads it: nothing custom in the text
    assert json.loads(header)[0][1]["hours"] == {hour: len(member)} and len(member) < len(text) / 5
    args = serialization.loads(payload, wire.PREPARED_CONTENT_TYPE, "binary")[0]
    decoded = decode_message(args[1])
    assert decoded.texts_by_hour == {hour: member} and decoded.accepted == 200  # counted by its indexes
    assert serialization.dumps([args, {}, {}], serializer=wire.PREPARED)[2] == payload  # a retry sends it again so
    small = prepared_message()
    small_payload = serialization.dumps([["int-1", small], {}, {}], serializer=wire.PREPARED)[2]
    assert b"\x1f\x8b" not in small_payload  # texts under MIN_BYTES stay text


def test_the_api_sends_a_large_message_without_kombus_compression_and_a_retry_of_version_1_as_text():
    wire.install()
    p = large_prepared()
    broker = Broker(Settings(redis_url="memory://"))
    with Connection("memory://") as conn:
        conn.default_channel.queue_purge("ingest")  # the in-memory transport is shared by every test of the process
    try:
        broker.append("int-1", p)
        with Connection("memory://") as conn:
            raw = conn.default_channel._get("ingest")
    finally:
        broker.close()
    assert "compression" not in raw["headers"]
    body = base64.b64decode(raw["body"])
    assert body.partition(b"\n")[2][:3] == b"\x1f\x8b\x08"  # the hour's text: one gzip member
    # a version 1 message (queued by a producer of the version before) sent again by a retry keeps its text as text:
    # an ingest worker of that version may take it
    v1 = {**encode_message(p), "v": 1}
    assert not wire.worth_compressing(v1)
    payload = serialization.dumps([["int-1", v1], {}, {}], serializer=wire.PREPARED)[2]
    assert payload.partition(b"\n")[2] == v1["hours"][next(iter(v1["hours"]))].encode()


@pytest.mark.parametrize("indexes", [[], None, "0", list(range(5000))])  # 2,001 lines of 6,002 bytes
def test_a_gzip_text_needs_indexes_to_count_its_lines(indexes):
    message = prepared_message()
    hour = next(iter(message["hours"]))
    message["hours"][hour] = elements.compress(("{}\n" * 2000 + "{}").encode())
    message["indexes"][hour] = indexes
    with pytest.raises(BadMessage, match="gzip member"):
        decode_message(message)


def test_json_signal_append_messages_of_any_producer_are_still_read():

    wire.install()
    message = prepared_message()
    args = serialization.loads(json.dumps([["int-1", message], {}, {}]), "application/json", "utf-8")[0]
    assert decode_message(args[1]) == decode_message(
        serialization.loads(
            serialization.dumps([["int-1", message], {}, {}], serializer=wire.PREPARED)[2],
            wire.PREPARED_CONTENT_TYPE,
            "binary",
        )[0][1]
    )


@pytest.mark.parametrize(
    "payload",
    [
        b"not json\n{}",
        b'{"a": 1}\n',
        b'[["int-1"], {}, {}]\n',
        b'[["int-1", {"hours": []}], {}, {}]\n',
        b'[["int-1", {}], {}, {}]',
    ],
)
def test_a_body_without_a_readable_header_is_a_clear_decode_error(payload):
    wire.install()
    with pytest.raises(DecodeError, match="signal-prepared"):
        serialization.loads(payload, wire.PREPARED_CONTENT_TYPE, "binary")


@pytest.mark.parametrize("cut", [-1, 1])
def test_lines_that_do_not_match_their_lengths_make_a_message_that_is_refused_and_counted(cut):
    import fakeredis

    from workers.pipeline import ingest
    from workers.store import keys

    wire.install()
    message = prepared_message()
    payload = serialization.dumps([["int-1", message], {}, {}], serializer=wire.PREPARED)[2]
    payload = payload[:cut] if cut < 0 else payload + b"x" * cut  # truncated, or bytes after the last line
    args = serialization.loads(payload, wire.PREPARED_CONTENT_TYPE, "binary")[0]
    assert args[1]["hours"] == dict.fromkeys(message["hours"])
    with pytest.raises(BadMessage, match="must be non-empty lines") as caught:
        decode_message(args[1])
    r = fakeredis.FakeRedis()  # what tasks/ingest.py does with it: counted as ingest_failed, with the error
    assert ingest.record_ingest_failure(r, "int-1", args[1], caught.value, n=count_events(args[1])) == 6
    assert r.hget(keys.stats("int-1"), "rejected:ingest_failed") == b"6"
    assert "BadMessage" in orjson.loads(r.lindex(keys.rejections("int-1"), 0))["detail"]


def test_only_signal_append_bodies_are_written_in_that_form():
    wire.install()
    with pytest.raises(EncodeError, match="signal.append"):
        serialization.dumps([["int-1", ["events"]], {}, {}], serializer=wire.PREPARED)
