"""End to end: HTTP requests (wrk, paced) -> collection API -> ingest worker -> buffers -> beat's flush -> upload ->
objects in the bucket, for a fixed time. Measures the sustained rate, each event's latency from the API's receipt
(its ``received_at``) to the first listing of its object, exactly-once delivery, and CPU per process kind."""

from __future__ import annotations

import gzip
import statistics
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import orjson
import redis

from bench.http import BATCH_EVENTS, Bodies, Server, run_wrk, write_source
from bench.procs import Stack, cpu_s, process_tree
from workers.store import keys

CONNECTIONS = 16
POLL_S = 0.5


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def run(
    stack: Stack, r: redis.Redis, bucket: str, *, duration_s: float, interval_s: float, rate_eps: float
) -> dict[str, Any]:
    prefix = f"soak-{uuid.uuid4().hex[:6]}/"
    auth, iid = write_source(r, bucket, stack.moto.endpoint, "soak", prefix=prefix)
    # the fleet default per-source limit (1,000 events/s) would answer 429 to most of the load
    env = stack.env(SIGNAL_FLUSH_INTERVAL_S=str(interval_s), SIGNAL_SOURCE_RATE_LIMIT_EPS="0")
    s3 = stack.s3()
    bodies = Bodies()
    api = Server(stack, env, bare=False).start()
    ingest = stack.worker(env, queues="ingest", pool="solo", name=f"soak-ingest-{uuid.uuid4().hex[:6]}")
    flush = stack.worker(env, queues="flush", concurrency=2, name=f"soak-flush-{uuid.uuid4().hex[:6]}")
    beat = stack.beat(env)
    kinds = {
        "api": lambda: api.pids(),
        "ingest worker": lambda: [ingest.pid],
        "flush worker": lambda: process_tree(flush.pid),
        "redis": lambda: [stack.redis.pid],
        "beat": lambda: [beat.pid],
        "moto (S3 stand-in)": lambda: [stack.moto.process.pid],
    }
    cpu0 = {kind: cpu_s(pids()) for kind, pids in kinds.items()}

    seen_keys: set[str] = set()
    counts: dict[str, int] = {}
    latencies: list[float] = []

    def poll() -> None:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"] in seen_keys:
                    continue
                listed = time.time()
                seen_keys.add(obj["Key"])
                body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                for line in body.splitlines():
                    event = orjson.loads(line)
                    counts[event["event_id"]] = counts.get(event["event_id"], 0) + 1
                    received = datetime.fromisoformat(event["received_at"]).timestamp()
                    latencies.append(listed - received)

    load: dict[str, Any] = {}
    requests_per_s = rate_eps / BATCH_EVENTS
    delay_ms = CONNECTIONS / requests_per_s * 1000

    def send() -> None:
        try:
            load.update(
                run_wrk(
                    api.url,
                    "/v1/batch",
                    bodies,
                    auth,
                    connections=CONNECTIONS,
                    duration_s=duration_s,
                    delay_ms=delay_ms,
                    fixed=False,  # every event unique: the soak checks each lands exactly once
                )
            )
        except Exception as exc:  # noqa: BLE001 - reported below
            load["error"] = repr(exc)

    try:
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        while sender.is_alive():
            poll()
            time.sleep(POLL_S)
        if "error" in load:
            raise RuntimeError(f"load generator failed: {load['error']}")
        # everything accepted is delivered within a few ticks: wait for it
        deadline = time.monotonic() + interval_s * 4 + 60
        while time.monotonic() < deadline:
            poll()
            ingested = int(r.hget(keys.stats(iid), "ingested_events") or 0)
            if (
                r.llen("ingest") == 0
                and ingested >= load["requests"] * BATCH_EVENTS
                and sum(counts.values()) >= ingested
            ):
                break
            time.sleep(POLL_S)
        cpu1 = {kind: cpu_s(pids()) for kind, pids in kinds.items()}
    finally:
        bodies.remove()
        for p in (beat, flush, ingest):
            stack.stop_process(p)
        api.stop()
    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.stats(iid)).items()}
    ingested = stats.get("ingested_events", 0)
    delivered = sum(counts.values())
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    answered = load["requests"] * BATCH_EVENTS
    per_1000 = {kind: (cpu1[kind] - cpu0[kind]) / max(delivered, 1) * 1000 for kind in kinds}
    return {
        "duration_s": load["seconds"],
        "interval_s": interval_s,
        "rate_eps_target": rate_eps,
        "connections": CONNECTIONS,
        "requests": load["requests"],
        "http_errors": load["errors"],
        "http_p99_ms": load["p99_us"] / 1000,
        "events_answered": answered,
        "events_per_s": answered / load["seconds"],
        "ingested_events": ingested,
        "delivered_events": delivered,
        "unique_events": len(counts),
        "duplicates": duplicates,
        "exactly_once": duplicates == 0 and len(counts) == ingested and ingested >= answered and load["errors"] == 0,
        "objects": len(seen_keys),
        "rejected": {k: v for k, v in stats.items() if k.startswith("rejected:")},
        "p50_s": percentile(latencies, 0.50),
        "p99_s": percentile(latencies, 0.99),
        "max_s": max(latencies) if latencies else float("nan"),
        "mean_s": statistics.fmean(latencies) if latencies else float("nan"),
        "cpu_s_per_1000_events": per_1000,
    }
