"""The iceberg variant next to the parquet variant: the same sealed batch flushed by ``upload.upload`` into a
Parquet object and into an Iceberg table (data file + commit), and the commit alone on small batches."""

from __future__ import annotations

import statistics
import time
from typing import Any

import redis

from bench.flush import seal_batch
from workers.pipeline import upload
from workers.settings import Settings


def flush_pair(
    r: redis.Redis,
    parquet_iid: str,
    iceberg_iid: str,
    lines: list[bytes],
    events: int,
    settings: Settings,
    repeats: int,
) -> dict[str, Any]:
    """Median seconds of ``upload.upload`` of one sealed batch of ``events`` events, per variant, alternating."""
    times: dict[str, list[float]] = {"parquet": [], "iceberg": []}
    for _ in range(repeats):
        for variant, iid in (("parquet", parquet_iid), ("iceberg", iceberg_iid)):
            batch_id = seal_batch(r, iid, lines, events, settings)
            t0 = time.perf_counter()
            outcome = upload.upload(r, iid, batch_id, settings=settings)
            times[variant].append(time.perf_counter() - t0)
            assert outcome.state == "delivered", outcome
    parquet_s, iceberg_s = statistics.median(times["parquet"]), statistics.median(times["iceberg"])
    return {
        "events": events,
        "parquet_s": parquet_s,
        "iceberg_s": iceberg_s,
        "parquet_events_per_s": events / parquet_s,
        "iceberg_events_per_s": events / iceberg_s,
        "commit_overhead_s": iceberg_s - parquet_s,
    }


def small_commits(
    r: redis.Redis, parquet_iid: str, iceberg_iid: str, lines: list[bytes], settings: Settings, batches: int
) -> dict[str, Any]:
    """The same for batches of 1,000 events, where the commit is most of an upload: the median difference."""
    pair = flush_pair(r, parquet_iid, iceberg_iid, lines, 1_000, settings, batches)
    return {**pair, "batches": batches}
