"""Where a message can still be lost: kombu's Redis transport takes a message off its queue (BRPOP) and only then
records it as unacknowledged (MULTI ZADD unacked_index, HSET unacked), in a second command sent after the envelope
is parsed. A consumer that dies between the two loses the message: nothing is left to restore or redeliver. The chaos
test's rare lost ingest message (one whole message of 500 events, in 2 runs of 6, with kombu's clients reused and
its envelopes written by orjson) fits this window; those two changes make it shorter, not longer, so they are not its
cause. RabbitMQ (the scaled topology) has real acknowledgements: the same death hands the message back.

Both tests kill a consumer at the exact point (``os._exit`` where kombu would write the unacked record) instead of
by a timed SIGKILL, so the window is reproduced every run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from tests.support.processes import REPO_ROOT

DIE_BEFORE_THE_UNACKED_WRITE = textwrap.dedent(
    """
    import os, sys
    from kombu import Connection, Queue
    from kombu.transport.virtual import base

    def die(self, message, delivery_tag):
        os._exit(9)  # the process dies where kombu records the message as unacknowledged (or starts to process it)

    base.QoS.append = die
    from kombu.transport import redis as kombu_redis
    kombu_redis.QoS.append = die
    with Connection(sys.argv[1]) as conn:
        queue = Queue("window", routing_key="window")
        def received(body, message):
            os._exit(9)  # brokers with real acks: died while processing, before the ack
        with conn.Consumer(queue, callbacks=[received], accept=["json"]):
            conn.drain_events(timeout=10)
    os._exit(3)  # nothing came
    """
)


def publish(url: str) -> None:
    with Connection(url) as conn:
        queue = Queue("window", Exchange("window", type="direct"), routing_key="window")
        Producer(conn).publish({"events": 500}, exchange=queue.exchange, routing_key="window", declare=[queue])


def consume_and_die(url: str) -> int:
    child = subprocess.run(
        [sys.executable, "-c", DIE_BEFORE_THE_UNACKED_WRITE, url], cwd=REPO_ROOT, timeout=60, check=False
    )
    return child.returncode


def left_after_recovery(url: str) -> list[object]:
    """What a new consumer receives after the broker recovered what it could (Redis: every unacked record restored)."""
    got: list[object] = []
    with Connection(url, transport_options={"visibility_timeout": 0}) as conn:
        queue = Queue("window", Exchange("window", type="direct"), routing_key="window")
        qos = getattr(conn.default_channel, "qos", None)  # kombu's Redis channel; py-amqp's has none
        if qos is not None:
            qos.restore_visible(num=100)
        with conn.Consumer(queue, callbacks=[lambda body, message: (got.append(body), message.ack())], accept=["json"]):
            try:
                conn.drain_events(timeout=3)
            except TimeoutError:
                pass
    return got


def test_on_the_redis_broker_a_consumer_dead_between_the_pop_and_the_unacked_write_loses_the_message(redis_server):
    url = redis_server.url.rsplit("/", 1)[0] + "/9"  # a database of its own: kombu's unacked keys are global
    client = redis.Redis.from_url(url)
    publish(url)
    assert client.llen("window") == 1
    assert consume_and_die(url) == 9
    assert client.llen("window") == 0  # taken off the queue by BRPOP
    assert client.hlen("unacked") == 0  # and never recorded as unacknowledged
    assert left_after_recovery(url) == []  # so nothing can bring it back: lost


@pytest.mark.parametrize("topology", ["scaled"], indirect=True)
def test_on_rabbitmq_the_same_death_hands_the_message_back(rabbitmq, topology):
    publish(rabbitmq.url)
    assert consume_and_die(rabbitmq.url) == 9
    assert left_after_recovery(rabbitmq.url) == [{"events": 500}]
