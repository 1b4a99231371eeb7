"""The Celery settings of the fleet: what every producer and worker shares (the broker, its queues, the message
formats) and what the worker app adds (routes, acknowledgements, the beat schedule, time limits).

Configured for at-least-once delivery of task messages made harmless by idempotent tasks: JSON only, late acks,
one reserved message at a time, requeue on worker loss. The broker's side (Redis lists with a visibility timeout
above every retry countdown, or RabbitMQ quorum queues with publisher confirms and a delivery limit) is in
``workers.queue.topology``.
"""

from __future__ import annotations

from typing import Any

from workers.queue import topology, wire
from workers.settings import Settings

TASK_ROUTES = {
    "signal.ingest": {"queue": "ingest"},
    "signal.append": {"queue": "ingest"},
    "signal.upload": {"queue": "flush"},
    "signal.flush_due": {"queue": "flush"},
    "signal.iceberg_maintain_all": {"queue": "flush"},
    "signal.iceberg_maintain": {"queue": "flush"},
}


def broker_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings of the broker connection and the queues, for the worker app and every producer."""
    config: dict[str, Any] = {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        "task_queues": topology.task_queues(settings),
        "task_default_queue": "ingest",
        "task_serializer": "json",
        "accept_content": ["json", wire.PREPARED_CONTENT_TYPE],
    }
    if settings.broker_is_amqp:
        config.update(
            broker_transport_options={"confirm_publish": True},
            task_default_exchange=topology.EXCHANGE,
            task_default_exchange_type="topic",
            task_default_routing_key="ingest",
            task_default_queue_type="quorum",
        )
    else:
        config.update(
            broker_transport_options={
                "visibility_timeout": settings.visibility_timeout_s,
                # look for messages of dead workers every ~10 s (kombu's default sweep is every ~100 s)
                "unacked_restore_interval": 5,
                "unacked_restore_throttle": 2,
            }
        )
    return config


def worker_config(settings: Settings) -> dict[str, Any]:
    """Everything the worker and beat app is configured with (``workers.app``)."""
    return {
        **broker_config(settings),
        "result_backend": None,
        "task_ignore_result": True,
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_routes": TASK_ROUTES,
        # the upload's time limits follow from the settings: above botocore's worst case, below the batch lease
        "task_annotations": {
            "signal.upload": {"soft_time_limit": settings.upload_timeout_s, "time_limit": settings.upload_time_limit_s}
        },
        "beat_schedule": {
            "flush-due": {
                "task": "signal.flush_due",
                "schedule": settings.flush_interval_s,
                # a tick nobody ran in time is replaced by the next one
                "options": {"expires": max(settings.flush_interval_s, 1.0)},
            },
            "iceberg-maintenance": {
                "task": "signal.iceberg_maintain_all",
                "schedule": float(settings.iceberg_maintenance_interval_s),
                "options": {"expires": float(settings.iceberg_maintenance_interval_s)},
            },
        },
        # Soft shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT as deploy/ sets): stop taking work, give
        # in-flight uploads time to finish, then hand unacked messages back to the broker.
        "worker_soft_shutdown_timeout": settings.upload_timeout_s / 4,
        # Task events cost three Redis publishes per task; Flower switches them on when it runs (enable_events).
        "worker_send_task_events": False,
        "enable_utc": True,
        "timezone": "UTC",
    }
