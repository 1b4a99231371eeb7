"""Partition fields in the bench: the flush of the same events spread over their partitions' buffers, and the tick
with 1,000 partitions open (the ingest drain with partition fields is ``bench.ingest.drain`` on such an
integration)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import redis

from bench.flush import MESSAGE_EVENTS, as_appended, read_batch
from workers import clock
from workers.events import partitions
from workers.pipeline import flush as tick
from workers.settings import Settings
from workers.sink import formats
from workers.store import buffer, due, keys

FIELDS = ["event", "type", "consent.marketing"]


def fill_partitioned(r: redis.Redis, iid: str, lines: list[bytes], total: int) -> list[str]:
    """``total`` lines in the open buffers of their slots (this hour, ``FIELDS``), in chunks of at most one message's
    lines as ``append`` leaves them (compressed as the API sends them); returns the slots."""
    hour = clock.hour_of(clock.now())
    fields = partitions.parse_fields(FIELDS)
    slot_of = [partitions.slot(hour, fields, orjson.loads(line)) for line in lines]
    by_slot: dict[str, list[bytes]] = {}
    for i in range(total):
        by_slot.setdefault(slot_of[i % len(lines)], []).append(lines[i % len(lines)])
    now = clock.now_ms()
    pipe = r.pipeline(transaction=False)
    for slot, group in by_slot.items():
        for start in range(0, len(group), MESSAGE_EVENTS):
            pipe.rpush(keys.buffer(iid, slot), as_appended(b"\n".join(group[start : start + MESSAGE_EVENTS])))
            if len(pipe) >= 50:
                pipe.execute()
        nbytes = sum(len(x) for x in group)
        pipe.hset(keys.open_count(iid), slot, len(group))
        pipe.hset(keys.open_bytes(iid), slot, nbytes)
        pipe.zadd(keys.open_index(iid), {slot: now}, nx=True)
        pipe.hincrby(keys.stats(iid), "buffered_bytes", nbytes)
        pipe.hincrby(keys.stats(iid), "buffered_events", len(group))
    pipe.execute()
    return list(by_slot)


def flush_partitioned(
    r: redis.Redis, iid: str, slots: list[str], settings: Settings, variant: str = "default"
) -> dict[str, Any]:
    """Each slot sealed, read and encoded into its own object, one after the other, in process (no upload)."""
    t0 = time.perf_counter()
    events = out = 0
    for slot in slots:
        enc = formats.encoder_for(variant)
        now_ms = clock.now_ms()
        batch_id = buffer.seal(r, iid, slot, now_ms=now_ms, seal_due_ms=now_ms + int(settings.lease_s * 1000))
        assert batch_id
        for chunk in read_batch(r, iid, batch_id, settings.drain_chunk_events):
            out += len(enc.write(chunk))
        out += len(enc.finish())
        events += enc.events
    elapsed = time.perf_counter() - t0
    return {"events": events, "objects": len(slots), "seconds": elapsed, "events_per_s": events / elapsed}


def tick_costs(
    r: redis.Redis, iid: str, open_slots: tuple[int, ...], settings: Settings, rounds: int = 60
) -> list[dict[str, Any]]:
    """The beat's tick when ``iid`` (flushing hourly) has each of ``open_slots`` busy buffers, none due yet: the
    median of ``rounds`` ticks each, the integration made due for each (as an append would). The sizes take turns
    tick by tick, so a change of the machine's load weighs on each alike (a tick takes well under a millisecond)."""
    hour = clock.hour_of(clock.now())
    times: dict[int, list[float]] = {k: [] for k in open_slots}
    for _ in range(rounds):
        for k in open_slots:
            now = clock.now_ms()
            r.zadd(keys.open_index(iid), {f"{hour}|event=e{i:04d}": now for i in range(k)})
            due.lower(r, iid, now)
            t0 = time.perf_counter()
            sealed = tick.flush_due(r, settings=settings)
            times[k].append(time.perf_counter() - t0)
            assert sealed == [], "nothing is due: the tick seals nothing"
            r.delete(keys.open_index(iid))
    return [{"open_slots": k, "median_s": sorted(t)[len(t) // 2], "rounds": rounds} for k, t in times.items()]
