"""Publishing to the fleet from outside a worker (the HTTP API, the CLI): ``signal.append``, ``signal.ingest`` and
``signal.upload``.

``publish`` is the API's: it prepares the events here (``delivery.prepare``: validate, stamp, serialise) and sends
``signal.append`` with the result (``workers/events/prepared.py``), so the ingest worker only appends. Task arguments shown by
Flower and the broker (``argsrepr``) are ids and counts only, never events or credentials.
On RabbitMQ every publish waits for the broker's confirm, and a message no queue would take comes back. A message
the broker did not take raises ``BrokerUnavailable`` after a few quick retries: the caller reports it (the API answers
503), nothing is dropped silently.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import redis
from amqp.exceptions import AMQPError
from celery import Celery
from kombu.exceptions import KombuError

from workers.events import prepared
from workers.integrations import registry
from workers.pipeline import delivery
from workers.queue import topology, wire
from workers.store import db
from workers.settings import Settings

# A down broker is reported within a few seconds instead of holding the caller: connect timeout x attempts.
CONNECT_TIMEOUT_S = 2.0
CONFIRM_TIMEOUT_S = 10.0
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


class BrokerUnavailable(Exception):
    """The broker did not take (or confirm) a message: it was not queued. Retry later."""


class Broker:
    """A small Celery producer; one per process (thread-safe for publishing)."""

    def __init__(self, settings: Settings, r: redis.Redis | None = None) -> None:
        """``r``: the Redis store ``publish`` reads integrations from (a client of ``settings`` made when first
        needed, and closed by ``close``, when None)."""
        wire.install()
        wire.reuse_redis_clients()
        self.settings = settings
        self._r = r
        self._own_r: redis.Redis | None = None
        self._lock = threading.Lock()
        self.app = Celery("signal-api", set_as_current=False)
        self.app.conf.update(**topology.celery_config(settings), broker_connection_timeout=CONNECT_TIMEOUT_S)

    def _send(self, name: str, args: list[Any], queue: str, task_id: str, argsrepr: str,
              compression: str | None = None, serializer: str | None = None) -> None:
        try:
            # mandatory: a message no queue takes (a queue deleted while this process runs, whose declaration kombu
            # remembers) comes back as an error instead of being confirmed and dropped
            self.app.send_task(name, args=args, queue=queue, task_id=task_id, argsrepr=argsrepr, kwargsrepr="{}",
                               retry=True, retry_policy=PUBLISH_RETRY, confirm_timeout=CONFIRM_TIMEOUT_S,
                               mandatory=True, compression=compression, serializer=serializer)
        except (KombuError, AMQPError, OSError, redis.RedisError) as exc:
            raise BrokerUnavailable(f"the broker did not take {name}: {type(exc).__name__}") from None

    def publish(self, integration_id: str, events: list[Any]) -> str:
        """Prepare ``events`` for their integration and send them as ``signal.append``; returns the task id.

        The integration comes from the registry's per-process cache (up to ``registry.GET_CACHE_TTL_S`` old). When
        it cannot be read here (unknown or disabled in that cache, Redis unreachable), the events go as they came,
        in ``signal.ingest``: the worker prepares them, or refuses them, as for any producer.
        """
        try:
            p = delivery.prepare(self._redis(), integration_id, events, settings=self.settings)
        except (registry.UnknownIntegration, delivery.IntegrationDisabled, redis.RedisError):
            return self.ingest(integration_id, events)
        return self.append(integration_id, p)

    def append(self, integration_id: str, events: prepared.Prepared) -> str:
        """Send prepared events as ``signal.append``; returns the task id (the message id the append is
        de-duplicated by)."""
        message = prepared.encode(events)
        task_id = str(uuid.uuid4())
        self._send("signal.append", [integration_id, message], "ingest", task_id,
                   repr((integration_id, prepared.describe(message))), compression=wire.INGEST_COMPRESSION,
                   serializer=wire.PREPARED)
        return task_id

    def ingest(self, integration_id: str, events: list[Any]) -> str:
        task_id = str(uuid.uuid4())
        self._send("signal.ingest", [integration_id, events], "ingest", task_id,
                   repr((integration_id, f"<{len(events)} items>")), compression=wire.INGEST_COMPRESSION)
        return task_id

    def upload(self, integration_id: str, batch_id: str) -> None:
        self._send("signal.upload", [integration_id, batch_id], "flush", str(uuid.uuid4()),
                   repr((integration_id, batch_id)))

    def _redis(self) -> redis.Redis:
        if self._r is None:
            with self._lock:
                if self._own_r is None:
                    self._own_r = db.connect(self.settings)
                self._r = self._own_r
        return self._r

    def close(self) -> None:
        self.app.close()
        if self._own_r is not None:
            self._own_r.close()
