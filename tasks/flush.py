"""``signal.flush_due`` (beat) seals due buffers and dispatches uploads; ``signal.upload`` delivers one batch."""

from __future__ import annotations

import logging

from celery import Task

from workers import clock
from workers.observe import fleet
from workers.pipeline import delivery
from workers.queue import topology
from workers.app import app
from workers.store.db import redis_client
from workers.errors import PermanentError, TransientError
from workers.settings import get_settings

log = logging.getLogger(__name__)
settings = get_settings()


@app.task(name="signal.flush_due", ignore_result=True)
def flush_due() -> int:
    r = redis_client()
    fleet.record_tick(r, clock.now_ms())  # the console's Fleet page shows when beat last ticked
    work = delivery.flush_due(r, settings=get_settings())
    for integration_id, batch_id in work:
        upload.apply_async((integration_id, batch_id))
        log.info("dispatched upload integration=%s batch=%s", integration_id, batch_id,
                 extra={"integration_id": integration_id, "batch_id": batch_id})
    return len(work)


@app.task(name="signal.upload", bind=True, ignore_result=True, acks_late=True, max_retries=None,
          soft_time_limit=settings.upload_timeout_s, time_limit=settings.upload_time_limit_s)
def upload(self: Task, integration_id: str, batch_id: str) -> dict[str, object]:
    try:
        outcome = delivery.upload(redis_client(), integration_id, batch_id, settings=get_settings())
    except TransientError as exc:
        # the batch also waits in our own store (pending at retry_at): a lost retry message is swept up by beat
        raise self.retry(countdown=topology.whole_seconds(exc.retry_in_s), exc=exc) from None
    except PermanentError as exc:
        f = exc.failure
        return {"state": "held", "code": f.code, "message": f.message, "hint": f.hint}
    return {"state": outcome.state, "key": outcome.key, "events": outcome.events}
