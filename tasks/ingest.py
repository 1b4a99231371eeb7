"""``signal.ingest(integration_id, events)``: validate and buffer a list of canonical envelopes."""

from __future__ import annotations

import logging

from celery import Task

from tasks.flush import upload
from workers import delivery, registry
from workers.app import app
from workers.db import TRANSIENT_ERRORS, redis_client
from workers.settings import get_settings

log = logging.getLogger(__name__)


# A Redis blip, a cluster failover or an append not yet on enough replicas is retried: the append is atomic and
# de-duplicated by message id, so a retry never doubles events.
@app.task(name="signal.ingest", bind=True, acks_late=True, ignore_result=True,
          autoretry_for=TRANSIENT_ERRORS, retry_backoff=True, retry_backoff_max=60,
          retry_jitter=True, max_retries=20)
def ingest(self: Task, integration_id: str, events: list) -> dict[str, object]:
    try:
        result = delivery.ingest(redis_client(), integration_id, events, message_id=self.request.id or "",
                                 settings=get_settings())
    except (registry.UnknownIntegration, delivery.IntegrationDisabled) as exc:
        log.error("ingest refused: %s", exc, extra={"integration_id": integration_id, "events": len(events)})
        return {"accepted": 0, "error": str(exc)}
    except TRANSIENT_ERRORS:
        raise  # retried: the append is atomic and de-duplicated
    except Exception as exc:
        # the message is acked after a failure (Redis has no dead-letter queue): make it visible per integration
        n = delivery.record_ingest_failure(redis_client(), integration_id, events, exc)
        log.exception("ingest failed for %d events of integration=%s", n, integration_id,
                      extra={"integration_id": integration_id, "events": n})
        raise
    for batch_id in result.sealed:
        upload.apply_async((integration_id, batch_id))
    if result.rejected:
        reasons = sorted({str(r["reason"]) for r in result.rejected})
        log.warning("integration=%s rejected %d of %d events: %s", integration_id, len(result.rejected), len(events),
                    ", ".join(reasons),
                    extra={"integration_id": integration_id, "events": len(result.rejected), "reasons": reasons})
    return result.summary()

