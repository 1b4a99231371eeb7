"""``signal.append(integration_id, prepared)`` appends events a producer prepared (the API's form);
``signal.ingest(integration_id, events)`` validates and buffers a list of event objects (any other producer)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Task

from tasks.flush import upload
from workers.app import app
from workers.events.message import count_events, decode_message
from workers.integrations.registry import IntegrationDisabled, UnknownIntegration
from workers.pipeline import ingest as ingesting
from workers.queue import wire
from workers.settings import get_settings
from workers.store.db import TRANSIENT_ERRORS, redis_client

log = logging.getLogger(__name__)

# A Redis blip, a cluster failover or an append not yet on enough replicas is retried: the append is atomic and
# de-duplicated by message id, so a retry never doubles events.
RETRY = {
    "bind": True,
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 20,
}


@app.task(name="signal.append", serializer=wire.PREPARED, **RETRY)  # a retry is sent in the same form
def append(self: Task, integration_id: str, message: object) -> dict[str, object]:
    def work() -> ingesting.IngestResult:
        return ingesting.append(
            redis_client(),
            integration_id,
            decode_message(message),
            message_id=self.request.id or "",
            settings=get_settings(),
        )

    return _run(integration_id, work, count_events(message), message)


@app.task(name="signal.ingest", **RETRY)
def ingest(self: Task, integration_id: str, events: list) -> dict[str, object]:
    def work() -> ingesting.IngestResult:
        return ingesting.ingest(
            redis_client(), integration_id, events, message_id=self.request.id or "", settings=get_settings()
        )

    return _run(integration_id, work, len(events) if isinstance(events, list) else 1, events)


def _run(integration_id: str, work: Callable[[], ingesting.IngestResult], n: int, payload: object) -> dict[str, object]:
    """Run one ingest, dispatch what it sealed, and make every outcome visible for the integration."""
    try:
        result = work()
    except (UnknownIntegration, IntegrationDisabled) as exc:
        log.error("ingest refused: %s", exc, extra={"integration_id": integration_id, "events": n})
        return {"accepted": 0, "error": str(exc)}
    except TRANSIENT_ERRORS:
        raise  # retried: the append is atomic and de-duplicated
    except Exception as exc:
        # the message is acked after a failure (Redis has no dead-letter queue): make it visible per integration
        n = ingesting.record_ingest_failure(redis_client(), integration_id, payload, exc, n=n)
        log.exception(
            "ingest failed for %d events of integration=%s",
            n,
            integration_id,
            extra={"integration_id": integration_id, "events": n},
        )
        raise
    for batch_id in result.sealed:
        upload.apply_async((integration_id, batch_id))
    if result.rejected:
        reasons = sorted({str(r["reason"]) for r in result.rejected})
        log.warning(
            "integration=%s rejected %d of %d events: %s",
            integration_id,
            len(result.rejected),
            n,
            ", ".join(reasons),
            extra={"integration_id": integration_id, "events": len(result.rejected), "reasons": reasons},
        )
    return result.summary()
