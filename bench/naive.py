"""The naive reference: a Celery app with defaults (kombu JSON) whose task RPUSHes the events as JSON lines.

``celery -A bench.naive worker -Q naive``; the broker is ``SIGNAL_REDIS_URL``, read once here.
"""

from __future__ import annotations

import json
import os

import redis
from celery import Celery

_url = os.environ.get("SIGNAL_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench-naive", broker=_url)
app.conf.update(task_ignore_result=True, task_default_queue="naive")
_r: redis.Redis | None = None


@app.task(name="bench.naive_rpush")
def naive_rpush(key: str, events: list) -> int:
    global _r
    if _r is None:
        _r = redis.Redis.from_url(_url)
    return int(_r.rpush(key, *(json.dumps(e, separators=(",", ":")) for e in events)))
