"""Outgrowing one machine: the flush tick with thousands of integrations, ingest on RabbitMQ + Redis Cluster, and
Redis memory per buffered byte; the figures behind the README's capacity table.

* ``tick``: ``flush.flush_due`` in process with 1,000 and 10,000 installed integrations of which ``BUSY`` have
  something due, on one Redis and on a three-master Redis Cluster. A regular tick reads the integrations the due index
  names; the check tick (once every ``due.CHECK_EVERY_S``) also reads every installed one, as every tick did before
  the index. The limit is the flush interval: a tick must finish well inside it.
* ``ingest_scaled``: ``signal.ingest`` tasks of 500 events through a private RabbitMQ node (quorum queues, publisher
  confirms) to one ``-P solo`` worker per CPU writing to the Redis Cluster; compared with one Redis as broker and store
  (``ingest_drain_api`` of the same run).
* ``memory``: Redis ``used_memory`` per byte of buffered event lines.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.events import make_events
from bench.procs import Stack
from tests.support.fleet import Sender, install
from tests.support.processes import CeleryWorker
from tests.support.scaled import RabbitMQNode, RedisClusterServers
from workers import clock
from workers.integrations import registry
from workers.pipeline import flush, ingest
from workers.settings import Settings
from workers.store import chunks, due, keys

BUSY = 50
TICK_SIZES = (1_000, 10_000)
TICK_ROUNDS = 7  # the fastest of them is reported: other processes of the machine only ever add to a tick's time
GIB = 1024**3


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def tick(r: Any, settings: Settings, sizes: tuple[int, ...] = TICK_SIZES) -> dict[str, Any]:
    """Regular, idle and check ticks as more integrations get installed (``BUSY`` of them receive events)."""
    busy = [install(r, "bench-busy") for _ in range(BUSY)]
    installed = len(busy)
    out: dict[str, Any] = {}
    events = make_events(10, seed=3)
    round_no = 0

    def feed() -> None:
        nonlocal round_no
        round_no += 1
        for iid in busy:
            ingest.ingest(r, iid, events, message_id=f"{iid}-{round_no}", settings=settings)
        registry.clear_cache()  # a flush worker ticks once a minute: its cache of integrations has expired

    for size in sizes:
        while installed < size:
            install(r, "bench-idle")
            installed += 1
        feed()
        r.delete(keys.DUE_CHECKED)
        check_s, work = _timed(lambda: flush.flush_due(r, settings=settings))
        assert len(work) == BUSY, len(work)
        ticks, idle = [], []
        for _ in range(TICK_ROUNDS):
            feed()
            elapsed, work = _timed(lambda: flush.flush_due(r, settings=settings))
            assert len(work) == BUSY, len(work)
            ticks.append(elapsed)
            elapsed, work = _timed(lambda: flush.flush_due(r, settings=settings))
            assert work == [], work
            idle.append(elapsed)
        out[str(size)] = {
            "installed": size,
            "busy": BUSY,
            "tick_s": min(ticks),
            "idle_tick_s": min(idle),
            "check_tick_s": check_s,
            "tick_median_s": statistics.median(ticks),
        }
    return out


def memory(r: Any, total_bytes: int, *, compressed: bool = False) -> dict[str, Any]:
    """Redis memory used per byte of event lines buffered in the open buffers of 100 integrations, in chunks of 500
    events as text (a producer sending JSON) or, ``compressed``, as the API's producer sends them."""
    from bench.ingest import serialized_lines
    from workers.store import elements

    lines = serialized_lines(make_events(500, seed=5))
    size = sum(len(x) for x in lines)
    chunk = chunks.chunk(lines)
    if compressed:
        chunk = chunks.Chunk(elements.compress(chunk.text), chunk.events)
    iids = [f"bench-memory-{n}" for n in range(100)]
    hour = clock.hour_of(clock.now())
    before = int(r.info("memory")["used_memory"])
    buffered, n, now = 0, 0, clock.now_ms()
    while buffered < total_bytes:
        chunks.append(
            r,
            iids[n % len(iids)],
            chunks.Append(message_id=f"m-{n}", now_ms=now, chunks_by_hour={hour: [chunk]}),
            chunks.Limits(
                cap_bytes=64 * GIB,
                batch_max_events=10**9,
                batch_max_bytes=64 * GIB,
                seal_due_ms=now,
                seen_ttl_ms=60_000,
            ),
        )
        buffered += size
        n += 1
    after = int(r.info("memory")["used_memory"])
    for iid in iids:
        found = list(r.scan_iter(match=f"{keys.tag(iid)}:*", count=1000))
        if found:
            r.unlink(*found)
    return {
        "buffered_bytes": buffered,
        "used_memory_bytes": after - before,
        "memory_per_buffered_byte": (after - before) / buffered,
        "event_bytes": size / len(lines),
    }


