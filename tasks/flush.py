"""``signal.flush_due`` (beat) seals due buffers and dispatches uploads; ``signal.upload`` delivers one batch;
``signal.iceberg_maintain_all`` (beat) runs ``signal.iceberg_maintain`` for each integration of the iceberg variant.

The upload's time limits come from the settings through the app's configuration (``task_annotations`` in
``workers.queue.config``): nothing is read when this module is imported.
"""

from __future__ import annotations

import logging

from celery import Task

from workers.app import app
from workers.errors import PermanentError, TransientError
from workers.pipeline import tables
from workers.pipeline.flush import flush_due as seal_due_buffers
from workers.pipeline.upload import upload as upload_batch
from workers.queue import topology
from workers.settings import get_settings
from workers.store.db import redis_client

log = logging.getLogger(__name__)


@app.task(name="signal.flush_due", ignore_result=True)
def flush_due() -> int:
    work = seal_due_buffers(redis_client(), settings=get_settings())
    for integration_id, batch_id in work:
        upload.apply_async((integration_id, batch_id))
        log.info(
            "dispatched upload integration=%s batch=%s",
            integration_id,
            batch_id,
            extra={"integration_id": integration_id, "batch_id": batch_id},
        )
    return len(work)


@app.task(name="signal.upload", bind=True, ignore_result=True, acks_late=True, max_retries=None)
def upload(self: Task, integration_id: str, batch_id: str) -> dict[str, object]:
    try:
        outcome = upload_batch(redis_client(), integration_id, batch_id, settings=get_settings())
    except TransientError as exc:
        # the batch also waits in our own store (pending at retry_at): a lost retry message is swept up by beat
        raise self.retry(countdown=topology.whole_seconds(exc.retry_in_s), exc=exc) from None
    except PermanentError as exc:
        f = exc.failure
        return {"state": "held", "code": f.code, "message": f.message, "hint": f.hint}
    return {"state": outcome.state, "key": outcome.key, "events": outcome.events}


@app.task(name="signal.iceberg_maintain_all", ignore_result=True)
def iceberg_maintain_all() -> int:
    """Beat: one ``signal.iceberg_maintain`` per integration of the iceberg variant."""
    ids = tables.iceberg_ids(redis_client())
    for integration_id in ids:
        iceberg_maintain.apply_async((integration_id,))
    return len(ids)


@app.task(name="signal.iceberg_maintain", ignore_result=True, acks_late=True)
def iceberg_maintain(integration_id: str) -> dict[str, object]:
    return tables.run_maintenance(redis_client(), integration_id, settings=get_settings())
