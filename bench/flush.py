"""Flush: draining + compressing a buffer (raw vs product), uploading a batch (bare PUT vs product), peak memory."""

from __future__ import annotations

import inspect
import json
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import redis
from isal import isal_zlib

from bench.procs import Stack
from tests.support.processes import REPO_ROOT
from workers import clock
from workers.integrations import registry
from workers.pipeline import upload
from workers.settings import Settings
from workers.sink import clients, formats, writer
from workers.store import buffer, keys

CHUNK = 10_000
FILL_PER_CALL = 1_000


def fill_list(r: redis.Redis, key: str, lines: list[bytes], total: int) -> int:
    """RPUSH ``total`` lines (cycling ``lines``) to ``key``; returns the bytes written."""
    pipe = r.pipeline(transaction=False)
    nbytes = 0
    for i in range(0, total, FILL_PER_CALL):
        start = i % len(lines)
        part = lines[start : start + FILL_PER_CALL][: total - i]
        pipe.rpush(key, *part)
        nbytes += sum(len(x) for x in part)
        if len(pipe) >= 50:
            pipe.execute()
    pipe.execute()
    return nbytes


MESSAGE_EVENTS = 500  # the API publishes tasks of up to 500 events: a chunk each

try:
    from workers.store.elements import compress as as_appended
except ImportError:  # a version before compressed chunks (side-by-side runs)

    def as_appended(text: bytes) -> bytes:
        return text


def fill_open_buffer(r: redis.Redis, iid: str, lines: list[bytes], total: int) -> str:
    """An open buffer of ``total`` lines for the current hour, as ``append`` leaves it (chunks of the lines of one
    message of 500 events, compressed as the API sends them, the count beside the list); returns the hour."""
    hour = clock.hour_of(clock.now())
    pipe = r.pipeline(transaction=False)
    nbytes = 0
    for i in range(0, total, MESSAGE_EVENTS):
        start = i % len(lines)
        part = lines[start : start + MESSAGE_EVENTS][: total - i]
        pipe.rpush(keys.buffer(iid, hour), as_appended(b"\n".join(part)))
        nbytes += sum(len(x) for x in part)
        if len(pipe) >= 50:
            pipe.execute()
    pipe.execute()
    r.hset(keys.open_count(iid), hour, total)
    r.hset(keys.open_bytes(iid), hour, nbytes)
    r.zadd(keys.open_index(iid), {hour: clock.now_ms()}, nx=True)
    r.hincrby(keys.stats(iid), "buffered_bytes", nbytes)
    r.hincrby(keys.stats(iid), "buffered_events", total)
    return hour


def read_batch(r: redis.Redis, iid: str, batch_id: str, chunk_events: int) -> Any:
    """``buffer.read_batch`` as ``upload.upload`` calls it (with the sealed event count when it takes one)."""
    if "expected_events" in inspect.signature(buffer.read_batch).parameters:
        events = int(r.hget(keys.batch_meta(iid, batch_id), "events") or 0)
        return buffer.read_batch(r, iid, batch_id, chunk_events, events)
    return buffer.read_batch(r, iid, batch_id, chunk_events)


def raw_drain(r: redis.Redis, key: str) -> dict[str, float]:
    """LRANGE in chunks + isal gzip level 1 of the NDJSON: the floor of any drain + encode."""
    t0 = time.perf_counter()
    comp = isal_zlib.compressobj(level=1, wbits=31)
    out = 0
    events = 0
    start = 0
    while True:
        chunk = r.lrange(key, start, start + CHUNK - 1)
        if not chunk:
            break
        out += len(comp.compress(b"\n".join(chunk) + b"\n"))
        events += len(chunk)
        start += CHUNK
    out += len(comp.flush())
    elapsed = time.perf_counter() - t0
    return {"events": events, "seconds": elapsed, "events_per_s": events / elapsed, "compressed_bytes": out}


def product_drain(
    r: redis.Redis, iid: str, hour: str, settings: Settings, variant: str = "default"
) -> dict[str, float]:
    """seal + buffer.read_batch + the variant's encoder (GzipNdjson, ParquetEncoder), in process, no upload."""
    enc = formats.encoder_for(variant)  # pyarrow is imported outside the timed part, as in a warm worker
    t0 = time.perf_counter()
    now_ms = clock.now_ms()
    batch_id = buffer.seal(r, iid, hour, now_ms=now_ms, seal_due_ms=now_ms + int(settings.lease_s * 1000))
    assert batch_id
    out = 0
    for lines in read_batch(r, iid, batch_id, settings.drain_chunk_events):
        out += len(enc.write(lines))
    out += len(enc.finish())
    elapsed = time.perf_counter() - t0
    return {
        "events": enc.events,
        "seconds": elapsed,
        "events_per_s": enc.events / elapsed,
        "compressed_bytes": out,
        "raw_bytes": enc.raw_bytes,
        "batch_id": batch_id,
        "variant": variant,
    }


