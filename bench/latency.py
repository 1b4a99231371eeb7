"""Latency and cost at a steady load: ``signal.ingest`` publish -> object visible in the bucket, PUTs per 1M events."""

from __future__ import annotations

import gzip
import re
import statistics
import os
import time
from typing import Any

import redis
from celery import Celery

from bench.events import make_events, with_ids
from bench.procs import Stack

BATCH = 500
POLL_S = 0.2
_TASK_RE = re.compile(rb'"event_id":"t(\d+)-')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def run(stack: Stack, env: dict[str, str], r: redis.Redis, iid: str, bucket: str, prefix: str,
        rate_eps: float, duration_s: float, interval_s: float) -> dict[str, Any]:
    """Send tasks of 500 events at ``rate_eps`` for ``duration_s`` to the deployed topology (one ``-P solo`` ingest
    worker per CPU, one prefork ``-c 2`` flush worker) with beat running; poll the bucket and time each task from
    publish until the object holding its events is listed."""
    s3 = stack.s3()
    template = make_events(BATCH, seed=23)
    workers = stack.fleet(env, ingest_workers=os.cpu_count() or 1)
    beat = stack.beat(env)
    app = Celery("bench-latency", broker=stack.redis.url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False)
    published: dict[int, float] = {}
    visible_at: dict[int, float] = {}  # task -> when the last object holding its events was first listed
    seen_keys: set[str] = set()
    puts = 0

    def poll() -> None:
        nonlocal puts
        now = time.monotonic()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"] in seen_keys:
                    continue
                seen_keys.add(obj["Key"])
                puts += 1
                body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                for t in {int(m) for m in _TASK_RE.findall(body)}:
                    visible_at[t] = max(visible_at.get(t, 0.0), now)

    try:
        period_s = BATCH / rate_eps
        start = time.monotonic()
        next_poll = start
        seq = 0
        with app.producer_or_acquire() as producer:
            while True:
                now = time.monotonic()
                if now - start >= duration_s:
                    break
                due = start + seq * period_s
                if now >= due:
                    events = with_ids(template, f"t{seq}")
                    published[seq] = time.monotonic()
                    app.send_task("signal.ingest", args=[iid, events], queue="ingest", producer=producer)
                    seq += 1
                    continue
                if now >= next_poll:
                    poll()
                    next_poll = time.monotonic() + POLL_S
                    continue
                time.sleep(min(due, next_poll) - now)
        sent_s = time.monotonic() - start
        deadline = time.monotonic() + interval_s * 3 + 30
        while len(visible_at) < len(published) and time.monotonic() < deadline:
            poll()
            time.sleep(POLL_S)
    finally:
        app.close()
        stack.stop_process(beat)
        for worker in workers:
            stack.stop_process(worker)
    lat = [visible_at[t] - published[t] for t in published if t in visible_at]
    events = len(published) * BATCH
    delivered = len(visible_at) * BATCH
    for key in seen_keys:
        s3.delete_object(Bucket=bucket, Key=key)
    return {
        "rate_eps_target": rate_eps, "rate_eps_sent": events / sent_s, "duration_s": sent_s, "events": events,
        "delivered_events": delivered, "objects": puts,
        "p50_s": percentile(lat, 0.50), "p99_s": percentile(lat, 0.99), "max_s": max(lat) if lat else float("nan"),
        "mean_s": statistics.fmean(lat) if lat else float("nan"),
        "puts_per_million": puts / events * 1e6 if events else float("nan"),
    }
