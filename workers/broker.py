"""Publishing to the fleet from outside a worker (the HTTP API, the CLI): ``signal.ingest`` and ``signal.upload``.

Task arguments shown by Flower and the broker (``argsrepr``) are ids and counts only, never events or credentials.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import Celery

from workers import wire


class Broker:
    """A small Celery producer; one per process (thread-safe for publishing)."""

    def __init__(self, redis_url: str, *, visibility_timeout_s: int = 300) -> None:
        wire.install()
        self.app = Celery("signal-api", broker=redis_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True,
                             broker_transport_options={"visibility_timeout": visibility_timeout_s})

    def ingest(self, integration_id: str, events: list[Any]) -> str:
        task_id = str(uuid.uuid4())
        self.app.send_task("signal.ingest", args=[integration_id, events], queue="ingest", task_id=task_id,
                           compression=wire.INGEST_COMPRESSION,
                           argsrepr=repr((integration_id, f"<{len(events)} items>")), kwargsrepr="{}")
        return task_id

    def upload(self, integration_id: str, batch_id: str) -> None:
        self.app.send_task("signal.upload", args=[integration_id, batch_id], queue="flush",
                           argsrepr=repr((integration_id, batch_id)), kwargsrepr="{}")

    def close(self) -> None:
        self.app.close()
