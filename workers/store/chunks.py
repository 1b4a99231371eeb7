"""What goes into an open buffer: chunks, each the NDJSON lines of one message for one hour (one Redis value
whatever its events), and the append that puts a message's chunks in, atomically and once per message
(``lua/append.lua``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from workers import clock
from workers.errors import Unavailable
from workers.store import buffer, db, elements, keys, overview
from workers.store.db import text
from workers.store.scripts import SCRIPTS


class NotReplicated(Unavailable, redis.TimeoutError):
    """An append reached fewer replicas than SIGNAL_REDIS_MIN_REPLICAS in time: its message must not be acknowledged
    yet (the task is retried; the append itself is not repeated, its message id is recorded)."""


@dataclass(frozen=True)
class AppendResult:
    duplicate: bool
    accepted: int  # events
    refused: list[int]  # 0-based ordinals of the chunks (over all hours, in order) refused for the buffer cap
    sealed: list[str]  # batch ids sealed because a buffer reached its limits
    opened: bool = False  # an hour's buffer was opened: the due index must learn when it is due


@dataclass(frozen=True, slots=True)
class Chunk:
    """One buffer element: ``events`` NDJSON lines joined by newlines, without a trailing one, as text or as one
    gzip member of that text (``workers.store.elements``)."""

    text: bytes
    events: int

    @property
    def bytes(self) -> int:
        """The bytes of its lines, newlines not counted (what the buffer limits and the stats count), compressed or
        not."""
        return elements.text_size(self.text) - self.events + 1


def chunk(lines: Sequence[bytes]) -> Chunk:
    """The chunk of ``lines`` (non-empty compact JSON, no newline inside)."""
    return Chunk(b"\n".join(lines), len(lines))


def chunks(lines_by_hour: Mapping[str, Sequence[bytes]]) -> dict[str, list[Chunk]]:
    """One chunk per hour: what a message appends."""
    return {hour: [chunk(lines)] for hour, lines in lines_by_hour.items() if lines}


def _ids_needed(group: Sequence[Chunk], max_events: int, max_bytes: int) -> int:
    events = sum(c.events for c in group)
    total = sum(c.bytes for c in group)
    return min(events + 1, 2 + events // max_events + (2 * total) // max_bytes)


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
    """What one message appends, atomically and once per ``message_id``: its chunks per ``YYYYMMDDHH`` hour (one
    each, from a producer's message) and the counts and records that go with them.

    ``rejection_counts`` / ``removed_counts`` become the stats ``rejected:<reason>`` / ``removed:<reason>``;
    ``partition_fallback`` counts lines partitioned by their received hour (timestamp out of bound).
    ``live_records`` maps positions of lines over all chunks, in order, to a JSON object missing its closing generation
    (``b'{..., "gen":'``): the script completes it with the generation of the buffer the line went into.
    ``removed_records`` are complete live records of events the blueprint removed.
    """

    message_id: str
    now_ms: int
    chunks_by_hour: Mapping[str, Sequence[Chunk]]
    rejection_counts: Mapping[str, int] = field(default_factory=dict)
    rejection_records: Sequence[bytes] = ()
    live_records: Mapping[int, bytes] = field(default_factory=dict)
    removed_counts: Mapping[str, int] = field(default_factory=dict)
    removed_records: Sequence[bytes] = ()
    partition_fallback: int = 0
    partition_other: int = 0  # lines under __other__: a partition value over its bound
    pin: int = 0  # a record also kept alone (a test event's): position of its line + 1, or -(index + 1) if removed


def append(r: redis.Redis, iid: str, message: Append, limits: Limits) -> AppendResult:
    """Append a message's chunks to their hourly buffers with its counts, atomically: one MULTI/EXEC that RPUSHes each
    hour's chunks and runs ``lua/append.lua`` over them (the script never receives a chunk's bytes as an argument).

    With ``limits.min_replicas``, a WAIT follows on the same connection, and ``NotReplicated`` is raised when fewer
    replicas acknowledged it in time. A client that sends the transaction again (a retry after a lost reply, a
    redelivered message) finds its message id: the script takes back what that transaction pushed and the answer is
    ``duplicate``.

    Compressed chunks (``workers.store.elements``) go in as they are when they fit their buffers whole, the common
    case. When one would have to be cut, sealed after or refused, the script takes every chunk back and records
    nothing, and the transaction is sent again with the chunks inflated, which it cuts at line boundaries.
    """
    script_keys = [
        keys.seen(iid, message.message_id),
        keys.open_index(iid),
        keys.open_bytes(iid),
        keys.stats(iid),
        keys.pending(iid),
        keys.rejections(iid),
        keys.live(iid),
        buffer.overview_at(iid, message.now_ms)[0],
        keys.pinned(iid),
    ]
    reply = _send(r, iid, message, script_keys, limits)
    if reply[0] == 2:  # a compressed chunk must be cut, sealed after or refused: the script needs its lines
        reply = _send(r, iid, replace(message, chunks_by_hour=_inflated(message.chunks_by_hour)), script_keys, limits)
    dup, accepted, refused, sealed, opened = reply
    return AppendResult(
        bool(dup), int(accepted), [int(c) - 1 for c in refused], [text(b) for b in sealed], bool(opened)
    )


def _send(r: redis.Redis, iid: str, message: Append, script_keys: list[str], limits: Limits) -> list[Any]:
    pushes = [(keys.buffer(iid, hour), [c.text for c in group]) for hour, group in message.chunks_by_hour.items()]
    return _transaction(r, pushes, script_keys, _append_args(iid, message, limits), limits)


def _inflated(chunks_by_hour: Mapping[str, Sequence[Chunk]]) -> dict[str, list[Chunk]]:
    return {
        hour: [Chunk(elements.lines_text(c.text), c.events) for c in group] for hour, group in chunks_by_hour.items()
    }


def _append_args(iid: str, m: Append, limits: Limits) -> list[object]:
    """append.lua's ARGV, in the order its header documents."""
    args: list[object] = [
        m.now_ms,
        limits.seen_ttl_ms,
        limits.cap_bytes,
        limits.batch_max_events,
        limits.batch_max_bytes,
        limits.seal_due_ms,
        buffer.LIST_MAX,
        overview.field_prefix(clock.hour_of_ms(m.now_ms)),
        overview.RETENTION_S,
        m.pin,
        buffer.PIN_TTL_MS,
        *buffer.prefixes(iid),
    ]
    counts = [(f"rejected:{reason}", n) for reason, n in m.rejection_counts.items()]
    counts += [(f"removed:{reason}", n) for reason, n in m.removed_counts.items()]
    if m.partition_fallback:
        counts.append((keys.STAT_PARTITION_FALLBACK, m.partition_fallback))
    if m.partition_other:
        counts.append((keys.STAT_PARTITION_OTHER, m.partition_other))
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
    # compressed chunks are appended only where they fit whole: at most one seal each group
    compressed = any(elements.is_compressed(c.text) for group in m.chunks_by_hour.values() for c in group)
    n_ids = [
        1 if compressed else _ids_needed(group, limits.batch_max_events, limits.batch_max_bytes)
        for group in m.chunks_by_hour.values()
    ]
    ids = iter(batch_ids(sum(n_ids)))
    args.append(len(m.chunks_by_hour))
    for (hour, group), n in zip(m.chunks_by_hour.items(), n_ids, strict=True):
        args += [hour, n, *(next(ids) for _ in range(n)), len(group)]
        for c in group:
            args += [c.events, c.bytes]
    args.append(int(compressed))
    return args


