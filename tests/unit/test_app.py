"""The Celery configuration the delivery guarantees rely on."""

from __future__ import annotations

from kombu import Queue

from workers.app import app
from workers.queue.worker import hide_arguments
from workers.settings import Settings, get_settings


def test_celery_is_configured_for_idempotent_at_least_once_work():
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json", "application/x-signal-prepared"]
    from tasks.ingest import append

    assert append.serializer == "signal-prepared"  # its retries keep the lines as bytes
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert {q.name for q in conf.task_queues} == {"ingest", "flush"}
    assert all(isinstance(q, Queue) for q in conf.task_queues)
    routes = conf.task_routes
    assert routes["signal.ingest"]["queue"] == routes["signal.append"]["queue"] == "ingest"
    assert routes["signal.upload"]["queue"] == "flush"
    assert routes["signal.flush_due"]["queue"] == "flush"
    settings = get_settings()
    assert conf.broker_transport_options["visibility_timeout"] == settings.visibility_timeout_s
    assert conf.beat_schedule["flush-due"]["schedule"] == settings.flush_interval_s


def test_no_retry_countdown_reaches_the_visibility_timeout():
    settings = get_settings()
    assert settings.retry_backoff_max_s < settings.visibility_timeout_s
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="VISIBILITY_TIMEOUT"):
        Settings(visibility_timeout_s=60, retry_backoff_max_s=60)


def test_time_limits_sit_above_botocores_worst_case():
    import pytest
    from pydantic import ValidationError

    s = get_settings()
    worst = (s.s3_connect_timeout_s + s.s3_read_timeout_s) * s.s3_max_attempts
    assert worst <= s.upload_timeout_s < s.upload_time_limit_s < s.lease_s
    with pytest.raises(ValidationError, match="worst case"):
        Settings(upload_timeout_s=10, s3_read_timeout_s=30)
    import tasks.flush  # noqa: F401  (registers the tasks)

    upload = app.tasks["signal.upload"]
    assert upload.soft_time_limit == s.upload_timeout_s
    assert upload.time_limit == s.upload_time_limit_s


def test_published_task_arguments_show_ids_and_counts_only():
    headers = {"argsrepr": "('id', [{'user_id': 'alice@example.com'}])", "kwargsrepr": "{}"}
    body = (["int-1", [{"user_id": "alice@example.com"}, {"user_id": "bob"}]], {}, {})
    hide_arguments(body=body, headers=headers)
    assert headers["argsrepr"] == "('int-1', '<2 items>')"
    assert "alice" not in headers["argsrepr"]
    # signal.append's prepared message (as a retry re-publishes it) and any other object: counts or a type name
    message = {
        "v": 1,
        "hours": {"2026112715": '{"user_id":"alice@example.com"}'},
        "indexes": {"2026112715": [0]},
        "rejected": [[1, "invalid_type", "type is required", None]],
        "live": [],
    }
    headers = {"argsrepr": "...", "kwargsrepr": "{}"}
    hide_arguments(body=(["int-1", message], {}, {}), headers=headers)
    assert headers["argsrepr"] == "('int-1', '<2 events: 1 prepared, 1 rejected, 0 removed>')"
    hide_arguments(body=(["int-1", {"user_id": "alice@example.com"}], {}, {}), headers=headers)
    assert headers["argsrepr"] == "('int-1', '<dict>')"


def test_aws_libraries_never_log_below_info_even_when_the_worker_does():
    import logging

    from workers.queue.worker import QUIET_LIBRARIES, quiet_aws_libraries

    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        quiet_aws_libraries()
        for name in QUIET_LIBRARIES:
            assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    finally:
        root.setLevel(old)


def test_ingest_retries_redis_blips_only():
    import redis
    from redis.exceptions import ClusterDownError, OutOfMemoryError, SlotNotCoveredError, TryAgainError

    import tasks.ingest  # noqa: F401  (registers the task)
    from workers.store.chunks import NotReplicated

    task = app.tasks["signal.ingest"]
    # a lost connection, a cluster between a master's loss and its replica's promotion, a full Redis
    assert set(task.autoretry_for) == {
        redis.ConnectionError,
        redis.TimeoutError,
        ClusterDownError,
        TryAgainError,
        SlotNotCoveredError,
        OutOfMemoryError,
    }
    assert issubclass(NotReplicated, redis.TimeoutError)  # an append short of SIGNAL_REDIS_MIN_REPLICAS
    assert not any(issubclass(redis.ResponseError, e) for e in task.autoretry_for)
    assert task.retry_backoff_max < get_settings().visibility_timeout_s


def test_a_solo_worker_refuses_the_soft_shutdown_remap():
    from celery.concurrency.prefork import TaskPool as Prefork
    from celery.concurrency.solo import TaskPool as Solo

    from workers.queue.worker import shutdown_hazard

    assert "REMAP_SIGTERM" in shutdown_hazard(str(Solo), "SIGQUIT")
    assert shutdown_hazard("solo", "sigquit")
    assert shutdown_hazard(str(Solo), None) is None
    assert shutdown_hazard(str(Prefork), "SIGQUIT") is None


def test_the_access_log_hides_write_keys_in_query_strings():
    import logging

    from workers.web.app import RedactWriteKeys

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/beacon/v1/batch?writeKey=wk_secret&x=1", "1.1", 200),
        None,
    )
    assert RedactWriteKeys().filter(record) is True
    assert record.getMessage() == '127.0.0.1:5 - "POST /beacon/v1/batch?writeKey=****&x=1 HTTP/1.1" 200'


def test_the_api_writes_no_access_log_unless_asked(monkeypatch):
    import uvicorn

    from workers.settings import get_settings
    from workers.web import app

    runs: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **options: runs.append(options))
    for value, expected in ((None, False), ("true", True)):
        if value is None:
            monkeypatch.delenv("SIGNAL_API_ACCESS_LOG", raising=False)
        else:
            monkeypatch.setenv("SIGNAL_API_ACCESS_LOG", value)
        get_settings.cache_clear()
        app.serve(port=9001)
        assert runs[-1]["access_log"] is expected
        assert (runs[-1]["loop"], runs[-1]["http"]) == ("uvloop", "httptools")
    get_settings.cache_clear()
