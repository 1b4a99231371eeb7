"""The broker's queues and the Celery settings that every producer and worker of the fleet shares.

One Redis (the default, ``SIGNAL_BROKER_URL`` unset): ``ingest`` and ``flush`` are Redis lists; a message a worker
took and never acknowledged comes back after the visibility timeout.

RabbitMQ (``SIGNAL_BROKER_URL=amqp://...``): ``ingest`` and ``flush`` are quorum queues (replicated and durable) bound
to the topic exchange ``signal``; Celery's native delayed delivery, which carries every retry with a countdown, needs
an exchange that is not direct. Each queue has an explicit delivery limit (``SIGNAL_BROKER_DELIVERY_LIMIT``): a message
whose deliveries keep ending with the worker lost is dead-lettered to the quorum queue ``signal.dead-letter``, where it
is kept and counted (``signal-s3 queues``) instead of looping or being dropped. Publishers wait for the broker's
confirm of every message. RabbitMQ refuses to redeclare a queue with other arguments, so producers and workers all
take their declarations from here.
"""

from __future__ import annotations

import math

from kombu import Connection, Exchange, Queue
from kombu.exceptions import OperationalError
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from workers import compat
from workers.settings import Settings

QUEUE_NAMES = ("ingest", "flush")
EXCHANGE = "signal"
DEAD_LETTER = "signal.dead-letter"
# kombu's Redis transport: a queue's lists (one per priority step) and the hash of messages taken, not acknowledged
REDIS_PRIORITY_SUFFIXES = compat.KOMBU_REDIS_PRIORITY_SUFFIXES
REDIS_UNACKED = compat.KOMBU_REDIS_UNACKED


def task_queues(settings: Settings) -> tuple[Queue, ...]:
    """The two task queues, declared the same way by every producer and worker."""
    if not settings.broker_is_amqp:
        return tuple(Queue(name) for name in QUEUE_NAMES)
    exchange = Exchange(EXCHANGE, type="topic")
    arguments = {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.broker_delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER,
        # at-least-once dead-lettering (RabbitMQ >= 3.10) needs reject-publish; no length limit is set
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    return tuple(Queue(name, exchange, routing_key=name, queue_arguments=arguments) for name in QUEUE_NAMES)


def dead_letter_queue() -> Queue:
    """Where RabbitMQ moves a message past its delivery limit: kept until someone looks at it. No worker consumes it."""
    return Queue(
        DEAD_LETTER, Exchange(DEAD_LETTER, type="fanout"), routing_key="", queue_arguments={"x-queue-type": "quorum"}
    )


def declare(connection: Connection, settings: Settings) -> None:
    """Declare the task queues and the dead-letter queue on RabbitMQ (idempotent)."""
    channel = connection.default_channel
    for queue in (*task_queues(settings), dead_letter_queue()):
        queue(channel).declare()


def declare_delayed_delivery(connection: Connection, settings: Settings) -> None:
    """Celery's delayed-delivery exchanges and queues (which carry retries with a countdown), routed to every task
    queue (idempotent: Celery's worker declares them too, in an order of start-up steps that is not fixed)."""
    declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
    for queue in task_queues(settings):
        bind_queue_to_native_delayed_delivery_exchange(connection, queue)


def redis_broker_keys() -> tuple[tuple[str, ...], str]:
    """The Redis keys of a Redis broker that hold messages: every list of the task queues, and the hash of messages
    taken and not acknowledged."""
    return tuple(name + suffix for name in QUEUE_NAMES for suffix in REDIS_PRIORITY_SUFFIXES), REDIS_UNACKED


def whole_seconds(seconds: float) -> int:
    """A retry countdown as native delayed delivery takes it: whole seconds, at least one (0.5 would raise)."""
    return max(1, math.ceil(seconds))


def queue_depths(settings: Settings, *, timeout_s: float = 5.0) -> dict[str, int]:
    """Messages ready in each queue; on Redis also those taken by a worker and not acknowledged (``unacked``), on
    RabbitMQ those held in ``signal.dead-letter`` (``dead_letter``). OperationalError when the broker cannot be
    reached."""
    if not settings.broker_is_amqp:
        import redis

        r = redis.Redis.from_url(settings.celery_broker_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            pipe = r.pipeline(transaction=False)
            for name in QUEUE_NAMES:
                for suffix in REDIS_PRIORITY_SUFFIXES:
                    pipe.llen(name + suffix)
            pipe.hlen(REDIS_UNACKED)
            *counts, unacked = pipe.execute()
        except redis.RedisError as exc:
            raise OperationalError(f"the broker is unreachable: {type(exc).__name__}") from None
        finally:
            r.close()
        n = len(REDIS_PRIORITY_SUFFIXES)
        return {**{name: sum(counts[i * n : (i + 1) * n]) for i, name in enumerate(QUEUE_NAMES)}, "unacked": unacked}
    depths: dict[str, int] = {}
    with Connection(settings.celery_broker_url, connect_timeout=timeout_s) as conn:
        conn.ensure_connection(max_retries=1)
        for queue in (*task_queues(settings), dead_letter_queue()):
            channel = conn.channel()
            try:
                _, count, _ = queue(channel).queue_declare(passive=True)
            except conn.channel_errors:  # not declared yet: no worker or producer has used it
                count = 0
            finally:
                try:
                    channel.close()
                except conn.connection_errors + conn.channel_errors:
                    pass
            depths["dead_letter" if queue.name == DEAD_LETTER else queue.name] = count
    return depths
