"""``python -m bench`` (``make bench``): measure the limit and the product side by side; print a table, write JSON.

``BENCH_QUICK=1`` scales every phase down (~3 minutes). ``BENCH_ONLY=http`` runs the HTTP phases alone,
``BENCH_ONLY=ingest`` the ingest phases (raw RPUSH and the drains) alone, ``BENCH_ONLY=account`` the delivery overview
and ledger phase (bench/account.py) alone, ``BENCH_ONLY=iceberg`` the Iceberg phases (bench/iceberg.py) alone.
``BENCH_KEEP_LOGS=1`` keeps the process logs.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

QUICK = os.environ.get("BENCH_QUICK") == "1"
ONLY = os.environ.get("BENCH_ONLY", "")
RESULTS = Path(__file__).resolve().parent / "results.json"

SIZES = {
    # events per phase
    "ingest": 50_000 if QUICK else 200_000,
    "drain": 200_000 if QUICK else 1_000_000,
    "upload": 30_000 if QUICK else 100_000,
    "upload_repeats": 2 if QUICK else 3,
    "memory": 300_000 if QUICK else 1_300_000,
    "buffer_memory": 64 * 1024**2 if QUICK else 512 * 1024**2,  # bytes of event lines (bench/scale.py)
    "blueprint": 20_000 if QUICK else 100_000,
    "iceberg": 100_000 if QUICK else 500_000,  # events of one batch, flushed as Parquet and into an Iceberg table
    "iceberg_commits": 5 if QUICK else 15,  # small batches per variant, for the commit's own cost
    # the delivery overview and ledger (bench/account.py): messages of 500 events and acks per run, paired runs,
    # integrations whose seven days of overview and ledger are written (scaled to 1,000)
    "account_messages": 40 if QUICK else 150,
    "account_acks": 500 if QUICK else 2_000,
    "account_rounds": 5 if QUICK else 11,
    "account_integrations": 200 if QUICK else 1_000,
    # seconds per wrk run, and of the end-to-end soak
    "http_s": 3.0 if QUICK else 10.0,
    "soak_s": 15.0 if QUICK else 60.0,
}
FLUSH_INTERVAL_S = 5.0
GIB = 1024**3


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "memory_gb": round(mem_gb, 1),
        "quick": QUICK,
    }


def drop_integration(r: Any, iid: str) -> None:
    """Every key of one integration (a bench-only cleanup; the product never scans the keyspace)."""
    from workers.store import keys

    batch: list[bytes] = []
    for k in r.scan_iter(match=f"{keys.tag(iid)}:*", count=1000):
        batch.append(k)
        if len(batch) >= 500:
            r.unlink(*batch)
            batch.clear()
    if batch:
        r.unlink(*batch)
    r.srem(keys.INTEGRATIONS, iid)


def main() -> int:
    from bench.procs import Stack

    facts = machine()
    print(
        f"machine: {facts['nproc']} CPUs, {facts['cpu_model']}, {facts['memory_gb']} GB, Python {facts['python']}"
        f"{'  [BENCH_QUICK]' if QUICK else ''}",
        flush=True,
    )
    stack = Stack().start()
    results: dict[str, Any] = {
        "machine": facts,
        "sizes": SIZES,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    t_start = time.monotonic()
    try:
        run(stack, results)
    except Exception:  # noqa: BLE001 - report what was measured, then fail
        traceback.print_exc()
        results["error"] = traceback.format_exc()
    finally:
        stack.stop()
    results["wall_s"] = time.monotonic() - t_start
    rows = table(results)
    results["table"] = rows
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {RESULTS} ({results['wall_s']:.0f} s)")
    return 1 if "error" in results else 0


def run(stack: Any, results: dict[str, Any]) -> None:
    os.environ.update(stack.env())
    from workers.settings import get_settings

    get_settings.cache_clear()
    from bench import flush, ingest, partitions, soak
    from bench.events import make_events
    from tests.support.fleet import install
    from tests.support.s3_fixtures import create_bucket

    r = stack.redis.client()
    s3 = stack.s3()
    bucket = create_bucket(s3, "signal-bench")
    big = {
        "batch_max_events": 1_000_000,
        "batch_max_bytes": 5 * GIB,
        "flush_interval_s": 3600.0,
        "buffer_max_bytes": 16 * GIB,
    }

    def integration(**config: Any) -> str:
        return install(r, bucket, endpoint_url=stack.moto.endpoint, **config)

    if ONLY == "http":
        http_phases(stack, r, bucket, results)
        return
    if ONLY == "account":
        account_phase(stack, results)
        return
    if ONLY == "iceberg":
        iceberg_phases(stack, r, bucket, integration, big, results)
        return

    # -- ingest ---------------------------------------------------------------------------------------------------
    n = SIZES["ingest"]
    lines = ingest.serialized_lines(make_events(5_000, seed=11))
    step(f"ingest: raw RPUSH of {n:,} events, 500 per call")
    results["ingest_raw"] = ingest.raw_rpush(r, lines, n)
    env = stack.env(SIGNAL_FLUSH_INTERVAL_S="3600", SIGNAL_BUFFER_MAX_BYTES=str(16 * GIB))
    for producer, what in (
        ("api", "published as the API does (prepared: signal.append, compressed)"),
        ("plain", "published by a plain Celery producer (uncompressed list)"),
    ):
        step(f"ingest: one -P solo worker draining {n:,} events in tasks of 500, {what}")
        iid = integration(**big)
        results[f"ingest_drain_{producer}"] = ingest.drain(stack, env, r, iid, n, producer=producer)
        drop_integration(r, iid)
    step(f"ingest: the same drain with 3 partition fields ({', '.join(partitions.FIELDS)})")
    iid = integration(partition_fields=partitions.FIELDS, **big)
    results["ingest_drain_partitioned"] = ingest.drain(stack, env, r, iid, n, producer="api")
    drop_integration(r, iid)
    step(f"ingest: {n:,} events published as the API does while a prefork worker (-c 2) appends them")
    iid = integration(**big)
    results["ingest_publish_to_buffered"] = ingest.publish_to_buffered(stack, env, r, iid, n)
    drop_integration(r, iid)
    r.execute_command("FLUSHDB")  # broker leftovers (seen markers, kombu bindings)
    if ONLY == "ingest":
        return

    # -- HTTP -------------------------------------------------------------------------------------------------------
    http_phases(stack, r, bucket, results)
    r.execute_command("FLUSHDB")

    # -- flush: drain + encode ----------------------------------------------------------------------------------------
    settings = get_settings()
    n = SIZES["drain"]
    flines = ingest.serialized_lines(make_events(5_000, seed=13))
    step(f"flush: raw LRANGE + isal gzip of {n:,} events")
    flush.fill_list(r, "bench:rawbuf", flines, n)
    results["drain_raw"] = flush.raw_drain(r, "bench:rawbuf")
    r.unlink("bench:rawbuf")
    step(f"flush: product seal + read_batch + GzipNdjson of {n:,} events")
    iid = integration(**big)
    hour = flush.fill_open_buffer(r, iid, flines, n)
    results["drain_product"] = flush.product_drain(r, iid, hour, settings)
    drop_integration(r, iid)
    step(f"flush: product seal + read_batch + ParquetEncoder of {n:,} events")
    iid = integration(variant="parquet", **big)
    hour = flush.fill_open_buffer(r, iid, flines, n)
    results["drain_product_parquet"] = flush.product_drain(r, iid, hour, settings, variant="parquet")
    drop_integration(r, iid)
    step(f"flush: the same {n:,} events in the buffers of 3 partition fields, each sealed, read and gzipped")
    iid = integration(partition_fields=partitions.FIELDS, **big)
    slots = partitions.fill_partitioned(r, iid, flines, n)
    results["drain_partitioned"] = partitions.flush_partitioned(r, iid, slots, settings)
    drop_integration(r, iid)
    iceberg_phases(stack, r, bucket, integration, big, results, memory=False)
    step("flush: the beat's tick with 1 and with 1,000 partitions open, none due")
    iid = integration(partition_fields=["event"], **big)
    results["tick_partitions"] = partitions.tick_costs(r, iid, (1, 1_000), settings)
    drop_integration(r, iid)

    # -- flush: upload ------------------------------------------------------------------------------------------------
    n = SIZES["upload"]
    step(f"flush: product s3.put_object / upload.upload vs bare put_object, {n:,} events x {SIZES['upload_repeats']}")
    iid = integration(**big)
    results["upload"] = flush.upload_vs_put(stack, r, iid, bucket, flines, n, settings, SIZES["upload_repeats"])
    drop_integration(r, iid)

    # -- memory -------------------------------------------------------------------------------------------------------
    n = SIZES["memory"]
    step(f"memory: upload.upload of one batch of {n:,} events in a fresh process")
    iid = integration(**big)
    results["memory"] = flush.memory(stack, stack.env(), r, iid, bucket, flines, n, settings)
    drop_integration(r, iid)
    step(f"memory: upload.upload of one Parquet batch of {n:,} events in a fresh process")
    iid = integration(variant="parquet", **big)
    results["memory_parquet"] = flush.memory(stack, stack.env(), r, iid, bucket, flines, n, settings)
    drop_integration(r, iid)
    step(f"memory: upload.upload of one Iceberg batch of {n:,} events (data file + commit) in a fresh process")
    results["memory_iceberg"] = iceberg_memory(stack, r, bucket, integration, big, flines, n)
    r.execute_command("FLUSHDB")

    # -- blueprint rules ----------------------------------------------------------------------------------------------
    n = SIZES["blueprint"]
    step(f"blueprint: prepared.prepare with rules / partition_time vs alone, {n:,} events")
    from bench import blueprint as blueprint_bench

    results["blueprint"] = blueprint_bench.run(n)
    account_phase(stack, results)

    # -- end to end ---------------------------------------------------------------------------------------------
    api_eps = results["http"]["runs"]["api1 /v1/batch"]["events_per_s"]
    drain_eps = results["ingest_drain_api"]["events_per_s"]
    rate = 0.5 * min(api_eps, drain_eps)
    step(
        f"soak: {rate:,.0f} events/s over HTTP for {SIZES['soak_s']:g} s (1 API process, 1 solo ingest worker, "
        f"1 flush worker -c 2, beat at {FLUSH_INTERVAL_S:g} s) until every event is in the bucket"
    )
    results["soak"] = soak.run(stack, r, bucket, duration_s=SIZES["soak_s"], interval_s=FLUSH_INTERVAL_S, rate_eps=rate)
    run_scale(stack, r, settings, results)


def http_phases(stack: Any, r: Any, bucket: str, results: dict[str, Any]) -> None:
    from bench import http

    step(
        f"http: bare ASGI vs the collection API, {http.CONNECTIONS} connections, {SIZES['http_s']:g} s per run "
        "(track, batch of 20; half rate; lone client; 1 and 2 API processes)"
    )
    results["http"] = http.measure(stack, r, bucket, SIZES["http_s"])
    step("http: one ingest worker puts every accepted event in its buffer")
    http.check_buffers(stack, r, results["http"])


def account_phase(stack: Any, results: dict[str, Any]) -> None:
    """The delivery overview and the object ledger (bench/account.py), on a redis-server of their own."""
    from bench import account

    step(
        f"account: append.lua / ack.lua with and without the overview and ledger ({SIZES['account_rounds']} paired "
        f"runs of {SIZES['account_messages']} messages / {SIZES['account_acks']:,} acks), then Redis memory of "
        f"{account.DAYS} days of {SIZES['account_integrations']:,} integrations, on a private redis-server"
    )
    results["account"] = account.run(stack, SIZES)


def run_scale(stack: Any, r: Any, settings: Any, results: dict[str, Any]) -> None:
    """Outgrowing one machine (bench/scale.py): the tick with thousands of integrations, RabbitMQ + Redis Cluster."""
    from bench import scale

    r.execute_command("FLUSHDB")
    step(
        f"tick: flush_due with {', '.join(f'{n:,}' for n in scale.TICK_SIZES)} integrations, {scale.BUSY} busy, "
        "one Redis and a Redis Cluster of 3 masters"
    )
    results["tick"] = scale.tick(r, settings)
    r.execute_command("FLUSHDB")
    results["tick_cluster"] = scale.tick_on_cluster(stack, settings)
    step(f"memory: Redis used_memory per buffered byte, {SIZES['buffer_memory'] / 1e6:.0f} MB of events")
    results["memory_per_buffer"] = scale.memory(r, SIZES["buffer_memory"], compressed=True)
    results["memory_per_buffer_text"] = scale.memory(r, SIZES["buffer_memory"])
    step(f"ingest: product on RabbitMQ quorum queues + Redis Cluster, {SIZES['ingest']:,} events, 1 x -P solo")
    results["ingest_scaled"] = scale.ingest_scaled(
        stack, stack.env(SIGNAL_FLUSH_INTERVAL_S="3600", SIGNAL_BUFFER_MAX_BYTES=str(16 * GIB)), SIZES["ingest"], 1
    )


def step(text: str) -> None:
    print(f"  .. {text}", flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def iceberg_phases(
    stack: Any,
    r: Any,
    bucket: str,
    integration: Any,
    big: dict[str, Any],
    results: dict[str, Any],
    *,
    memory: bool = True,
) -> None:
    """The iceberg variant next to the parquet variant (bench/iceberg.py), and its flush's peak RSS."""
    from bench import iceberg
    from bench.events import make_events
    from bench.ingest import serialized_lines
    from workers.settings import get_settings

    settings = get_settings()
    flines = serialized_lines(make_events(5_000, seed=13))
    step(
        f"flush: upload.upload of the same {SIZES['iceberg']:,} events as Parquet and into an Iceberg table "
        "(SQLite catalog)"
    )

    pq_iid = integration(variant="parquet", **big)
    ice_iid = integration(variant="iceberg", **big)
    results["iceberg_flush"] = iceberg.flush_pair(
        r, pq_iid, ice_iid, flines, SIZES["iceberg"], settings, SIZES["upload_repeats"]
    )
    step(f"flush: the same with batches of 1,000 events, {SIZES['iceberg_commits']} each")
    results["iceberg_commits"] = iceberg.small_commits(r, pq_iid, ice_iid, flines, settings, SIZES["iceberg_commits"])
    drop_integration(r, pq_iid)
    drop_integration(r, ice_iid)
    if memory:
        n = SIZES["memory"]
        step(f"memory: upload.upload of one Iceberg batch of {n:,} events (data file + commit) in a fresh process")
        results["memory_iceberg"] = iceberg_memory(stack, r, bucket, integration, big, flines, n)


