"""The Celery app of the fleet: ``celery -A workers.app worker|beat``.

Configured for at-least-once delivery of task messages made harmless by idempotent tasks: JSON only, late acks,
one reserved message at a time, requeue on worker loss, a visibility timeout above every retry countdown.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import before_task_publish, worker_ready
from kombu import Queue

from workers.db import eviction_warning, redis_client
from workers.settings import get_settings

settings = get_settings()

app = Celery("signal", include=["tasks.ingest", "tasks.flush"])
app.conf.update(
    broker_url=settings.redis_url,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": settings.visibility_timeout_s,
        # look for messages of dead workers every ~10 s (kombu's default sweep is every ~100 s)
        "unacked_restore_interval": 5,
        "unacked_restore_throttle": 2,
    },
    result_backend=None,
    task_ignore_result=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_queues=(Queue("ingest"), Queue("flush")),
    task_default_queue="ingest",
    task_routes={
        "signal.ingest": {"queue": "ingest"},
        "signal.upload": {"queue": "flush"},
        "signal.flush_due": {"queue": "flush"},
    },
    beat_schedule={
        "flush-due": {
            "task": "signal.flush_due",
            "schedule": settings.flush_interval_s,
            # a tick nobody ran in time is replaced by the next one
            "options": {"expires": max(settings.flush_interval_s, 1.0)},
        },
    },
    # Soft shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT as deploy/ sets): stop taking work, give
    # in-flight uploads time to finish, then hand unacked messages back to the broker.
    worker_soft_shutdown_timeout=settings.upload_timeout_s / 4,
    worker_send_task_events=True,
    enable_utc=True,
    timezone="UTC",
)


@worker_ready.connect
def _check_redis(**_: object) -> None:
    warning = eviction_warning(redis_client())
    if warning:
        logging.getLogger("workers.redis").warning("!!! %s !!!", warning)


@before_task_publish.connect
def _hide_arguments(body: object = None, headers: dict | None = None, **_: object) -> None:
    """Flower and the broker show ``argsrepr``: ids and counts only, never event payloads."""
    if headers is None or "argsrepr" not in headers:
        return
    args = body[0] if isinstance(body, tuple) and body and isinstance(body[0], list | tuple) else []
    headers["argsrepr"] = repr(tuple(a if isinstance(a, str) else f"<{len(a)} items>" if isinstance(a, list)
                                     else type(a).__name__ for a in args))
    headers["kwargsrepr"] = "{}"
