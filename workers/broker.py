"""Publishing to the fleet from outside a worker (the HTTP API, the CLI): ``signal.ingest`` and ``signal.upload``.

Task arguments shown by Flower and the broker (``argsrepr``) are ids and counts only, never events or credentials.
On RabbitMQ every publish waits for the broker's confirm, and a message no queue would take comes back. A message
the broker did not take raises ``BrokerUnavailable`` after a few quick retries: the caller reports it (the API answers
503), nothing is dropped silently.
"""

from __future__ import annotations

import uuid
from typing import Any

import redis
from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import KombuError

from workers import topology, wire
from workers.settings import Settings

# A down broker is reported within a few seconds instead of holding the caller: connect timeout x attempts.
CONNECT_TIMEOUT_S = 2.0
CONFIRM_TIMEOUT_S = 10.0
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


def reuse_redis_clients() -> None:
    """kombu's Redis transport builds a new redis-py client for every command a producer sends (``conn_or_acquire``),
    and a client's constructor registers ~170 response callbacks: a third of the CPU of publishing a task. Each
    channel keeps one client per connection pool instead (redis-py clients are thread-safe; the connections stay in
    the channel's pool). The consumer's clients (``asynchronous``) are kombu's own, as before. Idempotent."""
    from kombu.transport import redis as kombu_redis

    channel = kombu_redis.Channel
    if getattr(channel, "_signal_reuses_clients", False):
        return
    create = channel._create_client

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return create(self, asynchronous)
        pool = self.pool
        cached = self.__dict__.get("_signal_client")
        if cached is None or cached[0] is not pool:
            cached = self.__dict__["_signal_client"] = (pool, create(self, False))
        return cached[1]

    channel._create_client = _create_client
    channel._signal_reuses_clients = True


class BrokerUnavailable(Exception):
    """The broker did not take (or confirm) a message: it was not queued. Retry later."""


class Broker:
    """A small Celery producer; one per process (thread-safe for publishing)."""

    def __init__(self, settings: Settings) -> None:
        wire.install()
        reuse_redis_clients()
        self.app = Celery("signal-api", set_as_current=False)
        self.app.conf.update(**topology.celery_config(settings), broker_connection_timeout=CONNECT_TIMEOUT_S)

    def _send(self, name: str, args: list[Any], queue: str, task_id: str, argsrepr: str,
              compression: str | None = None) -> None:
        try:
            # mandatory: a message no queue takes (a queue deleted while this process runs, whose declaration kombu
            # remembers) comes back as an error instead of being confirmed and dropped
            self.app.send_task(name, args=args, queue=queue, task_id=task_id, argsrepr=argsrepr, kwargsrepr="{}",
                               retry=True, retry_policy=PUBLISH_RETRY, confirm_timeout=CONFIRM_TIMEOUT_S,
                               mandatory=True, compression=compression)
        except (KombuError, AMQPError, OSError, redis.RedisError) as exc:
            raise BrokerUnavailable(f"the broker did not take {name}: {type(exc).__name__}") from None

    def ingest(self, integration_id: str, events: list[Any]) -> str:
        task_id = str(uuid.uuid4())
        self._send("signal.ingest", [integration_id, events], "ingest", task_id,
                   repr((integration_id, f"<{len(events)} items>")), compression=wire.INGEST_COMPRESSION)
        return task_id

    def upload(self, integration_id: str, batch_id: str) -> None:
        self._send("signal.upload", [integration_id, batch_id], "flush", str(uuid.uuid4()),
                   repr((integration_id, batch_id)))

    def close(self) -> None:
        self.app.close()
