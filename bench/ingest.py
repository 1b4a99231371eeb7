"""Ingest: raw RPUSH of the stored lines (the limit) and one ``-P solo`` ingest worker draining a prefilled queue."""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis

from bench.events import make_events
from bench.procs import Stack, cpu_s
from workers import clock
from workers.events import prepared
from workers.pipeline import ingest
from workers.queue.producer import Broker
from workers.settings import Settings
from workers.store import keys

BATCH = 500
TIMEOUT_S = 300.0


def serialized_lines(template: list[dict[str, Any]]) -> list[bytes]:
    """The product's stored lines for ``template`` (what the raw RPUSH writes)."""
    p = prepared.prepare(template, "bench", received_at=clock.now(), event_max_bytes=32 * 1024)
    return [line for group in p.lines_by_hour.values() for line in group]


def raw_rpush(r: redis.Redis, lines: list[bytes], total: int) -> dict[str, float]:
    key = f"bench:raw:{uuid.uuid4().hex}"
    calls = total // BATCH
    t0 = time.perf_counter()
    for i in range(calls):
        start = (i * BATCH) % len(lines)
        r.rpush(key, *lines[start : start + BATCH])
    elapsed = time.perf_counter() - t0
    n = r.llen(key)
    r.delete(key)
    return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed}


def wait_ingested(r: redis.Redis, iid: str, total: int) -> int:
    """Events the integration has ingested once it reached ``total`` (or ``TIMEOUT_S`` passed)."""
    deadline = time.monotonic() + TIMEOUT_S
    n = 0
    while n < total and time.monotonic() < deadline:
        time.sleep(0.005)
        n = int(r.hget(keys.stats(iid), "ingested_events") or 0)
    return n


def drain(
    stack: Stack, env: dict[str, str], r: redis.Redis, iid: str, total: int, *, producer: str = "api"
) -> dict[str, Any]:
    """``total`` events in tasks of 500, published before any worker runs, then drained by one ``-P solo`` ingest
    worker; timed from the moment the queue appears to the last event in its buffer.

    ``producer="api"``: published as the API does (``workers.pipeline.ingest.publish``: prepared here,
    ``signal.append``, compressed); ``"plain"``: as a producer that sends ``signal.ingest`` with an uncompressed list
    of event objects and Celery's defaults (the worker prepares them).
    """
    events = make_events(BATCH, seed=11)
    settings = Settings(redis_url=stack.redis.url)
    broker = Broker(settings)
    t0 = time.perf_counter()
    for _ in range(total // BATCH):
        if producer == "api":
            ingest.publish(r, broker, iid, events, settings=settings)
        else:
            broker.app.send_task("signal.ingest", args=[iid, events], queue="ingest")
    publish_s = time.perf_counter() - t0
    broker.close()
    queue_bytes = int(r.memory_usage("ingest") or 0)
    r.rename("ingest", "bench:parked")  # out of sight until the worker is ready
    worker = stack.worker(env, queues="ingest", pool="solo", name=f"drain-{uuid.uuid4().hex[:6]}")
    try:
        time.sleep(1.0)  # let the worker settle after start-up
        cpu0, redis_cpu0 = cpu_s([worker.pid]), cpu_s([stack.redis.pid])
        t0 = time.perf_counter()
        r.rename("bench:parked", "ingest")
        n = wait_ingested(r, iid, total)
        elapsed = time.perf_counter() - t0
        worker_cpu = cpu_s([worker.pid]) - cpu0
        redis_cpu = cpu_s([stack.redis.pid]) - redis_cpu0
    finally:
        stack.stop_process(worker)
    return {
        "events": n,
        "complete": n >= total,
        "seconds": elapsed,
        "events_per_s": n / elapsed,
        "worker_cpu_s": worker_cpu,
        "worker_cpu_us_per_event": worker_cpu / max(n, 1) * 1e6,
        "redis_cpu_us_per_event": redis_cpu / max(n, 1) * 1e6,
        "producer": producer,
        "publish_events_per_s": total / publish_s,
        "queue_bytes": queue_bytes,
        "task_events": BATCH,
    }


def publish_to_buffered(stack: Stack, env: dict[str, str], r: redis.Redis, iid: str, total: int) -> dict[str, Any]:
    """``total`` events published as the API does (each message of 500 prepared here, event by event), while a
    prefork ingest worker (``-c 2``) appends them: timed from the first publish to the last event in its buffer."""
    events = make_events(BATCH, seed=12)
    settings = Settings(redis_url=stack.redis.url)
    broker = Broker(settings)
    worker = stack.worker(env, queues="ingest", concurrency=2, name=f"e2e-{uuid.uuid4().hex[:6]}")
    try:
        time.sleep(1.0)  # let the worker settle after start-up
        t0 = time.perf_counter()
        for _ in range(total // BATCH):
            ingest.publish(r, broker, iid, events, settings=settings)
        publish_s = time.perf_counter() - t0
        n = wait_ingested(r, iid, total)
        elapsed = time.perf_counter() - t0
    finally:
        broker.close()
        stack.stop_process(worker)
    return {
        "events": n,
        "complete": n >= total,
        "seconds": elapsed,
        "events_per_s": n / elapsed,
        "publish_events_per_s": total / publish_s,
    }
