"""Task messages on the broker: standard JSON (orjson), each body parsed once, ingest bodies compressed."""

from __future__ import annotations

import base64
import json
import zlib

from kombu import Connection, compression, serialization

from workers import wire
from workers.broker import Broker
from workers.settings import Settings

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


def test_a_redis_channel_keeps_one_producer_client_per_connection_pool():
    import types

    from kombu.transport import redis as kombu_redis

    from workers.broker import reuse_redis_clients

    reuse_redis_clients()
    reuse_redis_clients()  # idempotent: not wrapped twice
    made: list[dict] = []

    def client(**kwargs):
        made.append(kwargs)
        return object()

    channel = types.SimpleNamespace(pool=types.SimpleNamespace(connection_kwargs={}), Client=client,
                                    async_pool=types.SimpleNamespace(connection_kwargs={}))
    create = kombu_redis.Channel._create_client
    first = create(channel, False)
    assert create(channel) is first and create(channel, False) is first and len(made) == 1
    assert create(channel, True) is not create(channel, True)  # the consumer's clients stay kombu's own
    channel.pool = types.SimpleNamespace(connection_kwargs={})  # a new pool after a reconnection: a new client
    assert create(channel) is not first and len(made) == 4
