"""Ingest throughput: raw RPUSH, the product end to end through Celery (deployed topology and a single prefork
worker), and a naive Celery task."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from bench.events import make_events
from bench.procs import Stack
from tests.support.processes import CeleryWorker
from workers import clock, envelope, keys

BATCH = 500
TIMEOUT_S = 300.0
# One single-process ingest worker per CPU, as deployed.
INGEST_WORKERS = os.cpu_count() or 1


def serialized_lines(template: list[dict[str, Any]]) -> list[bytes]:
    """The product's stored lines for ``template`` (what the raw RPUSH writes)."""
    p = envelope.prepare(template, "bench", received_at=clock.now(), event_max_bytes=32 * 1024)
    return [line for group in p.lines_by_hour.values() for line in group]


def raw_rpush(r: redis.Redis, lines: list[bytes], total: int) -> dict[str, float]:
    key = f"bench:raw:{uuid.uuid4().hex}"
    calls = total // BATCH
    t0 = time.perf_counter()
    for i in range(calls):
        start = (i * BATCH) % len(lines)
        r.rpush(key, *lines[start:start + BATCH])
    elapsed = time.perf_counter() - t0
    n = r.llen(key)
    r.delete(key)
    return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed}


def _sender(url: str) -> Celery:
    app = Celery("bench-producer", broker=url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False)
    return app


def _publish_and_wait(app: Celery, task: str, queue: str, batches: list[list[dict[str, Any]]], arg0: str,
                      total: int, done: Any) -> dict[str, float]:
    """Publish ``total`` events in tasks of ``len(batches[i])`` (cycling), then poll ``done()`` until it reaches
    ``total``. Returns publish and end-to-end timings."""
    calls = total // BATCH
    with app.producer_or_acquire() as producer:
        t0 = time.perf_counter()
        for i in range(calls):
            app.send_task(task, args=[arg0, batches[i % len(batches)]], queue=queue, producer=producer)
        published_s = time.perf_counter() - t0
    deadline = time.monotonic() + TIMEOUT_S
    n = done()
    while n < calls * BATCH and time.monotonic() < deadline:
        time.sleep(0.02)
        n = done()
    elapsed = time.perf_counter() - t0
    return {"events": n, "seconds": elapsed, "publish_s": published_s, "events_per_s": n / elapsed,
            "complete": n >= calls * BATCH}


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc; 0 where unreadable)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _measure(stack: Stack, workers: list[CeleryWorker], app_name: str, task: str, queue: str, arg0: str, total: int,
             done: Any) -> dict[str, Any]:
    try:
        pids = [p for w in workers for p in (w.pid, *w.child_pids())]
        cpu0 = _cpu_s(pids)
        app = _sender(stack.redis.url)
        res: dict[str, Any] = _publish_and_wait(app, task, queue, [make_events(BATCH, seed=11)], arg0, total, done)
        app.close()
        res["worker_cpu_s"] = _cpu_s(pids) - cpu0
        res["worker_pids"] = pids
        res["app"] = app_name
        return res
    finally:
        for w in workers:
            stack.stop_process(w)


def product(stack: Stack, env: dict[str, str], r: redis.Redis, iid: str, total: int, *,
            topology: str) -> dict[str, Any]:
    """``signal.ingest`` tasks of 500 events to real workers; timed until every event is in its buffer.

    ``topology="fleet"``: the deployed one, one ``-P solo`` ingest worker per CPU plus an idle flush worker.
    ``topology="single"``: one prefork ``-c 2`` worker on ``ingest,flush`` (what ``make run`` starts).
    Message ids differ per task; event ids repeat across tasks (there is no per-event dedup).
    """
    if topology == "fleet":
        workers = stack.fleet(env, ingest_workers=INGEST_WORKERS)
    elif topology == "single":
        workers = [stack.worker(env, queues="ingest,flush", concurrency=2, name=f"single-{uuid.uuid4().hex[:6]}")]
    else:
        raise ValueError(topology)
    stats_key = keys.stats(iid)

    def done() -> int:
        return int(r.hget(stats_key, "ingested_events") or 0)

    res = _measure(stack, workers, "workers.app", "signal.ingest", "ingest", iid, total, done)
    res["topology"] = topology
    res["ingest_processes"] = INGEST_WORKERS if topology == "fleet" else 2
    return res


def naive(stack: Stack, env: dict[str, str], r: redis.Redis, total: int, *, topology: str) -> dict[str, Any]:
    """The naive reference task (default kombu JSON, RPUSH of ``json.dumps`` lines) on the same kind of topology."""
    key = f"bench:naive:{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex[:6]
    if topology == "fleet":
        workers = stack.fleet(env, ingest_workers=INGEST_WORKERS, app="bench.naive", queue="naive",
                              flush_worker=False)
    elif topology == "single":
        workers = [stack.worker(env, queues="naive", concurrency=2, app="bench.naive", name=f"naive-{tag}")]
    else:
        raise ValueError(topology)
    res = _measure(stack, workers, "bench.naive", "bench.naive_rpush", "naive", key, total, lambda: r.llen(key))
    r.delete(key)
    res["topology"] = topology
    return res
