"""A message taken off the Redis broker is never left nowhere.

kombu's Redis transport alone takes a message off its queue (BRPOP) and only then records it as unacknowledged (MULTI
ZADD unacked_index, HSET unacked), in a second command sent after the envelope is parsed: a consumer that dies in
between loses the message, with nothing left to restore or redeliver (the first test shows it, on kombu as shipped).
The fleet's consumers take and record in one step on the server (``workers/queue/lua/take.lua``, installed by
``workers.queue.take``): the tests kill one at every instant of that path (``os._exit`` at the exact point, so each
instant is reproduced every run) and find the message delivered once afterwards. RabbitMQ (the scaled topology) has
real acknowledgements: the same death hands the message back."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import orjson
import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from tests.support.processes import REPO_ROOT, wait_until

CONSUME_AND_DIE = textwrap.dedent(
    """
    import os, sys
    from kombu import Connection, Queue
    from kombu.transport import redis as kombu_redis
    from kombu.transport.virtual import base

    url, fixed, die_at = sys.argv[1], sys.argv[2] == "fixed", sys.argv[3]
    if fixed:
        from workers.queue import take
        take.install()

    def die(*_args, **_kwargs):
        os._exit(9)

    if die_at == "record":  # where kombu writes the unacked record (after the take, with the fix)
        recorded = kombu_redis.QoS.append
        base.QoS.append = die
        kombu_redis.QoS.append = die
    elif die_at == "deliver":  # the take's reply read, the message not yet handed to the consumer
        kombu_redis.Transport._deliver = die
        base.Transport._deliver = die
    elif die_at == "woken":  # the wait's reply read (a message arrived), before the take
        read = kombu_redis.Channel._brpop_read
        def read_then_die(self, **options):
            command = self.__dict__.get("_signal_command")
            try:
                return read(self, **options)
            finally:
                if command == "BLMOVE":
                    os._exit(9)
        kombu_redis.Channel._brpop_read = read_then_die
    with Connection(url) as conn:
        conn.ensure_connection()
        queue = Queue("window", routing_key="window")
        def received(body, message):
            os._exit(9)  # died while processing, before the ack
        with conn.Consumer(queue, callbacks=[received], accept=["json"]):
            conn.drain_events(timeout=20)
    os._exit(3)  # nothing came
    """
)


def window_queue() -> Queue:
    return Queue("window", Exchange("window", type="direct"), routing_key="window")


def publish(url: str, body: object = None, priority: int | None = None, queue: Queue | None = None) -> None:
    queue = queue or window_queue()
    with Connection(url) as conn:
        Producer(conn).publish(
            body if body is not None else {"events": 500},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            priority=priority,
        )


def acknowledging(conn: Connection, got: list[object], queues: list[Queue] | None = None) -> Any:
    """A consumer of ``queues`` (the window queue) that keeps each body in ``got`` and acknowledges its message."""
    return conn.Consumer(
        queues or [window_queue()], callbacks=[lambda body, message: (got.append(body), message.ack())], accept=["json"]
    )


def consume_and_die(url: str, die_at: str, *, fixed: bool = True, publish_when_waiting: bool = False) -> int:
    child = subprocess.Popen(
        [sys.executable, "-c", CONSUME_AND_DIE, url, "fixed" if fixed else "stock", die_at], cwd=REPO_ROOT
    )
    try:
        if publish_when_waiting:
            client = redis.Redis.from_url(url)
            wait_until(
                lambda: any(c.get("cmd") == "blmove" for c in client.client_list()),
                15,
                message="the consumer never waited",
            )
            publish(url)
        return child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def left_after_recovery(url: str, *, fixed: bool = True, seconds: float = 3) -> list[object]:
    """What a new consumer receives after the broker recovered what it could (Redis: every unacked record restored),
    each message acknowledged."""
    if fixed:
        from workers.queue import take

        take.install()
    got: list[object] = []
    with Connection(url, transport_options={"visibility_timeout": 0}) as conn:
        qos = getattr(conn.default_channel, "qos", None)  # kombu's Redis channel; py-amqp's has none
        if qos is not None:
            qos.restore_visible(num=100)
        with acknowledging(conn, got):
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                try:
                    conn.drain_events(timeout=0.5)
                except TimeoutError:
                    pass
    return got


@pytest.fixture
def url(redis_server: object) -> str:
    """A database of its own, emptied: kombu's unacked keys are global to a database."""
    address = redis_server.url.rsplit("/", 1)[0] + "/9"  # type: ignore[attr-defined]
    redis.Redis.from_url(address).flushdb()
    return address


def test_kombu_as_shipped_loses_a_message_when_the_consumer_dies_between_the_pop_and_the_unacked_write(url):
    client = redis.Redis.from_url(url)
    publish(url)
    assert consume_and_die(url, "record", fixed=False) == 9
    assert client.llen("window") == 0  # taken off the queue by BRPOP
    assert client.hlen("unacked") == 0  # and never recorded as unacknowledged
    assert left_after_recovery(url, fixed=False) == []  # so nothing can bring it back: lost


