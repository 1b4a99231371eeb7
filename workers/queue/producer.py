"""Publishing to the fleet from outside a worker (the HTTP API, the CLI): ``signal.append``, ``signal.ingest`` and
``signal.upload``.

``append`` sends events a producer prepared (``workers.pipeline.ingest.publish``: the API prepares each request's
events before publishing, so the ingest worker only appends); ``ingest`` sends events as they came, for the worker to
prepare. Task arguments shown by Flower and the broker (``argsrepr``) are ids and counts only, never events or
credentials.
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

from workers import compat
from workers.errors import Unavailable
from workers.events.message import describe_message, encode_message
from workers.events.prepared import Prepared
from workers.queue import wire
from workers.queue.config import broker_config
from workers.settings import Settings

# A down broker is reported within a few seconds instead of holding the caller: connect timeout x attempts.
CONNECT_TIMEOUT_S = 2.0
CONFIRM_TIMEOUT_S = 10.0
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}


class BrokerUnavailable(Unavailable):
    """The broker did not take (or confirm) a message: it was not queued. Retry later."""


class Broker:
    """A small Celery producer; one per process (thread-safe for publishing)."""

    def __init__(self, settings: Settings) -> None:
        wire.install()
        compat.reuse_kombu_redis_clients()
        self.settings = settings
        self.app = Celery("signal-api", set_as_current=False)
        self.app.conf.update(**broker_config(settings), broker_connection_timeout=CONNECT_TIMEOUT_S)

    def _send(
        self,
        name: str,
        args: list[Any],
        queue: str,
        task_id: str,
        argsrepr: str,
        compression: str | None = None,
        serializer: str | None = None,
    ) -> None:
        try:
            # mandatory: a message no queue takes (a queue deleted while this process runs, whose declaration kombu
            # remembers) comes back as an error instead of being confirmed and dropped
            self.app.send_task(
                name,
                args=args,
                queue=queue,
                task_id=task_id,
                argsrepr=argsrepr,
                kwargsrepr="{}",
                retry=True,
                retry_policy=PUBLISH_RETRY,
                confirm_timeout=CONFIRM_TIMEOUT_S,
                mandatory=True,
                compression=compression,
                serializer=serializer,
            )
        except (KombuError, AMQPError, OSError, redis.RedisError) as exc:
            raise BrokerUnavailable(f"the broker did not take {name}: {type(exc).__name__}") from None

    def append(self, integration_id: str, events: Prepared) -> str:
        """Send prepared events as ``signal.append``; returns the task id (the message id the append is
        de-duplicated by)."""
        message = encode_message(events)
        task_id = str(uuid.uuid4())
        self._send(
            "signal.append",
            [integration_id, message],
            "ingest",
            task_id,
            repr((integration_id, describe_message(message))),
            # its large texts are compressed one by one, and the rest is small: else kombu compresses it all
            compression=None if wire.worth_compressing(message) else wire.INGEST_COMPRESSION,
            serializer=wire.PREPARED,
        )
        return task_id

    def ingest(self, integration_id: str, events: list[Any]) -> str:
        task_id = str(uuid.uuid4())
        self._send(
            "signal.ingest",
            [integration_id, events],
            "ingest",
            task_id,
            repr((integration_id, f"<{len(events)} items>")),
            compression=wire.INGEST_COMPRESSION,
        )
        return task_id

    def upload(self, integration_id: str, batch_id: str) -> None:
        self._send(
            "signal.upload", [integration_id, batch_id], "flush", str(uuid.uuid4()), repr((integration_id, batch_id))
        )

    def close(self) -> None:
        self.app.close()
