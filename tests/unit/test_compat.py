"""Every private name of kombu, Celery and botocore the fleet uses (``workers.compat``), each assumption checked on
the installed version: a failure here names what an upgrade broke."""

from __future__ import annotations

import inspect
import types

import botocore.session
import botocore.utils
from kombu.transport import redis as kombu_redis

from workers import compat


def test_kombu_redis_channel_still_builds_its_clients_in_create_client():
    assert list(inspect.signature(kombu_redis.Channel._create_client).parameters) == ["self", "asynchronous"], (
        "kombu.transport.redis.Channel._create_client(self, asynchronous=False) changed: "
        "compat.reuse_kombu_redis_clients must follow"
    )


def test_a_producers_redis_channel_keeps_one_client_per_connection_pool():
    compat.reuse_kombu_redis_clients()
    compat.reuse_kombu_redis_clients()  # idempotent: not wrapped twice
    made: list[dict] = []

    def client(**kwargs):
        made.append(kwargs)
        return object()

    channel = types.SimpleNamespace(
        pool=types.SimpleNamespace(connection_kwargs={}),
        Client=client,
        async_pool=types.SimpleNamespace(connection_kwargs={}),
    )
    create = kombu_redis.Channel._create_client
    first = create(channel, False)
    assert create(channel) is first and create(channel, False) is first and len(made) == 1
    assert create(channel, True) is not create(channel, True)  # the consumer's clients stay kombu's own
    channel.pool = types.SimpleNamespace(connection_kwargs={})  # a new pool after a reconnection: a new client
    assert create(channel) is not first and len(made) == 4


def test_kombu_names_a_redis_queues_priority_lists_and_its_unacked_hash_as_assumed():
    steps = kombu_redis.PRIORITY_STEPS
    suffixes = tuple("" if step == 0 else kombu_redis.Channel.sep + str(step) for step in steps)
    assert suffixes == compat.KOMBU_REDIS_PRIORITY_SUFFIXES, "kombu's Redis priority lists are named differently"
    assert kombu_redis.Channel.unacked_key == compat.KOMBU_REDIS_UNACKED, "kombu's unacked hash moved"


def test_celery_tells_the_task_the_current_thread_runs():
    from celery import Celery

    app = Celery("compat-test", set_as_current=False)
    app.conf.update(task_always_eager=True)
    seen: list[object] = []

    @app.task(name="compat.probe")
    def probe() -> None:
        seen.append(compat.current_task())

    assert compat.current_task() is None
    probe.apply()
    assert seen and getattr(seen[0], "name", None) == "compat.probe", "celery._state.get_current_task changed"


def test_botocores_s3_region_redirector_handlers_can_be_found_and_removed():
    client = botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    redirector = (botocore.utils.S3RegionRedirectorv2,)
    events = ("needs-retry.s3", "before-parameter-build.s3", "before-endpoint-resolution.s3", "before-call.s3")
    assert compat.remove_handlers(client, events, redirector) > 0, "botocore's emitter no longer lists its handlers"
    assert compat.remove_handlers(client, events, redirector) == 0  # gone from this client ...
    other = botocore.session.get_session().create_client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    assert compat.remove_handlers(other, events, redirector) > 0  # ... and only from it


def test_pyiceberg_still_turns_a_parquet_footer_into_a_data_files_statistics():
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    catalog = SqlCatalog("compat", uri="sqlite:///:memory:", warehouse="file:///tmp/signal-compat-warehouse")
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=Schema(NestedField(1, "n", LongType(), required=False)))
    schema = pa.schema([pa.field("n", pa.int64(), metadata={b"PARQUET:field_id": b"1"})])
    collected: list[object] = []
    with pq.ParquetWriter(io.BytesIO(), schema, metadata_collector=collected) as writer:
        writer.write_table(pa.table({"n": [1, 5, None]}, schema=schema))
    stats = compat.iceberg_statistics(table, collected[0])
    assert stats["record_count"] == 3 and stats["null_value_counts"] == {1: 1}


def _kombu_stock(name: str):
    """kombu's own method, also once ``take_and_record_in_one_step`` replaced it."""
    stock = getattr(kombu_redis.Channel, "_signal_stock", None)
    if stock is not None:
        return stock[name]
    return {
        "start": kombu_redis.Channel._brpop_start,
        "read": kombu_redis.Channel._brpop_read,
        "append": kombu_redis.QoS.append,
    }[name]


def test_kombu_redis_consumers_still_take_with_brpop_and_record_in_a_second_command_as_assumed():
    start, read, append = (inspect.getsource(_kombu_stock(name)) for name in ("start", "read", "append"))
    for needle in (
        "'BRPOP'",
        "self._queue_cycle.consume(len(self.active_queues))",
        "self._q_for_pri(queue, pri)",
        "self.priority_steps",
        "self._in_poll = self.client.connection",
        "self._brpop_sent_at",
    ):
        assert needle in start, (
            f"kombu's Redis Channel._brpop_start changed ({needle}): compat.take_and_record_in_one_step must follow"
        )
    for needle in (
        "self._queue_cycle.rotate(dest)",
        "self.connection._deliver(loads(bytes_to_str(item)), dest)",
        "self._in_poll = None",
        "self._flush_brpop_reauth()",
        "rsplit(self.sep, 1)",
    ):
        assert needle in read, (
            f"kombu's Redis Channel._brpop_read changed ({needle}): compat.take_and_record_in_one_step must follow"
        )
    for needle in (
        "self.unacked_index_key",
        "self.unacked_key",
        "dumps([message._raw, EX, RK])",
        "super().append(message, delivery_tag)",
    ):
        assert needle in append, f"kombu's Redis QoS.append changed ({needle}): workers/queue/lua/take.lua must follow"
    restore = inspect.getsource(kombu_redis.QoS.restore_by_tag)
    assert "M, EX, RK = loads(bytes_to_str(p))" in restore, "kombu reads its unacked records differently"
    assert list(inspect.signature(kombu_redis.Channel.basic_consume).parameters)[:2] == ["self", "queue"]


def test_kombu_redis_envelopes_of_plain_json_are_written_by_orjson_and_anything_else_by_kombu():
    import datetime
    import uuid

    import orjson
    from kombu.utils.json import dumps as kombu_dumps
    from kombu.utils.json import loads as kombu_loads

    compat.write_kombu_redis_envelopes_with_orjson()
    compat.write_kombu_redis_envelopes_with_orjson()  # idempotent
    envelope = {
        "body": "eJzLSM3JyQcABiwCFQ==",
        "headers": {"id": "x", "retries": 0, "timelimit": [None, 1.5], "argsrepr": "('é', '<3 items>')", "ok": True},
    }
    written = kombu_redis.dumps([envelope, "", "ingest"])
    assert written == orjson.dumps([envelope, "", "ingest"])
    assert kombu_loads(written) == [envelope, "", "ingest"]  # kombu reads it as its own
    odd_ones = (
        {"eta": datetime.datetime(2026, 11, 27, 15, tzinfo=datetime.UTC)},
        {"id": uuid.uuid4()},
        {"x": float("nan")},
        {"n": 1 << 70},
        {1: "int key"},
    )
    for odd in odd_ones:
        assert kombu_redis.dumps(odd) == kombu_dumps(odd)  # kombu's own encoding, as before