def ingest_scaled(stack: Stack, base_env: dict[str, str], total: int, workers: int) -> dict[str, Any]:
    """The product's ingest on RabbitMQ quorum queues + a three-master Redis Cluster, timed until every event is in
    its buffer."""
    base = Path(tempfile.mkdtemp(prefix="signal-bench-scaled-", dir=stack.log_dir))
    rabbit = RabbitMQNode(base / "rabbitmq").start()
    cluster = RedisClusterServers(base / "cluster", masters=3).start()
    started: list[CeleryWorker] = []
    try:
        env = {
            **base_env,
            "SIGNAL_BROKER_URL": rabbit.url,
            "SIGNAL_REDIS_CLUSTER": "true",
            "SIGNAL_REDIS_URL": cluster.url,
        }
        settings = Settings(redis_url=cluster.url, redis_cluster=True, broker_url=rabbit.url)
        r = cluster.client()
        iid = install(
            r,
            "signal-bench",
            batch_max_events=1_000_000,
            batch_max_bytes=5 * GIB,
            flush_interval_s=3600.0,
            buffer_max_bytes=16 * GIB,
        )
        tag = uuid.uuid4().hex[:6]
        started = [stack.worker(env, queues="ingest", pool="solo", name=f"ingest{i}-{tag}") for i in range(workers)]
        sender = Sender(settings)
        batch = make_events(500, seed=11)
        t0 = time.perf_counter()
        for _ in range(total // 500):
            sender.ingest(iid, batch)
        published_s = time.perf_counter() - t0
        deadline = time.monotonic() + 300
        done = 0
        while done < total and time.monotonic() < deadline:
            time.sleep(0.02)
            done = int(r.hget(keys.stats(iid), "ingested_events") or 0)
        elapsed = time.perf_counter() - t0
        sender.close()
        r.close()
        return {
            "events": done,
            "seconds": elapsed,
            "publish_s": published_s,
            "events_per_s": done / elapsed,
            "complete": done >= total,
            "ingest_processes": workers,
            "topology": "rabbitmq+redis-cluster(3)",
        }
    finally:
        for w in started:
            stack.stop_process(w)
        cluster.stop()
        rabbit.close()


def tick_on_cluster(stack: Stack, settings: Settings) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="signal-bench-tick-", dir=stack.log_dir))
    cluster = RedisClusterServers(base, masters=3).start()
    try:
        r = cluster.client()
        out = tick(r, settings)
        r.close()
        return out
    finally:
        cluster.stop()


def rows(res: dict[str, Any], interval_s: float) -> list[tuple[str, str, str, str, str, bool | None]]:
    """Rows of the bench table: (measure, limit, product, result, target, ok or None for information)."""
    out: list[tuple[str, str, str, str, str, bool | None]] = []
    for where in ("tick", "tick_cluster"):
        if where not in res:
            continue
        label = "one Redis" if where == "tick" else "Redis Cluster(3)"
        sizes = res[where]
        small, large = sizes[str(TICK_SIZES[0])], sizes[str(TICK_SIZES[-1])]
        limit = f"{interval_s:g} s interval"
        for entry in (small, large):
            share = entry["tick_s"] / interval_s
            out.append(
                (
                    f"tick, {BUSY} busy of {entry['installed']:,} integrations ({label})",
                    limit,
                    f"{entry['tick_s'] * 1000:.0f} ms",
                    f"{share:.4f} of interval",
                    "<= 0.05 of interval",
                    share <= 0.05,
                )
            )
        flat = large["tick_s"] / small["tick_s"]
        out.append(
            (
                f"  tick at {large['installed']:,} / at {small['installed']:,} installed ({label})",
                "flat: 1.0",
                f"{flat:.2f}",
                f"{flat:.2f}x",
                "<= 1.5x",
                flat <= 1.5,
            )
        )
        out.append(
            (
                f"  idle tick at {large['installed']:,} installed ({label})",
                limit,
                f"{large['idle_tick_s'] * 1000:.1f} ms",
                "",
                "info",
                None,
            )
        )
        out.append(
            (
                f"  check tick, every {due.CHECK_EVERY_S // 60} min, {large['installed']:,} installed ({label})",
                limit,
                f"{large['check_tick_s'] * 1000:.0f} ms",
                f"{large['check_tick_s'] / interval_s:.3f} of interval",
                "< 1.0 of interval",
                large["check_tick_s"] < interval_s,
            )
        )
    if "ingest_scaled" in res:
        scaled = res["ingest_scaled"]
        one = res.get("ingest_drain_api", {}).get("events_per_s")
        out.append(
            (
                f"ingest events/s on RabbitMQ + Redis Cluster ({scaled['ingest_processes']} solo workers)",
                f"{one:,.0f} on one Redis" if one else "",
                f"{scaled['events_per_s']:,.0f}",
                f"{scaled['events_per_s'] / one:.2f} of one Redis" if one else "",
                "info",
                None,
            )
        )
    for name, what in (
        ("memory_per_buffer", "as the API sends them (compressed)"),
        ("memory_per_buffer_text", "as text"),
    ):
        if name in res:
            m = res[name]
            out.append(
                (
                    f"Redis memory per GB of buffered events, {what}",
                    f"{m['buffered_bytes'] / 1e6:.0f} MB buffered",
                    f"{m['memory_per_buffered_byte']:.2f} GB",
                    f"{m['event_bytes']:.0f} B/event",
                    "<= 1.15 GB",
                    m["memory_per_buffered_byte"] <= 1.15,
                )
            )
    return out