_LARGE = 64 * 1024


def _as_argument(text: bytes) -> bytes | memoryview:
    """A large chunk as a memoryview, which redis-py writes to the socket as it is (a send of its own): its hiredis
    packer copies a value into the command fast up to ~100 KB (~5 µs) and slowly beyond (~530 µs for 400 KB, where
    each copy takes fresh memory from the system), which was a sixth of an ingest worker's CPU with text chunks."""
    return memoryview(text) if len(text) > _LARGE else text


def batch_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as ``str(uuid.uuid4())`` writes them, from one read of the system's random
    source: ~0.5 µs an id where ``uuid4()`` takes ~2 µs (a message of 14 partitions asks for 14 to 28)."""
    raw = os.urandom(16 * n).hex()
    out = []
    for i in range(0, 32 * n, 32):
        x = raw[i : i + 32]
        out.append(f"{x[:8]}-{x[8:12]}-4{x[13:16]}-{'89ab'[int(x[16], 16) & 3]}{x[17:20]}-{x[20:]}")
    return out


ATTEMPTS = 4


def _transaction(
    r: redis.Redis, pushes: list[tuple[str, list[bytes]]], script_keys: list[str], args: list[object], limits: Limits
) -> list[Any]:
    """MULTI, the RPUSHes, EVAL append.lua, EXEC (and WAIT) in one round trip on the connection of the integration's
    server. EVAL, not EVALSHA: a script missing from a server's cache (a restart, a failover) would fail inside EXEC
    after the pushes were applied; Redis finds the compiled script by its digest all the same.

    A redirection aborts the whole transaction before anything is applied (Redis checks every queued key at EXEC):
    MOVED reads the slot map again, ASK sends it to the importing node after ASKING; a slot still moving after
    ``ATTEMPTS`` is TryAgainError, which the ingest task retries later."""
    ask: tuple[str, int] | None = None
    for _ in range(ATTEMPTS):
        node = db.node_at(r, *ask) if ask else db.node_of(r, script_keys[0])
        pipe = node.pipeline(transaction=False)
        if ask:
            pipe.execute_command("ASKING")  # kept by Redis for the whole MULTI block that follows
        pipe.execute_command("MULTI")
        for key, texts in pushes:
            pipe.execute_command("RPUSH", key, *map(_as_argument, texts))
        pipe.execute_command("EVAL", SCRIPTS.append.script, len(script_keys), *script_keys, *args)
        pipe.execute_command("EXEC")
        if limits.min_replicas:
            pipe.wait(limits.min_replicas, limits.replicas_timeout_ms)
        try:
            replies = pipe.execute()
        except redis.exceptions.AskError as exc:
            ask = (exc.host, int(exc.port))
            continue
        except (redis.exceptions.MovedError, redis.ConnectionError):
            # a failover or a resharding moved the slot, or the reply was lost: read the slot map again and send it
            # again (its message id makes a second append nothing)
            ask = None
            db.refresh_slots(r)
            continue
        results = replies[(1 if ask else 0) + len(pushes) + 2]
        if results is None:
            raise redis.exceptions.ResponseError("the append's transaction was aborted")
        if isinstance(results[-1], Exception):
            _take_back(node, pushes)
            raise results[-1]
        if limits.min_replicas and int(replies[-1]) < limits.min_replicas:
            raise NotReplicated(
                f"the append reached {replies[-1]} of {limits.min_replicas} replicas "
                f"within {limits.replicas_timeout_ms} ms"
            )
        return results[-1]  # type: ignore[no-any-return]
    raise redis.exceptions.TryAgainError("the integration's slot kept moving during the append")


def _take_back(node: redis.Redis, pushes: list[tuple[str, list[bytes]]]) -> None:
    """Remove the chunks a transaction pushed when its script failed (MULTI/EXEC does not roll back): a failed append
    leaves nothing behind, and the message is counted as failed by the task."""
    pipe = node.pipeline(transaction=False)
    for key, texts in pushes:
        for pushed in texts:
            pipe.lrem(key, -1, pushed)
    pipe.execute()
