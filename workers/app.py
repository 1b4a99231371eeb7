"""The Celery app of the fleet: ``celery -A workers.app worker|beat``.

Configured for at-least-once delivery of task messages made harmless by idempotent tasks: JSON only, late acks,
one reserved message at a time, requeue on worker loss. The broker's side (Redis lists with a visibility timeout
above every retry countdown, or RabbitMQ quorum queues with publisher confirms and a delivery limit) is in
``workers/queue/topology.py``.
"""

from __future__ import annotations

import logging
import os
import sys

from celery import Celery, bootsteps
from celery._state import get_current_task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    celeryd_after_setup,
    celeryd_init,
    worker_init,
    worker_ready,
)
from celery.utils.log import get_multiprocessing_logger

from workers.events import prepared
from workers.observe import logs
from workers.queue import topology, wire
from workers.store.db import eviction_warnings, redis_client
from workers.settings import get_settings

settings = get_settings()

# JSON by orjson, each body parsed once, compressed ingest bodies read by isal (workers/queue/wire.py).
wire.install()

app = Celery("signal", include=["tasks.ingest", "tasks.flush"])
app.conf.update(
    **topology.celery_config(settings),
    result_backend=None,
    task_ignore_result=True,
    result_serializer="json",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_routes={
        "signal.ingest": {"queue": "ingest"},
        "signal.append": {"queue": "ingest"},
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
    # Task events cost three Redis publishes per task; Flower switches them on when it runs (enable_events).
    worker_send_task_events=False,
    enable_utc=True,
    timezone="UTC",
)


@worker_ready.connect
def _check_redis(**_: object) -> None:
    for warning in eviction_warnings(redis_client()):
        logging.getLogger("workers.redis").warning("!!! %s !!!", warning)


# RabbitMQ: every task queue is declared, not only those a worker consumes (Celery's delayed delivery binds them all
# at start and logs CRITICAL for a queue it cannot find), and so is the dead-letter queue (a message past its
# delivery limit sent to an exchange that does not exist is dropped). Before the consumer starts, then again at every
# (re)connection (a broker that lost its definitions), with the delayed-delivery routes: a retry always reaches its
# queue.


@worker_init.connect
def _declare_queues_first(**_: object) -> None:
    if not settings.broker_is_amqp:
        return
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=3)
            topology.declare(conn, settings)
            topology.declare_delayed_delivery(conn, settings)
    except Exception as exc:  # noqa: BLE001 - the consumer's own step declares them once the broker is reachable
        logging.getLogger("workers.queue.producer").warning("could not declare the queues yet: %s", exc)


class DeclareQueues(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.connection:Connection"}

    def start(self, c: object) -> None:
        connection = c.connection  # type: ignore[attr-defined]
        topology.declare(connection, settings)
        topology.declare_delayed_delivery(connection, settings)


if settings.broker_is_amqp:
    app.steps["consumer"].add(DeclareQueues)


@before_task_publish.connect
def _hide_arguments(body: object = None, headers: dict | None = None, **_: object) -> None:
    """Flower and the broker show ``argsrepr``: ids and counts only, never event payloads."""
    if headers is None or "argsrepr" not in headers:
        return
    args = body[0] if isinstance(body, tuple) and body and isinstance(body[0], list | tuple) else []
    headers["argsrepr"] = repr(tuple(a if isinstance(a, str) else f"<{len(a)} items>" if isinstance(a, list)
                                     else prepared.describe(a) if isinstance(a, dict) else type(a).__name__
                                     for a in args))
    headers["kwargsrepr"] = "{}"


# -- logs: one JSON object per line (SIGNAL_LOG_FORMAT=json, the default) or Celery's text format -----------------


class _TaskContext(logging.Filter):
    """Adds the running task's id and name to records logged while it runs (worker pool processes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = get_current_task()
        if task is not None and task.request.id:
            record.task_id = task.request.id
            record.task_name = task.name
        return True


_task_context = _TaskContext()


# At DEBUG these libraries log request signing and headers, session tokens included: never below INFO.
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3")


@after_setup_logger.connect
def _json_logs(logger: logging.Logger, **_: object) -> None:
    for name in QUIET_LIBRARIES:
        lib = logging.getLogger(name)
        lib.setLevel(max(lib.getEffectiveLevel(), logging.INFO))
    if settings.log_format == "json":
        logs.use_json([logger, get_multiprocessing_logger()], _task_context)


@after_setup_task_logger.connect
def _json_task_logs(logger: logging.Logger, **_: object) -> None:
    if settings.log_format == "json":
        logs.use_json([logger], _task_context)


def shutdown_hazard(pool: str, remap_sigterm: str | None) -> str | None:
    """Why this worker must not start, or None. A solo worker runs its task in the process that handles the signal:
    Celery's soft shutdown (REMAP_SIGTERM=SIGQUIT) then stalls for the whole timeout and fails the running task,
    whose message is acked: its events would be lost."""
    if "solo" in pool.lower() and (remap_sigterm or "").upper() == "SIGQUIT":
        return ("REMAP_SIGTERM=SIGQUIT must not be set for a -P solo worker (it would fail and drop the running "
                "task at shutdown); unset it for ingest workers, keep it for prefork flush workers")
    return None


@celeryd_init.connect
def _refuse_unsafe_shutdown(options: dict | None = None, **_: object) -> None:
    options = options or {}
    pool = options.get("pool") or options.get("pool_cls") or app.conf.worker_pool
    hazard = shutdown_hazard(str(pool), os.environ.get("REMAP_SIGTERM"))
    if hazard:
        raise SystemExit(f"signal worker: {hazard}")


@celeryd_init.connect
def _json_from_the_start(**_: object) -> None:
    """Warnings the worker emits before Celery sets up logging (e.g. running as root) become JSON records too."""
    if settings.log_format != "json":
        return
    logging.captureWarnings(True)
    root = logging.getLogger()
    if not root.handlers:  # Celery replaces the root handlers when it sets up logging
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logs.JsonFormatter())
        root.addHandler(handler)


@celeryd_after_setup.connect
def _banner_as_json(sender: str, instance: object, **_: object) -> None:
    """The worker's start-up banner is printed, not logged: in JSON mode log it as one record instead."""
    if settings.log_format != "json" or getattr(instance, "quiet", True):
        return
    instance.quiet = True  # type: ignore[attr-defined]
    info = instance.startup_info(artlines=False) + (instance.extra_info() or "")  # type: ignore[attr-defined]
    logging.getLogger("celery.worker").info("%s starting\n%s", sender, info.strip())
