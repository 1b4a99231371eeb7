"""``python -m bench`` (``make bench``): measure the limit and the product side by side; print a table, write JSON.

``BENCH_QUICK=1`` scales every phase down (~1 minute). ``BENCH_KEEP_LOGS=1`` keeps the process logs.
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
RESULTS = Path(__file__).resolve().parent / "results.json"

SIZES = {
    # events per phase
    "ingest": 60_000 if QUICK else 400_000,
    "drain": 200_000 if QUICK else 1_000_000,
    "upload": 30_000 if QUICK else 100_000,
    "upload_repeats": 2 if QUICK else 3,
    "memory": 300_000 if QUICK else 1_300_000,
    "latency_s": 12.0 if QUICK else 30.0,
    "blueprint": 20_000 if QUICK else 100_000,
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
    return {"nproc": os.cpu_count(), "cpu_model": model or platform.processor(), "python": platform.python_version(),
            "platform": platform.platform(), "memory_gb": round(mem_gb, 1), "quick": QUICK}


def drop_integration(r: Any, iid: str) -> None:
    """Every key of one integration (a bench-only cleanup; the product never scans the keyspace)."""
    from workers import keys

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
    print(f"machine: {facts['nproc']} CPUs, {facts['cpu_model']}, {facts['memory_gb']} GB, Python {facts['python']}"
          f"{'  [BENCH_QUICK]' if QUICK else ''}", flush=True)
    stack = Stack().start()
    results: dict[str, Any] = {"machine": facts, "sizes": SIZES, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime())}
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
    from bench import flush, ingest, latency
    from bench.events import make_events
    from tests.support.fleet import install
    from tests.support.s3_fixtures import create_bucket

    r = stack.redis.client()
    s3 = stack.s3()
    bucket = create_bucket(s3, "signal-bench")
    big = {"batch_max_events": 1_000_000, "batch_max_bytes": 5 * GIB, "flush_interval_s": 3600.0,
           "buffer_max_bytes": 16 * GIB}

    def integration(**config: Any) -> str:
        return install(r, bucket, endpoint_url=stack.moto.endpoint, **config)

    # -- ingest ---------------------------------------------------------------------------------------------------
    n = SIZES["ingest"]
    lines = ingest.serialized_lines(make_events(5_000, seed=11))
    step(f"ingest: raw RPUSH of {n:,} events, 500 per call")
    results["ingest_raw"] = ingest.raw_rpush(r, lines, n)
    env = stack.env(SIGNAL_FLUSH_INTERVAL_S="3600", SIGNAL_BUFFER_MAX_BYTES=str(16 * GIB))
    workers = ingest.INGEST_WORKERS
    for topology, what in (("fleet", f"{workers} x -P solo -Q ingest + 1 x -Q flush -c 2 (idle)"),
                           ("single", "1 x prefork -c 2 -Q ingest,flush")):
        step(f"ingest: product, {n:,} events in signal.ingest tasks of 500, {what}")
        iid = integration(**big)
        results[f"ingest_product{'' if topology == 'fleet' else '_single'}"] = ingest.product(
            stack, env, r, iid, n, topology=topology)
        drop_integration(r, iid)
    for topology, what in (("fleet", f"{workers} x -P solo"), ("single", "1 x prefork -c 2")):
        step(f"ingest: naive Celery task (default JSON, RPUSH), {n:,} events, {what}")
        results[f"ingest_naive{'' if topology == 'single' else '_fleet'}"] = ingest.naive(
            stack, env, r, n, topology=topology)
    r.execute_command("FLUSHDB")  # broker leftovers (seen markers, kombu bindings)

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

    # -- flush: upload ------------------------------------------------------------------------------------------------
    n = SIZES["upload"]
    step(f"flush: product s3.put_object / delivery.upload vs bare put_object, {n:,} events x "
         f"{SIZES['upload_repeats']}")
    iid = integration(**big)
    results["upload"] = flush.upload_vs_put(stack, r, iid, bucket, flines, n, settings, SIZES["upload_repeats"])
    drop_integration(r, iid)

    # -- memory -------------------------------------------------------------------------------------------------------
    n = SIZES["memory"]
    step(f"memory: delivery.upload of one batch of {n:,} events in a fresh process")
    iid = integration(**big)
    results["memory"] = flush.memory(stack, stack.env(), r, iid, bucket, flines, n, settings)
    drop_integration(r, iid)
    step(f"memory: delivery.upload of one Parquet batch of {n:,} events in a fresh process")
    iid = integration(variant="parquet", **big)
    results["memory_parquet"] = flush.memory(stack, stack.env(), r, iid, bucket, flines, n, settings)
    drop_integration(r, iid)
    r.execute_command("FLUSHDB")

    # -- blueprint rules ----------------------------------------------------------------------------------------------
    n = SIZES["blueprint"]
    step(f"blueprint: Rules.apply vs envelope.prepare, {n:,} events")
    from bench import blueprint as blueprint_bench

    results["blueprint"] = blueprint_bench.run(n)

    # -- latency + cost -----------------------------------------------------------------------------------------------
    rate = results["ingest_product"]["events_per_s"] / 2
    step(f"latency: {rate:,.0f} events/s for {SIZES['latency_s']:g} s, flush interval {FLUSH_INTERVAL_S:g} s, "
         f"{ingest.INGEST_WORKERS} ingest (solo) + 1 flush (-c 2) workers + beat")
    iid = integration()
    env = stack.env(SIGNAL_FLUSH_INTERVAL_S=str(FLUSH_INTERVAL_S))
    results["latency"] = latency.run(stack, env, r, iid, bucket, "events/", rate, SIZES["latency_s"],
                                     FLUSH_INTERVAL_S)
    drop_integration(r, iid)


def step(text: str) -> None:
    print(f"  .. {text}", flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(name: str, limit: str, product: str, measured: str, target: str, ok: bool | None) -> None:
        rows.append({"measure": name, "limit": limit, "product": product, "result": measured, "target": target,
                     "verdict": "info" if ok is None else verdict(ok)})

    if "ingest_product" in res:
        raw, prod = res["ingest_raw"], res["ingest_product"]
        ratio = prod["events_per_s"] / raw["events_per_s"]
        row(f"ingest events/s ({prod['ingest_processes']} solo ingest workers)",
            f"{raw['events_per_s']:,.0f} raw RPUSH", f"{prod['events_per_s']:,.0f}", f"{ratio:.3f} of raw",
            ">= 0.20 of raw",
            ratio >= 0.20 and prod["complete"])
    if "ingest_naive_fleet" in res and "ingest_product" in res:
        nv, prod = res["ingest_naive_fleet"], res["ingest_product"]
        row("  vs naive Celery task, same topology", f"{nv['events_per_s']:,.0f} naive",
            f"{prod['events_per_s']:,.0f}", f"{prod['events_per_s'] / nv['events_per_s']:.2f}x naive", "reference",
            None)
    if "ingest_product_single" in res:
        raw, single = res["ingest_raw"], res["ingest_product_single"]
        row("ingest, 1 prefork -c 2 worker (make run)", f"{raw['events_per_s']:,.0f} raw RPUSH",
            f"{single['events_per_s']:,.0f}", f"{single['events_per_s'] / raw['events_per_s']:.3f} of raw", "info",
            None)
    if "ingest_naive" in res and "ingest_product_single" in res:
        nv, single = res["ingest_naive"], res["ingest_product_single"]
        row("  vs naive Celery task, prefork -c 2", f"{nv['events_per_s']:,.0f} naive",
            f"{single['events_per_s']:,.0f}", f"{single['events_per_s'] / nv['events_per_s']:.2f}x naive",
            "reference", None)
    if "drain_product" in res:
        raw, prod = res["drain_raw"], res["drain_product"]
        ratio = prod["events_per_s"] / raw["events_per_s"]
        row("flush drain+gzip events/s", f"{raw['events_per_s']:,.0f} LRANGE+isal", f"{prod['events_per_s']:,.0f}",
            f"{ratio:.2f} of raw", ">= 0.70 of raw", ratio >= 0.7)
    if "drain_product_parquet" in res:
        raw, prod = res["drain_raw"], res["drain_product_parquet"]
        gz = res.get("drain_product", {}).get("compressed_bytes") or 0
        row("flush drain+Parquet events/s", f"{raw['events_per_s']:,.0f} LRANGE+isal",
            f"{prod['events_per_s']:,.0f}", f"{prod['events_per_s'] / raw['events_per_s']:.2f} of raw", "info", None)
        if gz:
            size = prod["compressed_bytes"]
            row("  Parquet object size vs gzip NDJSON", f"{gz / 1e6:.1f} MB gz", f"{size / 1e6:.1f} MB",
                f"{size / gz:.2f}x gz", "info", None)
    if "upload" in res:
        u = res["upload"]
        ratio = u["s3_s"] / u["bare_put_s"]
        row(f"upload PUT {u['events'] // 1000}k events ({u['compressed_bytes'] / 1e6:.1f} MB gz), time in S3",
            f"{u['bare_put_s']:.3f} s bare PUT", f"{u['s3_s']:.3f} s", f"{ratio:.2f}x bare", "<= 1.2x",
            ratio <= 1.2)
        full = u["product_s"] / u["bare_put_s"]
        row("  full delivery.upload (claim+drain+gzip+PUT+ack)", f"{u['bare_put_s']:.3f} s bare PUT",
            f"{u['product_s']:.3f} s", f"{full:.1f}x bare", "info", None)
    if "memory" in res:
        m = res["memory"]
        row(f"flush peak RSS ({m['raw_bytes'] / 1e9:.2f} GB batch)", f"{m['baseline_hwm_mb']:.0f} MB at start",
            f"{m['peak_hwm_mb']:.0f} MB", f"{m['peak_hwm_mb']:.0f} MB", "<= 300 MB", m["peak_hwm_mb"] <= 300)
    if "memory_parquet" in res:
        m = res["memory_parquet"]
        row(f"flush peak RSS, Parquet ({m['raw_bytes'] / 1e9:.2f} GB batch, {m['seconds']:.0f} s)",
            f"{m['baseline_hwm_mb']:.0f} MB at start", f"{m['peak_hwm_mb']:.0f} MB", f"{m['peak_hwm_mb']:.0f} MB",
            "<= 300 MB", m["peak_hwm_mb"] <= 300 and m["state"] == "delivered")
    if "blueprint" in res:
        b = res["blueprint"]
        prep = f"{b['prepare_us_per_event']:.1f} us prepare"
        if "ingest_product" in res and res["ingest_product"].get("worker_cpu_s"):
            prod = res["ingest_product"]
            path_us = prod["worker_cpu_s"] / prod["events"] * 1e6
            ratio = b["rules_us_per_event"] / path_us
            row("blueprint rules per event (consent+filter+drop+2 hashes)", f"{path_us:.1f} us ingest CPU/event",
                f"{b['rules_us_per_event']:.2f} us", f"{ratio:.2f} of ingest", "<= 0.25 of ingest", ratio <= 0.25)
        row("  the same vs envelope.prepare alone", prep, f"{b['rules_us_per_event']:.2f} us",
            f"{b['rules_us_per_event'] / b['prepare_us_per_event']:.2f} of prepare", "info", None)
        row("  consent + filter only", prep, f"{b['light_us_per_event']:.2f} us",
            f"{b['light_us_per_event'] / b['prepare_us_per_event']:.2f} of prepare", "info", None)
        row("  default blueprint (forward all events)", prep, f"{b['default_us_per_event']:.3f} us",
            f"{b['default_us_per_event'] / b['prepare_us_per_event']:.3f} of prepare", "info", None)
    if "latency" in res:
        lt = res["latency"]
        limit = f"{FLUSH_INTERVAL_S:g} s interval"
        row(f"latency p50 @ {lt['rate_eps_sent']:,.0f} ev/s", limit, f"{lt['p50_s']:.2f} s", f"{lt['p50_s']:.2f} s",
            "info", None)
        row(f"latency p99 @ {lt['rate_eps_sent']:,.0f} ev/s", limit, f"{lt['p99_s']:.2f} s", f"{lt['p99_s']:.2f} s",
            f"<= {FLUSH_INTERVAL_S + 2:g} s", lt["p99_s"] <= FLUSH_INTERVAL_S + 2
            and lt["delivered_events"] == lt["events"])
        floor = 1e6 / (lt["rate_eps_sent"] * FLUSH_INTERVAL_S)
        row("PUTs per 1M events", f"{floor:,.0f} (1 per interval)", f"{lt['puts_per_million']:,.0f}",
            f"{lt['objects']} objects / {lt['events']:,} events", "info", None)
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
