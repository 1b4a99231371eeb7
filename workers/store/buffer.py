"""Redis side of the pipeline: hourly buffers, sealed batches and their lifecycle, each step one Lua script.

Lifecycle of a batch (see workers/store/keys.py for the key schema):
  open buffer --seal (RENAME)--> batch [pending] --claim--> leased --ack--> gone (delivered)
                                                               |--fail--> pending again at retry_at
                                                               `--hold--> dead (dead-letter) --release--> pending
Every step is atomic and idempotent, so redelivered, concurrent or crashed work never loses or doubles an event.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import redis

from workers import clock
from workers.errors import SignalError, Unavailable
from workers.store import db, keys, overview
from workers.store.db import text
from workers.store.histograms import LATENCY_BUCKETS_S, UPLOAD_BUCKETS_S, lua_buckets
from workers.store.scripts import SCRIPTS

LIST_MAX = 100  # recent rejections and recent live events kept per integration
TRACE_TTL_MS = 48 * 3600 * 1000  # how long the path event -> batch -> object stays traceable
PIN_TTL_MS = 15 * 60 * 1000  # how long a test event stays pinned on top of Live Events


def _prefixes(iid: str) -> list[object]:
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
    ]


def _overview_at(iid: str, now_ms: int) -> tuple[str, str, str]:
    """The overview block key of the hour of ``now_ms``, its block suffix and its field prefix."""
    hour = clock.hour_of_ms(now_ms)
    block = overview.block_of(hour)
    return keys.overview(iid, block), block, overview.field_prefix(hour)


class NotReplicated(Unavailable, redis.TimeoutError):
    """An append reached fewer replicas than SIGNAL_REDIS_MIN_REPLICAS in time: its message must not be acknowledged
    yet (the task is retried; the append itself is not repeated, its message id is recorded)."""


@dataclass(frozen=True)
class AppendResult:
    duplicate: bool
    accepted: int
    refused_positions: list[int]  # 0-based positions in the flattened lines refused for the buffer cap
    sealed: list[str]  # batch ids sealed because a buffer reached its limits
    opened: bool = False  # an hour's buffer was opened: the due index must learn when it is due


def _ids_needed(lines: Sequence[bytes], max_events: int, max_bytes: int) -> int:
    total = sum(map(len, lines))
    return min(len(lines) + 1, 2 + len(lines) // max_events + (2 * total) // max_bytes)


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds one append works within, from the integration's config and the fleet's settings."""

    cap_bytes: int  # the integration's buffered bytes may not pass this: lines over it are refused (buffer_full)
    batch_max_events: int  # a buffer that would pass either limit is sealed first
    batch_max_bytes: int
    seal_due_ms: int  # when the sweep may dispatch a batch sealed by this append
    seen_ttl_ms: int  # how long the message id is remembered
    min_replicas: int = 0  # replicas that must hold the append before it counts (Redis WAIT); 0: none
    replicas_timeout_ms: int = 1000


@dataclass(frozen=True, slots=True)
class Append:
    """What one message appends, atomically and once per ``message_id``: its lines per ``YYYYMMDDHH`` hour and the
    counts and records that go with them.

    ``rejection_counts`` / ``removed_counts`` become the stats ``rejected:<reason>`` / ``removed:<reason>``;
    ``partition_fallback`` counts lines partitioned by their received hour (timestamp out of bound).
    ``live_records`` maps positions in the flattened lines to a JSON object missing its closing generation
    (``b'{..., "gen":'``): the script completes it with the generation of the buffer the line went into.
    ``removed_records`` are complete live records of events the blueprint removed.
    """

    message_id: str
    now_ms: int
    lines_by_hour: Mapping[str, Sequence[bytes]]
    rejection_counts: Mapping[str, int] = field(default_factory=dict)
    rejection_records: Sequence[bytes] = ()
    live_records: Mapping[int, bytes] = field(default_factory=dict)
    removed_counts: Mapping[str, int] = field(default_factory=dict)
    removed_records: Sequence[bytes] = ()
    partition_fallback: int = 0
    pin: int = 0  # a record also kept alone (a test event's): position of its line + 1, or -(index + 1) if removed


