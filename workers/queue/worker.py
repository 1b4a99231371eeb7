"""What the fleet's Celery app does in its worker and beat processes: its configuration, read from the settings when
Celery first needs it (not at import), and the handlers of Celery's signals: RabbitMQ declarations, the Redis
eviction check, JSON logs, task arguments hidden from Flower, and the refusal of an unsafe shutdown setup.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from celery import Celery, bootsteps
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

from workers import compat
from workers.events.message import describe_message
from workers.observe import logs
from workers.queue import take, topology, wire
from workers.queue.config import worker_config
from workers.settings import Settings
from workers.store.db import eviction_warnings, redis_client

# At DEBUG these libraries log request signing and headers, session tokens included: never below INFO.
QUIET_LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3")


def configure(app: Celery, settings: Callable[[], Settings]) -> None:
    """Configure ``app`` from ``settings()`` when Celery first needs its configuration, and connect the handlers that
    run in its worker and beat processes (each reads ``settings()`` when it runs)."""
    wire.install()  # JSON by orjson, each body parsed once, compressed ingest bodies read by isal
    take.install()  # a message leaves its Redis list only into the unacked records
    compat.reuse_kombu_redis_clients()  # not one redis-py client built per ack
    app.add_defaults(lambda: worker_config(settings()))
    app.steps["consumer"].add(_declare_queues_step(settings))
    handlers = _Handlers(app, settings)
    worker_ready.connect(handlers.check_redis, weak=False)
    worker_init.connect(handlers.declare_queues_first, weak=False)
    before_task_publish.connect(hide_arguments, weak=False)
    after_setup_logger.connect(handlers.json_logs, weak=False)
    after_setup_task_logger.connect(handlers.json_task_logs, weak=False)
    celeryd_init.connect(handlers.refuse_unsafe_shutdown, weak=False)
    celeryd_init.connect(handlers.json_from_the_start, weak=False)
    celeryd_after_setup.connect(handlers.banner_as_json, weak=False)


def _declare_queues_step(settings: Callable[[], Settings]) -> type[bootsteps.StartStopStep]:
    """RabbitMQ: every task queue is declared at every (re)connection, not only those a worker consumes (Celery's
    delayed delivery binds them all at start and logs CRITICAL for a queue it cannot find), and so is the dead-letter
    queue (a message past its delivery limit sent to an exchange that does not exist is dropped), with the
    delayed-delivery routes: a retry always reaches its queue. Nothing to do on Redis."""

    class DeclareQueues(bootsteps.StartStopStep):
        requires = {"celery.worker.consumer.connection:Connection"}

        def start(self, c: object) -> None:
            current = settings()
            if current.broker_is_amqp:
                connection = c.connection  # type: ignore[attr-defined]
                topology.declare(connection, current)
                topology.declare_delayed_delivery(connection, current)

    return DeclareQueues


def hide_arguments(body: object = None, headers: dict | None = None, **_: object) -> None:
    """Flower and the broker show ``argsrepr``: ids and counts only, never event payloads."""
    if headers is None or "argsrepr" not in headers:
        return
    args = body[0] if isinstance(body, tuple) and body and isinstance(body[0], list | tuple) else []
    headers["argsrepr"] = repr(
        tuple(
            a
            if isinstance(a, str)
            else f"<{len(a)} items>"
            if isinstance(a, list)
            else describe_message(a)
            if isinstance(a, dict)
            else type(a).__name__
            for a in args
        )
    )
    headers["kwargsrepr"] = "{}"


class _TaskContext(logging.Filter):
    """Adds the running task's id and name to records logged while it runs (worker pool processes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        task = compat.current_task()
        if task is not None and task.request.id:
            record.task_id = task.request.id
            record.task_name = task.name
        return True


_task_context = _TaskContext()


def quiet_aws_libraries() -> None:
    """botocore and its kin never log below INFO, whatever the worker's level (DEBUG would log signed requests)."""
    for name in QUIET_LIBRARIES:
        lib = logging.getLogger(name)
        lib.setLevel(max(lib.getEffectiveLevel(), logging.INFO))


def shutdown_hazard(pool: str, remap_sigterm: str | None) -> str | None:
    """Why this worker must not start, or None. A solo worker runs its task in the process that handles the signal:
    Celery's soft shutdown (REMAP_SIGTERM=SIGQUIT) then stalls for the whole timeout and fails the running task,
    whose message is acked: its events would be lost."""
    if "solo" in pool.lower() and (remap_sigterm or "").upper() == "SIGQUIT":
        return (
            "REMAP_SIGTERM=SIGQUIT must not be set for a -P solo worker (it would fail and drop the running "
            "task at shutdown); unset it for ingest workers, keep it for prefork flush workers"
        )
    return None


class _Handlers:
    """The signal handlers of one app; each reads the settings when it runs."""

    def __init__(self, app: Celery, settings: Callable[[], Settings]) -> None:
        self.app = app
        self.settings = settings

    def check_redis(self, **_: object) -> None:
        for warning in eviction_warnings(redis_client()):
            logging.getLogger("workers.redis").warning("!!! %s !!!", warning)

    def declare_queues_first(self, **_: object) -> None:
        """RabbitMQ: the queues are declared before the consumer starts (and again by ``_DeclareQueues``)."""
        settings = self.settings()
        if not settings.broker_is_amqp:
            return
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=3)
                topology.declare(conn, settings)
                topology.declare_delayed_delivery(conn, settings)
        except Exception as exc:  # noqa: BLE001 - the consumer's own step declares them once the broker is reachable
            logging.getLogger("workers.broker").warning("could not declare the queues yet: %s", exc)

    def json_logs(self, logger: logging.Logger, **_: object) -> None:
        quiet_aws_libraries()
        if self.settings().log_format == "json":
            logs.use_json([logger, get_multiprocessing_logger()], _task_context)

    def json_task_logs(self, logger: logging.Logger, **_: object) -> None:
        if self.settings().log_format == "json":
            logs.use_json([logger], _task_context)

    def refuse_unsafe_shutdown(self, options: dict | None = None, **_: object) -> None:
        options = options or {}
        pool = options.get("pool") or options.get("pool_cls") or self.app.conf.worker_pool
        hazard = shutdown_hazard(str(pool), os.environ.get("REMAP_SIGTERM"))
        if hazard:
            raise SystemExit(f"signal worker: {hazard}")

    def json_from_the_start(self, **_: object) -> None:
        """Warnings the worker emits before Celery sets up logging (e.g. running as root) become JSON records too."""
        if self.settings().log_format != "json":
            return
        logging.captureWarnings(True)
        root = logging.getLogger()
        if not root.handlers:  # Celery replaces the root handlers when it sets up logging
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logs.JsonFormatter())
            root.addHandler(handler)

    def banner_as_json(self, sender: str, instance: object, **_: object) -> None:
        """The worker's start-up banner is printed, not logged: in JSON mode log it as one record instead."""
        if self.settings().log_format != "json" or getattr(instance, "quiet", True):
            return
        instance.quiet = True  # type: ignore[attr-defined]
        info = instance.startup_info(artlines=False) + (instance.extra_info() or "")  # type: ignore[attr-defined]
        logging.getLogger("celery.worker").info("%s starting\n%s", sender, info.strip())
