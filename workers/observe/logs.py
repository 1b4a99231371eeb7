"""Structured logs: one JSON object per line.

Every line has ``ts`` (UTC, ISO-8601 with milliseconds), ``level``, ``logger`` and ``message`` (the same human text
as the text format), then whichever of the context fields below the call site passed in ``extra`` (or the Celery
task context added). Exceptions come as ``exc`` (the formatted traceback). Nothing else of a record is written, so
an unexpected attribute can never carry a payload or a secret into the logs.

Installed on the worker's and beat's handlers by workers/app.py when ``SIGNAL_LOG_FORMAT=json`` (the default).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import orjson

from workers import clock

FIELDS: tuple[str, ...] = (
    "integration_id",
    "batch_id",
    "key",
    "code",
    "events",
    "bytes",
    "attempt",
    "retry_in_s",
    "upload_s",
    "reasons",
    "task_id",
    "task_name",
)


def _default(value: object) -> str:
    return str(value)


class JsonFormatter(logging.Formatter):
    def __init__(self, fields: Iterable[str] = FIELDS) -> None:
        super().__init__()
        self.fields = tuple(fields)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": clock.iso(clock.from_ms(record.created * 1000)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.fields:
            value = record.__dict__.get(name)
            if value is not None and value != "":
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def use_json(loggers: Iterable[logging.Logger], *filters: logging.Filter) -> None:
    """Give every handler of ``loggers`` the JSON formatter (and ``filters``, which may add context fields)."""
    formatter = JsonFormatter()
    for logger in loggers:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
            for f in filters:
                if f not in handler.filters:
                    handler.addFilter(f)