def append(r: redis.Redis, iid: str, message: Append, limits: Limits) -> AppendResult:
    """Append a message's lines to their hourly buffers with its counts, in one script (``lua/append.lua``).

    With ``limits.min_replicas``, the script and a WAIT run on one connection to the integration's master, and
    ``NotReplicated`` is raised when fewer replicas acknowledged it in time. A client that runs the script again (a
    retry after a lost reply, a redelivered message) finds its message id and appends nothing: the answer is then
    ``duplicate``.
    """
    args = _append_args(iid, message, limits)
    script_keys = [
        keys.seen(iid, message.message_id),
        keys.open_index(iid),
        keys.open_bytes(iid),
        keys.stats(iid),
        keys.pending(iid),
        keys.rejections(iid),
        keys.live(iid),
        _overview_at(iid, message.now_ms)[0],
        keys.pinned(iid),
    ]
    if limits.min_replicas:
        reply = _append_replicated(r, script_keys, args, limits.min_replicas, limits.replicas_timeout_ms)
    else:
        reply = SCRIPTS.append(keys=script_keys, args=args, client=r)
    dup, accepted, refused, sealed, opened = reply
    return AppendResult(
        bool(dup), int(accepted), [int(p) - 1 for p in refused], [text(b) for b in sealed], bool(opened)
    )


def _append_args(iid: str, m: Append, limits: Limits) -> list[object]:
    """append.lua's ARGV, in the order its header documents."""
    args: list[object] = [
        m.now_ms,
        limits.seen_ttl_ms,
        limits.cap_bytes,
        limits.batch_max_events,
        limits.batch_max_bytes,
        limits.seal_due_ms,
        LIST_MAX,
        overview.field_prefix(clock.hour_of_ms(m.now_ms)),
        overview.RETENTION_S,
        m.pin,
        PIN_TTL_MS,
        *_prefixes(iid),
    ]
    counts = [(f"rejected:{reason}", n) for reason, n in m.rejection_counts.items()]
    counts += [(f"removed:{reason}", n) for reason, n in m.removed_counts.items()]
    if m.partition_fallback:
        counts.append((keys.STAT_PARTITION_FALLBACK, m.partition_fallback))
    args.append(len(counts))
    for stat, count in counts:
        args += [stat, count]
    args.append(len(m.rejection_records))
    args += m.rejection_records
    args.append(len(m.live_records))
    for position, record in m.live_records.items():
        args += [position + 1, record]
    args.append(len(m.removed_records))
    args += m.removed_records
    args.append(len(m.lines_by_hour))
    for hour, lines in m.lines_by_hour.items():
        n_ids = _ids_needed(lines, limits.batch_max_events, limits.batch_max_bytes)
        args += [hour, n_ids, *(str(uuid.uuid4()) for _ in range(n_ids)), len(lines), *lines]
    return args


REPLICATED_ATTEMPTS = 3


def _append_replicated(
    r: redis.Redis, script_keys: list[str], args: list[object], min_replicas: int, timeout_ms: int
) -> list[object]:
    """append.lua then WAIT on the same connection (WAIT counts the writes of its own connection only)."""
    for attempt in range(1, REPLICATED_ATTEMPTS + 1):
        node = db.node_of(r, script_keys[0])
        pipe = node.pipeline(transaction=False)
        SCRIPTS.append(keys=script_keys, args=args, client=pipe)
        pipe.wait(min_replicas, timeout_ms)
        try:
            reply, acked = pipe.execute()
        except (redis.exceptions.MovedError, redis.ConnectionError):
            # a failover or a resharding moved the slot: read the slot map again (the append is not repeated twice:
            # its message id is recorded)
            if attempt == REPLICATED_ATTEMPTS:
                raise
            db.refresh_slots(r)
            continue
        if int(acked) < min_replicas:
            raise NotReplicated(f"the append reached {acked} of {min_replicas} replicas within {timeout_ms} ms")
        return reply  # type: ignore[no-any-return]
    raise AssertionError("unreachable")


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
        args=[hour, batch_id, now_ms, seal_due_ms, *_prefixes(iid)],
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


class BatchVanished(SignalError):
    """The batch was finished by another uploader while this one was reading it."""


def read_batch(
    r: redis.Redis, iid: str, batch_id: str, chunk_events: int, expected_events: int
) -> Iterator[list[bytes]]:
    """The sealed batch's lines in bounded chunks (a batch never changes once sealed).

    Raises BatchVanished, before the last chunk is handed out, when fewer than ``expected_events`` lines are there:
    an uploader must never complete an object from a batch someone else already delivered and deleted.
    """
    key = keys.batch(iid, batch_id)
    start = 0
    while start < expected_events:
        chunk = r.lrange(key, start, min(start + chunk_events, expected_events) - 1)
        start += len(chunk)
        if start < expected_events and len(chunk) < chunk_events:
            raise BatchVanished(batch_id)
        yield chunk


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
    ov_key, _, hh = _overview_at(iid, now_ms)
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
    ov_key, block, hh = _overview_at(iid, now_ms)
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
