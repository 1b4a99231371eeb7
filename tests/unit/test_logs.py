"""JSON logs: one object per line with the human message and the known context fields, nothing else."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from workers.observe import logs


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_a_record_is_one_json_line_with_message_and_context_fields():
    logger, stream = capture(logs.JsonFormatter())
    logger.info(
        "delivered integration=%s events=%d",
        "i-1",
        3,
        extra={
            "integration_id": "i-1",
            "batch_id": "b-1",
            "key": "events/2026/11/25/09/b-1.json.gz",
            "events": 3,
            "bytes": 120,
            "payload": {"secret": "x"},
        },
    )
    [doc] = lines(stream)
    assert doc["level"] == "INFO" and doc["logger"] == logger.name
    assert doc["message"] == "delivered integration=i-1 events=3"
    assert doc["ts"].endswith("Z") and "T" in doc["ts"]
    assert {k: doc[k] for k in ("integration_id", "batch_id", "key", "events", "bytes")} == {
        "integration_id": "i-1",
        "batch_id": "b-1",
        "key": "events/2026/11/25/09/b-1.json.gz",
        "events": 3,
        "bytes": 120,
    }
    assert "payload" not in doc  # only the known fields are written


def test_a_multiline_message_and_an_exception_stay_on_one_line():
    logger, stream = capture(logs.JsonFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("first line\nsecond line", extra={"code": "InternalError", "reasons": ["a", "b"]})
    assert len(stream.getvalue().splitlines()) == 1
    [doc] = lines(stream)
    assert doc["message"] == "first line\nsecond line"
    assert doc["level"] == "ERROR" and doc["code"] == "InternalError" and doc["reasons"] == ["a", "b"]
    assert "ValueError: boom" in doc["exc"]


def test_values_json_cannot_hold_are_written_as_text():
    logger, stream = capture(logs.JsonFormatter())
    logger.warning("odd", extra={"key": object.__new__(type("Thing", (), {"__str__": lambda self: "thing"}))})
    assert lines(stream)[0]["key"] == "thing"


def test_use_json_sets_the_formatter_and_filters_of_every_handler():
    logger, stream = capture(logging.Formatter("%(message)s"))

    class AddTask(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.task_id = "t-1"
            return True

    f = AddTask()
    logs.use_json([logger], f)
    logs.use_json([logger], f)  # idempotent
    logger.info("hello")
    [doc] = lines(stream)
    assert doc["message"] == "hello" and doc["task_id"] == "t-1"
    assert logger.handlers[0].filters == [f]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_log_format_setting_decides_the_worker_formatter(monkeypatch, fmt):
    from celery import Celery

    from workers.queue import worker
    from workers.settings import Settings

    handlers = worker._Handlers(Celery("logs-test", set_as_current=False), lambda: Settings(log_format=fmt))
    logger, _ = capture(logging.Formatter("%(message)s"))
    handlers.json_logs(logger=logger)
    assert isinstance(logger.handlers[0].formatter, logs.JsonFormatter) is (fmt == "json")
