"""Redis side of the pipeline: hourly buffers, sealed batches and their lifecycle, each step one Lua script.

Lifecycle of a batch (see workers/store/keys.py for the key schema):
  open buffer --seal (RENAME)--> batch [pending] --claim--> leased --ack--> gone (delivered)
                                                               |--fail--> pending again at retry_at
                                                               `--hold--> dead (dead-letter) --release--> pending
Every step is atomic and idempotent, so redelivered, concurrent or crashed work never loses or doubles an event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from workers import clock
from workers.errors import SignalError
from workers.store import keys, overview
from workers.store.db import text
from workers.store.elements import DamagedBatch, lines_text
from workers.store.histograms import LATENCY_BUCKETS_S, UPLOAD_BUCKETS_S, lua_buckets
from workers.store.scripts import SCRIPTS

LIST_MAX = 100  # recent rejections and recent live events kept per integration
TRACE_TTL_MS = 48 * 3600 * 1000  # how long the path event -> batch -> object stays traceable
PIN_TTL_MS = 15 * 60 * 1000  # how long a test event stays pinned on top of Live Events


def prefixes(iid: str) -> list[object]:
    """The key prefixes _lib.lua builds per-hour and per-batch keys from, in its order."""
    return [
        keys.buffer_prefix(iid),
        keys.batch(iid, ""),
        keys.batch_meta(iid, ""),
        keys.generation(iid, ""),
        keys.sealed(iid, "", "")[:-1],
        keys.delivered(iid, ""),
        TRACE_TTL_MS,
        keys.open_last(iid),
        keys.open_count(iid),
    ]


def overview_at(iid: str, now_ms: int) -> tuple[str, str, str]:
    """The overview block key of the hour of ``now_ms``, its block suffix and its field prefix."""
    hour = clock.hour_of_ms(now_ms)
    block = overview.block_of(hour)
    return keys.overview(iid, block), block, overview.field_prefix(hour)


def open_buffers(r: redis.Redis, iids: Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """The index of open buffers: integration id -> [(hour, first append ms)]."""
    pipe = r.pipeline(transaction=False)
    for iid in iids:
        pipe.zrange(keys.open_index(iid), 0, -1, withscores=True)
    return {iid: [(text(h), int(s)) for h, s in rows] for iid, rows in zip(iids, pipe.execute(), strict=True) if rows}


def seal(r: redis.Redis, iid: str, hour: str, *, now_ms: int, seal_due_ms: int) -> str | None:
    """Seal the open buffer of ``hour`` into a new batch; None when there was nothing to seal."""
    batch_id = str(uuid.uuid4())
    n = SCRIPTS.seal(
        keys=[keys.open_index(iid), keys.open_bytes(iid), keys.pending(iid)],
        args=[hour, batch_id, now_ms, seal_due_ms, *prefixes(iid)],
        client=r,
    )
    return batch_id if int(n) > 0 else None


@dataclass(frozen=True)
class Claim:
    state: str  # ok | gone | dead | leased
    hour: str = ""
    events: int = 0
    bytes: int = 0
    attempts: int = 0
    claims: int = 0
    retry_since_ms: int | None = None  # the first failure since sealed or last replayed (the retry age)
    key: str = ""
    first_ms: int = 0  # when the batch's first event was appended
    last_ms: int = 0  # and its last


def claim(r: redis.Redis, iid: str, batch_id: str, *, token: str, now_ms: int, lease_ms: int, key: str) -> Claim:
    res = SCRIPTS.claim(
        keys=[keys.batch_meta(iid, batch_id), keys.pending(iid)],
        args=[batch_id, now_ms, lease_ms, token, key],
        client=r,
    )
    state = text(res[0])
    if state != "ok":
        return Claim(state)
    _, hour, events, nbytes, attempts, claims, retry_since, obj_key, first_ms, last_ms = res
    return Claim(
        "ok",
        text(hour),
        int(events),
        int(nbytes),
        int(attempts),
        int(claims),
        int(retry_since) if retry_since else None,
        text(obj_key),
        int(float(first_ms or now_ms)),
        int(float(last_ms or now_ms)),
    )


def next_step(step: int, elements: int, events: int, wanted_events: int) -> int:
    """How many elements to read next for about ``wanted_events`` lines, from the lines per element of the last read:
    at most twice the last step, so a run of small chunks before large ones never makes one read take a batch."""
    return max(1, min(2 * step, wanted_events * elements // max(events, 1)))


class BatchVanished(SignalError):
    """The batch was finished by another uploader while this one was reading it."""


def read_batch(
    r: redis.Redis, iid: str, batch_id: str, chunk_events: int, expected_events: int
) -> Iterator[list[bytes]]:
    """The sealed batch's chunks, about ``chunk_events`` events at a time (a batch never changes once sealed).

    Each item is a list of elements, each one or more lines joined by newlines (inflated when stored compressed).
    Reads to the end of the list and raises BatchVanished, before the last elements are handed out, when they hold
    fewer than ``expected_events`` lines: an uploader must never complete an object from a batch someone else already
    delivered and deleted. A batch still there with fewer lines, or a compressed chunk that does not inflate, raises
    ``DamagedBatch`` (permanent: the batch is held).
    """
    key = keys.batch(iid, batch_id)
    start, seen, step = 0, 0, 1
    while True:
        elements = [lines_text(e) for e in r.lrange(key, start, start + step - 1)]
        events = sum(e.count(b"\n") for e in elements) + len(elements)
        if len(elements) < step:  # the end of the list
            if seen + events < expected_events:
                if r.exists(key):  # not finished by another uploader: it never held them
                    raise DamagedBatch(f"the batch holds {seen + events} lines of its {expected_events} events")
                raise BatchVanished(batch_id)
            if elements:
                yield elements
            return
        start, seen = start + len(elements), seen + events
        yield elements
        step = next_step(step, len(elements), events, chunk_events)


def ack(
    r: redis.Redis,
    iid: str,
    batch_id: str,
    *,
    now_ms: int,
    compressed_bytes: int,
    key: str,
    upload_s: float | None = None,
    ledger_record: tuple[bytes, bytes] = (b"", b""),
    ledger_ttl_ms: int = 7 * 86_400_000,
) -> bool:
    """Finish a delivered batch: delete it, count the delivery, observe the histograms (the latency from its first
    event's append to ``now_ms``, and ``upload_s``, the successful upload attempt, when given), count it in the
    delivery overview and append ``ledger_record`` (header and record, ``workers.store.ledger.pack``) to the ledger of
    the day, kept ``ledger_ttl_ms``.

    True when this call finished the batch; False when it was already gone (nothing is counted twice).
    """
    upload_us = "" if upload_s is None else max(round(upload_s * 1_000_000), 0)
    ov_key, _, hh = overview_at(iid, now_ms)
    return bool(
        SCRIPTS.ack(
            keys=[
                keys.batch_meta(iid, batch_id),
                keys.batch(iid, batch_id),
                keys.pending(iid),
                keys.dead(iid),
                keys.stats(iid),
                keys.status(iid),
                keys.delivered(iid, batch_id),
                keys.hist_upload(iid),
                keys.hist_latency(iid),
                ov_key,
                keys.ledger(iid, clock.hour_of_ms(now_ms)[:8]),
                keys.ledger_head(iid, clock.hour_of_ms(now_ms)[:8]),
            ],
            args=[
                batch_id,
                now_ms,
                compressed_bytes,
                key,
                TRACE_TTL_MS,
                upload_us,
                hh,
                overview.RETENTION_S,
                ledger_ttl_ms,
                *ledger_record,
                *overview.lua_latency_bounds(),
                *lua_buckets(LATENCY_BUCKETS_S),
                *lua_buckets(UPLOAD_BUCKETS_S),
            ],
            client=r,
        )
    )


def fail(
    r: redis.Redis, iid: str, batch_id: str, *, token: str, now_ms: int, retry_at_ms: int, code: str, message: str
) -> str:
    return text(
        SCRIPTS.fail(
            keys=[keys.batch_meta(iid, batch_id), keys.pending(iid), keys.status(iid), keys.stats(iid)],
            args=[batch_id, token, now_ms, retry_at_ms, code, message],
            client=r,
        )
    )


def hold(
    r: redis.Redis, iid: str, batch_id: str, *, token: str, now_ms: int, code: str, message: str, hint: str
) -> str:
    ov_key, block, hh = overview_at(iid, now_ms)
    return text(
        SCRIPTS.hold(
            keys=[
                keys.batch_meta(iid, batch_id),
                keys.pending(iid),
                keys.dead(iid),
                keys.status(iid),
                keys.stats(iid),
                ov_key,
            ],
            args=[batch_id, token, now_ms, code, message, hint, block, hh, overview.RETENTION_S],
            client=r,
        )
    )


def release(r: redis.Redis, iid: str, batch_id: str, *, due_ms: int) -> str:
    return text(
        SCRIPTS.release(
            keys=[keys.batch_meta(iid, batch_id), keys.pending(iid), keys.dead(iid)],
            args=[batch_id, due_ms, keys.overview(iid, "")],
            client=r,
        )
    )


def held_batches(r: redis.Redis, iid: str) -> list[dict[str, str]]:
    """The dead-letter store of one integration: each held batch's metadata, oldest first."""
    ids = [text(b) for b in r.zrange(keys.dead(iid), 0, -1)]
    pipe = r.pipeline(transaction=False)
    for batch_id in ids:
        pipe.hgetall(keys.batch_meta(iid, batch_id))
    return [
        {"batch_id": batch_id, **{text(k): text(v) for k, v in meta.items()}}
        for batch_id, meta in zip(ids, pipe.execute(), strict=True)
        if meta
    ]


def batch_meta(r: redis.Redis, iid: str, batch_id: str) -> dict[str, str]:
    return {text(k): text(v) for k, v in r.hgetall(keys.batch_meta(iid, batch_id)).items()}


def pending_batches(r: redis.Redis, iid: str) -> list[str]:
    return [text(b) for b in r.zrange(keys.pending(iid), 0, -1)]