def iceberg_memory(
    stack: Any, r: Any, bucket: str, integration: Any, big: dict[str, Any], flines: list[bytes], n: int
) -> dict[str, Any]:
    from bench import flush
    from workers.settings import get_settings

    iid = integration(variant="iceberg", iceberg_table="memory", prefix="memory/", **big)  # a table per location
    out = flush.memory(stack, stack.env(), r, iid, bucket, flines, n, get_settings())
    drop_integration(r, iid)
    return out


def table(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(name: str, limit: str, product: str, measured: str, target: str, ok: bool | None) -> None:
        rows.append(
            {
                "measure": name,
                "limit": limit,
                "product": product,
                "result": measured,
                "target": target,
                "verdict": "info" if ok is None else verdict(ok),
            }
        )

    if "ingest_drain_api" in res:
        raw, d = res["ingest_raw"], res["ingest_drain_api"]
        ratio = d["events_per_s"] / raw["events_per_s"]
        row(
            "ingest: 1 solo worker drains a prefilled queue (tasks of 500, as the API publishes)",
            f"{raw['events_per_s']:,.0f} ev/s raw RPUSH",
            f"{d['events_per_s']:,.0f} ev/s",
            f"{ratio:.3f} of raw",
            ">= 1.0 of raw",
            ratio >= 1.0 and d["complete"],
        )
        row(
            "  its own CPU per event",
            "",
            f"{d['worker_cpu_us_per_event']:.1f} us",
            f"Redis {d['redis_cpu_us_per_event']:.1f} us",
            "<= 2.5 us, Redis <= 0.5 us",
            d["worker_cpu_us_per_event"] <= 2.5 and d["redis_cpu_us_per_event"] <= 0.5,
        )
    if "ingest_drain_partitioned" in res and "ingest_drain_api" in res:
        plain, d = res["ingest_drain_api"], res["ingest_drain_partitioned"]
        ratio = d["events_per_s"] / plain["events_per_s"]
        row(
            "  the same drain with 3 partition fields",
            f"{plain['events_per_s']:,.0f} ev/s without",
            f"{d['events_per_s']:,.0f} ev/s",
            f"{ratio:.2f} of without, {d['worker_cpu_us_per_event']:.1f} us CPU/event",
            ">= 0.8 of without",
            ratio >= 0.8 and d["complete"],
        )
    if "ingest_publish_to_buffered" in res:
        raw, d = res["ingest_raw"], res["ingest_publish_to_buffered"]
        ratio = d["events_per_s"] / raw["events_per_s"]
        row(
            "  first publish to last event buffered (prepared as the API does, prefork -c 2)",
            f"{raw['events_per_s']:,.0f} ev/s",
            f"{d['events_per_s']:,.0f} ev/s",
            f"{ratio:.3f} of raw",
            ">= 0.15 of raw",
            ratio >= 0.15 and d["complete"],
        )
    if "ingest_drain_plain" in res:
        raw, d = res["ingest_raw"], res["ingest_drain_plain"]
        row(
            "  the same from a plain producer (uncompressed list of events)",
            f"{raw['events_per_s']:,.0f} ev/s",
            f"{d['events_per_s']:,.0f} ev/s",
            f"{d['worker_cpu_us_per_event']:.1f} us CPU/event",
            "info",
            None,
        )
    runs = res.get("http", {}).get("runs", {})
    for path, target in (("/v1/track", 0.5), ("/v1/batch", 0.3)):
        bare, api = runs.get(f"bare {path}"), runs.get(f"api1 {path}")
        if not bare or not api:
            continue
        ratio = api["req_per_s"] / bare["req_per_s"]
        clean = api["errors"] == 0 and api.get("every_event_buffered", False)
        row(
            f"POST {path}{' (20 events)' if path == '/v1/batch' else ''}, {api['connections']} connections, "
            "1 API process",
            f"{bare['req_per_s']:,.0f} req/s bare ASGI",
            f"{api['req_per_s']:,.0f} req/s",
            f"{ratio:.2f} of bare",
            f">= {target} of bare, all 200, all buffered",
            ratio >= target and clean,
        )
        if not clean:
            row(
                "  answered / buffered",
                "",
                f"{api['errors']} errors",
                f"{api.get('buffered_events_of_source', 0):,} of {api['requests'] * api['events_per_request']:,}",
                "all",
                False,
            )
        half = runs.get(f"api1 {path} half rate")
        bare_half = runs.get(f"bare {path} half rate")
        if half:
            limit = f"bare at half its rate: {bare_half['p99_us'] / 1000:.1f} ms" if bare_half else ""
            row(
                f"  p99 latency at half that rate ({half['req_per_s']:,.0f} req/s)",
                limit,
                f"{half['p99_us'] / 1000:.1f} ms",
                f"p50 {half['p50_us'] / 1000:.1f} ms",
                "p99 <= 25 ms",
                half["p99_us"] <= 25_000 and half["errors"] == 0,
            )
        lone = runs.get(f"api1 {path} lone client")
        if lone:
            row(
                "  a lone client sending back to back",
                "",
                f"{lone['p50_us'] / 1000:.1f} ms p50",
                f"p99 {lone['p99_us'] / 1000:.1f} ms, {lone['req_per_s']:,.0f} req/s",
                "p50 <= 5 ms",
                lone["p50_us"] <= 5_000 and lone["errors"] == 0,
            )
        two = runs.get(f"api2 {path}")
        if two:
            row(
                "  2 API processes (--workers 2)",
                f"{api['req_per_s']:,.0f} req/s with 1",
                f"{two['req_per_s']:,.0f} req/s",
                f"{two['req_per_s'] / api['req_per_s']:.2f}x",
                "info",
                None,
            )
            for runs_of, res_ in ((1, api), (2, two)):
                if "redis_cpu_s" in res_:
                    # where the machine's CPUs went: what is left for a second API process
                    busy = {k: res_[f"{k}_cpu_s"] / res_["seconds"] for k in ("api", "wrk", "redis")}
                    row(
                        f"    CPUs busy with {runs_of} API process{'es' if runs_of > 1 else ''}",
                        f"of {os.cpu_count()}",
                        f"API {busy['api']:.2f}",
                        f"wrk {busy['wrk']:.2f}, Redis {busy['redis']:.2f}",
                        "info",
                        None,
                    )
    if "drain_product" in res:
        raw, prod = res["drain_raw"], res["drain_product"]
        ratio = prod["events_per_s"] / raw["events_per_s"]
        row(
            "flush drain+gzip events/s",
            f"{raw['events_per_s']:,.0f} LRANGE+isal",
            f"{prod['events_per_s']:,.0f}",
            f"{ratio:.2f} of raw",
            ">= 0.70 of raw",
            ratio >= 0.7,
        )
    if "drain_partitioned" in res and "drain_product" in res:
        plain, part = res["drain_product"], res["drain_partitioned"]
        ratio = part["events_per_s"] / plain["events_per_s"]
        row(
            f"  the same events in the buffers of 3 partition fields ({part['objects']} objects)",
            f"{plain['events_per_s']:,.0f} ev/s in one",
            f"{part['events_per_s']:,.0f}",
            f"{ratio:.2f} of one buffer",
            ">= 0.8 of one buffer",
            ratio >= 0.8,
        )
    if "tick_partitions" in res:
        one, many = res["tick_partitions"]
        ratio = many["median_s"] / one["median_s"]
        row(
            "tick with 1,000 partitions open (none due), median",
            f"{one['median_s'] * 1000:.2f} ms with 1",
            f"{many['median_s'] * 1000:.2f} ms",
            f"{ratio:.2f}x",
            "flat: <= 1.5x",
            ratio <= 1.5,
        )
    if "drain_product_parquet" in res:
        raw, prod = res["drain_raw"], res["drain_product_parquet"]
        gz = res.get("drain_product", {}).get("compressed_bytes") or 0
        row(
            "flush drain+Parquet events/s",
            f"{raw['events_per_s']:,.0f} LRANGE+isal",
            f"{prod['events_per_s']:,.0f}",
            f"{prod['events_per_s'] / raw['events_per_s']:.2f} of raw",
            "info",
            None,
        )
        if gz:
            size = prod["compressed_bytes"]
            row(
                "  Parquet object size vs gzip NDJSON",
                f"{gz / 1e6:.1f} MB gz",
                f"{size / 1e6:.1f} MB",
                f"{size / gz:.2f}x gz",
                "info",
                None,
            )
    if "iceberg_flush" in res:
        f = res["iceberg_flush"]
        ratio = f["iceberg_events_per_s"] / f["parquet_events_per_s"]
        row(
            f"Iceberg flush of {f['events'] // 1000}k events (data file + commit) events/s",
            f"{f['parquet_events_per_s']:,.0f} Parquet object",
            f"{f['iceberg_events_per_s']:,.0f}",
            f"{ratio:.2f} of Parquet",
            ">= 0.8 of Parquet",
            ratio >= 0.8,
        )
    if "iceberg_commits" in res:
        c = res["iceberg_commits"]
        row(
            "  Iceberg commit overhead per batch (1k-event batches, median upload vs Parquet)",
            f"{c['parquet_s'] * 1000:.0f} ms Parquet upload",
            f"{c['iceberg_s'] * 1000:.0f} ms",
            f"+{c['commit_overhead_s']:.3f} s",
            "<= 0.2 s",
            c["commit_overhead_s"] <= 0.2,
        )
    if "upload" in res:
        u = res["upload"]
        ratio = u["s3_s"] / u["bare_put_s"]
        row(
            f"upload PUT {u['events'] // 1000}k events ({u['compressed_bytes'] / 1e6:.1f} MB gz), time in S3",
            f"{u['bare_put_s']:.3f} s bare PUT",
            f"{u['s3_s']:.3f} s",
            f"{ratio:.2f}x bare",
            "<= 1.2x",
            ratio <= 1.2,
        )
        full = u["product_s"] / u["bare_put_s"]
        row(
            "  full upload.upload (claim+drain+gzip+PUT+ack)",
            f"{u['bare_put_s']:.3f} s bare PUT",
            f"{u['product_s']:.3f} s",
            f"{full:.1f}x bare",
            "info",
            None,
        )
    if "memory" in res:
        m = res["memory"]
        row(
            f"flush peak RSS ({m['raw_bytes'] / 1e9:.2f} GB batch)",
            f"{m['baseline_hwm_mb']:.0f} MB at start",
            f"{m['peak_hwm_mb']:.0f} MB",
            f"{m['peak_hwm_mb']:.0f} MB",
            "<= 300 MB",
            m["peak_hwm_mb"] <= 300,
        )
    if "memory_parquet" in res:
        m = res["memory_parquet"]
        row(
            f"flush peak RSS, Parquet ({m['raw_bytes'] / 1e9:.2f} GB batch, {m['seconds']:.0f} s)",
            f"{m['baseline_hwm_mb']:.0f} MB at start",
            f"{m['peak_hwm_mb']:.0f} MB",
            f"{m['peak_hwm_mb']:.0f} MB",
            "<= 300 MB",
            m["peak_hwm_mb"] <= 300 and m["state"] == "delivered",
        )
    if "memory_iceberg" in res:
        m = res["memory_iceberg"]
        row(
            f"flush peak RSS, Iceberg ({m['raw_bytes'] / 1e9:.2f} GB batch, {m['seconds']:.0f} s)",
            f"{m['baseline_hwm_mb']:.0f} MB at start",
            f"{m['peak_hwm_mb']:.0f} MB",
            f"{m['peak_hwm_mb']:.0f} MB",
            "<= 300 MB",
            m["peak_hwm_mb"] <= 300 and m["state"] == "delivered",
        )
    if "blueprint" in res:
        b = res["blueprint"]
        prep = f"{b['prepare_us_per_event']:.1f} us prepare"
        if "ingest_drain_api" in res:
            # the rules run where events are prepared (the API): the path is that prepare plus the worker's append
            path_us = res["ingest_drain_api"]["worker_cpu_us_per_event"] + b["prepare_us_per_event"]
            ratio = b["rules_us_per_event"] / path_us
            row(
                "blueprint rules per event (consent+filter+drop+2 hashes)",
                f"{path_us:.1f} us prepare + append CPU/event",
                f"{b['rules_us_per_event']:.2f} us",
                f"{ratio:.2f} of ingest",
                "<= 0.25 of ingest",
                ratio <= 0.25,
            )
        row(
            "  the same vs prepared.prepare alone",
            prep,
            f"{b['rules_us_per_event']:.2f} us",
            f"{b['rules_us_per_event'] / b['prepare_us_per_event']:.2f} of prepare",
            "info",
            None,
        )
        row(
            "  consent + filter only",
            prep,
            f"{b['light_us_per_event']:.2f} us",
            f"{b['light_us_per_event'] / b['prepare_us_per_event']:.2f} of prepare",
            "info",
            None,
        )
        row(
            "  default blueprint, received_at (forward all events)",
            prep,
            f"{b['default_us_per_event']:+.3f} us",
            f"{b['default_us_per_event'] / b['prepare_us_per_event']:+.3f} of prepare",
            "info",
            None,
        )
        row(
            "  partition_time timestamp, no rules",
            prep,
            f"{b['timestamp_us_per_event']:.2f} us",
            f"{b['timestamp_us_per_event'] / b['prepare_us_per_event']:.2f} of prepare",
            "info",
            None,
        )
    from bench import account

    for measure in account.rows(res):
        row(*measure)
    if "soak" in res:
        sk = res["soak"]
        row(
            f"soak {sk['duration_s']:.0f} s: HTTP -> objects, sustained",
            f"{sk['rate_eps_target']:,.0f} ev/s asked",
            f"{sk['events_per_s']:,.0f} ev/s",
            f"{sk['objects']} objects",
            "info",
            None,
        )
        row(
            f"  event -> object latency p50 / p99 ({sk['interval_s']:g} s flush interval)",
            "",
            f"{sk['p50_s']:.2f} s / {sk['p99_s']:.2f} s",
            f"max {sk['max_s']:.2f} s",
            f"p99 <= {sk['interval_s'] + 2:g} s",
            sk["p99_s"] <= sk["interval_s"] + 2,
        )
        row(
            "  every event delivered exactly once",
            f"{sk['events_answered']:,} answered",
            f"{sk['unique_events']:,} in objects",
            f"{sk['duplicates']} duplicates",
            "exactly once",
            sk["exactly_once"],
        )
        cost = ", ".join(f"{kind} {v:.3f}" for kind, v in sk["cpu_s_per_1000_events"].items())
        row("  CPU seconds per 1,000 events", "", cost, "", "info", None)
    from bench import scale

    for measure in scale.rows(res, 60.0):
        row(*measure)
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]} if rows else {}
    if rows:
        print()
        print("  ".join(k.ljust(w) for k, w in widths.items()))
        print("  ".join("-" * w for w in widths.values()))
        for r in rows:
            print("  ".join(str(r[k]).ljust(w) for k, w in widths.items()))
    return rows


if __name__ == "__main__":
    sys.exit(main())