@pytest.mark.parametrize("die_at", ["record", "deliver"])
def test_a_consumer_dead_right_after_the_take_leaves_the_message_recorded_and_it_is_delivered_once(url, die_at):
    client = redis.Redis.from_url(url)
    publish(url)
    assert consume_and_die(url, die_at) == 9
    assert client.llen("window") == 0
    assert client.hlen("unacked") == 1 and client.zcard("unacked_index") == 1  # kombu's own record of it
    assert left_after_recovery(url) == [{"events": 500}]
    assert client.hlen("unacked") == 0 and client.llen("window") == 0


def test_a_header_named_like_kombus_properties_does_not_fool_the_take(url):
    """The take reads the delivery tag and info of the message's properties, not those of a header of that name."""
    client = redis.Redis.from_url(url)
    with Connection(url) as conn:
        queue = window_queue()
        Producer(conn).publish(
            {"events": 500},
            exchange=queue.exchange,
            routing_key="window",
            declare=[queue],
            headers={"delivery_tag": "not-it", "delivery_info": {"exchange": "E2", "routing_key": "R2"}},
        )
    tag = json.loads(client.lindex("window", 0))["properties"]["delivery_tag"]
    assert consume_and_die(url, "record") == 9
    assert [k.decode() for k in client.hkeys("unacked")] == [tag]
    record = json.loads(client.hget("unacked", tag))
    assert record[1:] == ["window", "window"]
    assert left_after_recovery(url) == [{"events": 500}]


def test_a_routing_key_the_quick_reading_cannot_take_is_read_fully(url):
    """kombu's encoder escapes a non-ASCII routing key (\u00ef): the take reads such a message with cjson."""
    client = redis.Redis.from_url(url)
    publish(url)
    envelope = json.loads(client.rpop("window"))
    envelope["properties"]["delivery_info"]["routing_key"] = 'w\u00efndow "quoted"'
    client.lpush("window", json.dumps(envelope))
    assert consume_and_die(url, "record") == 9
    tag = envelope["properties"]["delivery_tag"]
    assert json.loads(client.hget("unacked", tag)) == [envelope, "window", 'w\u00efndow "quoted"']


def test_a_full_redis_runs_the_take_but_refuses_the_wait(tmp_path):
    """At its maxmemory with noeviction, Redis refuses BLMOVE (it may allocate) and runs the take, whose first write
    is a pop (after which a script may write what it must)."""
    from tests.support.processes import RedisServer
    from workers.queue import take

    server = RedisServer(data_dir=tmp_path / "full", extra_args=["--maxmemory-policy", "noeviction"]).start()
    try:
        client = server.client()
        publish(server.url)
        tag = json.loads(client.lindex("window", 0))["properties"]["delivery_tag"]
        client.config_set("maxmemory", "1")  # over it from now on
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.blmove("window", "window", 1, "RIGHT", "LEFT")
        key, _, taken = client.eval(take.SCRIPT, 3, "window", "unacked_index", "unacked", str(time.time()))
        assert (key, taken.decode()) == (b"window", tag) and client.hexists("unacked", tag)
    finally:
        server.stop()


def test_a_redis_that_refuses_the_wait_is_polled_and_every_message_delivered(tmp_path):
    """A Redis that refuses BLMOVE (full, or older than 6.2: here the command is renamed away) is waited on by a
    timed BLPOP of a list nothing is pushed to; what arrives meanwhile is taken at the next poll."""
    from tests.support.processes import RedisServer
    from workers.queue import take

    take.install()
    server = RedisServer(data_dir=tmp_path / "old", extra_args=["--rename-command", "BLMOVE", '""']).start()
    try:
        client = server.client()
        publish(server.url, {"n": 1})
        got: list[object] = []
        with Connection(server.url) as conn:
            with acknowledging(conn, got):
                conn.drain_events(timeout=5)
                assert got == [{"n": 1}]
                for _ in range(3):  # waits: BLMOVE refused, then polls
                    try:
                        conn.drain_events(timeout=0.3)
                    except TimeoutError:
                        pass
                assert conn.default_channel.__dict__.get("_signal_pause_until")  # it was refused
                publish(server.url, {"n": 2})
                conn.drain_events(timeout=5)
        assert got == [{"n": 1}, {"n": 2}]
        assert client.hlen("unacked") == 0 and client.llen("window") == 0
    finally:
        server.stop()


@pytest.mark.parametrize("encoder", ["kombu", "orjson"])
def test_envelopes_of_either_encoder_are_recorded(url, encoder):
    """kombu's own JSON (``", "`` and ``": "``) and the compact JSON of orjson, which the fleet's producers write."""
    client = redis.Redis.from_url(url)
    publish(url)
    envelope = json.loads(client.rpop("window"))
    client.lpush("window", json.dumps(envelope) if encoder == "kombu" else orjson.dumps(envelope))
    assert consume_and_die(url, "record") == 9
    assert client.hlen("unacked") == 1
    assert left_after_recovery(url) == [{"events": 500}]