def seal_batch(r: redis.Redis, iid: str, lines: list[bytes], total: int, settings: Settings) -> str:
    hour = fill_open_buffer(r, iid, lines, total)
    now_ms = clock.now_ms()
    batch_id = buffer.seal(r, iid, hour, now_ms=now_ms, seal_due_ms=now_ms + int(settings.lease_s * 1000))
    assert batch_id
    return batch_id


def upload_vs_put(
    stack: Stack,
    r: redis.Redis,
    iid: str,
    bucket: str,
    lines: list[bytes],
    events: int,
    settings: Settings,
    repeats: int,
) -> dict[str, Any]:
    """The product's S3 requests for one sealed batch vs a bare boto3 put_object of the same compressed bytes.

    Per repeat, on one sealed batch: ``writer.put_object`` of its lines (drain + gzip + PUT;
    ``UploadResult.s3_s`` is the
    time inside S3 requests), then the full ``upload.upload`` (claim, drain, gzip, PUT, ack), then a bare PUT of the
    delivered object's bytes with a plain boto3 client. The product's client is warmed first, as a worker's cached
    client is.
    """
    s3_admin = stack.s3()
    cfg = registry.get(r, iid).config
    clients.client_for(cfg, settings=settings).head_bucket(Bucket=bucket)
    s3_s: list[float] = []  # UploadResult.s3_s: time in S3 requests
    put_object_s: list[float] = []  # writer.put_object wall time: drain + gzip + Content-MD5 + S3 requests
    product_s: list[float] = []  # upload.upload wall time
    bare_s: list[float] = []
    size = 0
    parts = 0
    for _ in range(repeats):
        batch_id = seal_batch(r, iid, lines, events, settings)
        probe_key = f"probe/{uuid.uuid4()}.json.gz"
        t0 = time.perf_counter()
        result = writer.put_object(
            cfg, probe_key, read_batch(r, iid, batch_id, settings.drain_chunk_events), settings=settings
        )
        put_object_s.append(time.perf_counter() - t0)
        s3_s.append(result.s3_s)
        parts = result.parts
        s3_admin.delete_object(Bucket=bucket, Key=probe_key)
        t0 = time.perf_counter()
        outcome = upload.upload(r, iid, batch_id, settings=settings)
        product_s.append(time.perf_counter() - t0)
        assert outcome.state == "delivered", outcome
        body = s3_admin.get_object(Bucket=bucket, Key=outcome.key)["Body"].read()
        size = len(body)
        s3_admin.delete_object(Bucket=bucket, Key=outcome.key)
        key = f"bare/{uuid.uuid4()}.json.gz"
        t0 = time.perf_counter()
        s3_admin.put_object(Bucket=bucket, Key=key, Body=body)
        bare_s.append(time.perf_counter() - t0)
        s3_admin.delete_object(Bucket=bucket, Key=key)
    return {
        "events": events,
        "compressed_bytes": size,
        "parts": parts,
        "s3_s": statistics.median(s3_s),
        "put_object_s": statistics.median(put_object_s),
        "product_s": statistics.median(product_s),
        "bare_put_s": statistics.median(bare_s),
        "s3_runs_s": s3_s,
        "put_object_runs_s": put_object_s,
        "product_runs_s": product_s,
        "bare_runs_s": bare_s,
    }


def memory(
    stack: Stack,
    env: dict[str, str],
    r: redis.Redis,
    iid: str,
    bucket: str,
    lines: list[bytes],
    events: int,
    settings: Settings,
) -> dict[str, Any]:
    """Peak RSS (VmHWM) of a fresh process running ``upload.upload`` of one ~1 GB batch (in the integration's
    variant: gzipped NDJSON or Parquet)."""
    batch_id = seal_batch(r, iid, lines, events, settings)
    raw_bytes = int(r.hget(keys.batch_meta(iid, batch_id), "bytes") or 0)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.memchild", iid, batch_id],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child failed: {proc.stderr.decode()[-2000:]}")
    res = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    cfg = registry.get(r, iid).config
    s3 = stack.s3()
    head = s3.head_object(Bucket=bucket, Key=res["key"])
    s3.delete_object(Bucket=bucket, Key=res["key"])
    return {
        "events": events,
        "raw_bytes": raw_bytes,
        "object_bytes": head["ContentLength"],
        "prefix": cfg.prefix,
        "variant": registry.get(r, iid).variant,
        **res,
    }