def test_a_consumer_dead_after_being_woken_leaves_the_message_on_its_queue(url):
    client = redis.Redis.from_url(url)
    assert consume_and_die(url, "woken", publish_when_waiting=True) == 9
    assert client.llen("window") == 1  # the wait moves nothing off the list
    assert client.hlen("unacked") == 0
    assert left_after_recovery(url) == [{"events": 500}]


def test_a_consumer_dead_while_processing_leaves_the_message_recorded(url):
    client = redis.Redis.from_url(url)
    publish(url)
    assert consume_and_die(url, "processing") == 9
    assert client.hlen("unacked") == 1
    assert left_after_recovery(url) == [{"events": 500}]


def test_consumers_racing_for_messages_take_each_once_and_acknowledge_every_record(url):
    """Four consumers wait on one queue while 200 messages arrive in bursts: every message is delivered exactly once
    and, once acknowledged, no unacked record or message is left behind."""
    from workers.queue import take

    take.install()
    client = redis.Redis.from_url(url)
    got: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def consume() -> None:
        with Connection(url) as conn:

            def received(body: dict, message: object) -> None:
                with lock:
                    got.append(body["n"])
                message.ack()  # type: ignore[attr-defined]

            with conn.Consumer(window_queue(), callbacks=[received], accept=["json"]):
                while not stop.is_set():
                    try:
                        conn.drain_events(timeout=0.2)
                    except TimeoutError:
                        pass

    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for thread in consumers:
        thread.start()
    try:
        for burst in range(10):
            for n in range(burst * 20, burst * 20 + 20):
                publish(url, {"n": n})
            time.sleep(0.05 * (burst % 3))
        wait_until(lambda: len(got) >= 200, 30, message=lambda: f"{len(got)} of 200 delivered")
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in consumers:
            thread.join(10)
    assert sorted(got) == list(range(200))
    assert client.llen("window") == 0
    assert client.hlen("unacked") == 0 and client.zcard("unacked_index") == 0


def test_a_waiting_consumer_is_woken_by_a_message_not_by_its_timeout(url):
    """The wait blocks for 10 s (``brpop_timeout``) unless a message arrives: one published while it waits is
    delivered at once."""
    from workers.queue import take

    take.install()
    client = redis.Redis.from_url(url)
    got: list[object] = []
    with Connection(url) as conn:
        conn.default_channel.brpop_timeout = 10
        with acknowledging(conn, got):
            waiting = threading.Timer(0.5, publish, args=(url, {"n": 1}))
            waiting.start()
            try:
                conn.drain_events(timeout=5)
            finally:
                waiting.join()
    assert got == [{"n": 1}]
    assert client.hlen("unacked") == 0


def test_a_consumer_of_two_queues_is_woken_by_a_message_on_either(url):
    """BLMOVE watches one list: a consumer of several queues waits on each in turn, briefly, so a message on either
    arrives well before the 10 s wait of one queue would end."""
    from workers.queue import take

    take.install()
    other = Queue("other", Exchange("other", type="direct"), routing_key="other")
    got: list[object] = []
    with Connection(url) as conn:
        conn.default_channel.brpop_timeout = 10
        with acknowledging(conn, got, [window_queue(), other]):
            for queue, n in ((other, 1), (window_queue(), 2), (other, 3)):
                timer = threading.Timer(0.3, publish, args=(url, {"n": n}), kwargs={"queue": queue})
                timer.start()
                try:
                    conn.drain_events(timeout=5)
                finally:
                    timer.join()
    assert got == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert redis.Redis.from_url(url).hlen("unacked") == 0


def test_a_message_on_a_priority_list_is_taken_and_recorded(url):
    """The wait watches only the first list; a message of another priority is taken at the next poll."""
    client = redis.Redis.from_url(url)
    publish(url, {"urgent": True}, priority=9)
    assert client.llen("window\x06\x169") == 1
    assert consume_and_die(url, "record") == 9
    assert client.hlen("unacked") == 1
    assert left_after_recovery(url) == [{"urgent": True}]


def test_a_consumer_without_acknowledgements_keeps_kombus_own_pop(url):
    """Celery's control replies are consumed with no_ack: nothing of them may stay in the unacked records."""
    from workers.queue import take

    take.install()
    client = redis.Redis.from_url(url)
    publish(url)
    got: list[object] = []
    with Connection(url) as conn:
        with conn.Consumer(window_queue(), callbacks=[lambda body, message: got.append(body)], no_ack=True):
            conn.drain_events(timeout=5)
    assert got == [{"events": 500}]
    assert client.hlen("unacked") == 0 and client.llen("window") == 0


@pytest.mark.parametrize("topology", ["scaled"], indirect=True)
def test_on_rabbitmq_the_same_death_hands_the_message_back(rabbitmq, topology):
    publish(rabbitmq.url)
    assert consume_and_die(rabbitmq.url, "processing", fixed=False) == 9
    assert left_after_recovery(rabbitmq.url, fixed=False) == [{"events": 500}]
