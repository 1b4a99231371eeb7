"""The beat's flush: seal every open buffer that is due, and sweep the batches whose lease or retry delay ran out."""

from __future__ import annotations

import redis

from workers import clock
from workers.integrations import registry
from workers.settings import Settings
from workers.store import buffer, due, keys
from workers.store.db import text


def flush_due(r: redis.Redis, *, settings: Settings, force: bool = False) -> list[tuple[str, str]]:
    """The beat's flush: seal every open buffer that is due, and collect every batch the sweep must (re)dispatch.

    A buffer is due at every tick when its integration flushes at the tick's pace, otherwise once it is as old as
    the integration's ``flush_interval_s``. Only the integrations the due index names are looked at, so a tick costs
    what is due; once every ``due.CHECK_EVERY_S`` every installed integration is looked at too. ``force`` seals
    every open buffer of every integration. Returns (integration id, batch id) pairs to upload.
    """
    now_ms = clock.now_ms()
    r.set(keys.BEAT_LAST_TICK, now_ms)  # the console's Fleet page shows when beat last ticked
    if force:
        candidates: list[tuple[str, int | None]] = [(iid, None) for iid in registry.ids(r)]
    else:
        candidates = list(due.due(r, now_ms))
        if due.claim_check(r):
            indexed = {iid for iid, _ in candidates}
            candidates += [(iid, None) for iid in registry.ids(r) if iid not in indexed]
    work: list[tuple[str, str]] = []
    for start in range(0, len(candidates), FLUSH_CHUNK):
        work += _flush_chunk(r, candidates[start : start + FLUSH_CHUNK], now_ms, settings=settings, force=force)
    return work


FLUSH_CHUNK = 500


def _interval_ms(r: redis.Redis, iid: str, settings: Settings, tick_ms: int) -> int:
    """An integration's flush interval (the tick's for one the registry no longer knows)."""
    try:
        integ = registry.get(r, iid, max_age_s=settings.integration_cache_ttl_s)
    except registry.UnknownIntegration:
        return tick_ms
    return int(integ.config.effective_flush_interval_s(settings) * 1000)


def _flush_chunk(
    r: redis.Redis, candidates: list[tuple[str, int | None]], now_ms: int, *, settings: Settings, force: bool
) -> list[tuple[str, str]]:
    """Flush what is due of some integrations (one pipelined read for all of them), then move each in the due index
    to the time something of it is next due.

    Only the buffers that are due are read, and the first one that is not: a tick costs what it seals, however many
    buffers (hours, partitions) are open."""
    tick_ms = int(settings.flush_interval_s * 1000)
    seal_due_ms = now_ms + int(settings.lease_s * 1000)
    intervals = [_interval_ms(r, iid, settings, tick_ms) for iid, _ in candidates]
    pipe = r.pipeline(transaction=False)
    for (iid, _), interval_ms in zip(candidates, intervals, strict=True):
        # due.buffer_due_ms(first, interval, tick) <= now, solved for first
        opened_by = "+inf" if force else now_ms if interval_ms <= tick_ms else now_ms - interval_ms + tick_ms // 2
        pipe.zrangebyscore(keys.open_index(iid), "-inf", opened_by, withscores=True)
        pipe.zrangebyscore(keys.open_index(iid), f"({opened_by}", "+inf", start=0, num=1, withscores=True)
        pipe.zrangebyscore(keys.pending(iid), "-inf", now_ms)
        pipe.zrange(keys.pending(iid), 0, 0, withscores=True)
        pipe.exists(keys.integration(iid))
    replies = pipe.execute()
    work: list[tuple[str, str]] = []
    updates: list[tuple[str, int | None, int | None]] = []
    for n, ((iid, seen), interval_ms) in enumerate(zip(candidates, intervals, strict=True)):
        due_slots, first_waiting, due_batches, first_pending, installed = replies[5 * n : 5 * n + 5]
        next_ms = [int(first_pending[0][1])] if first_pending else []
        if first_waiting:
            next_ms.append(due.buffer_due_ms(int(first_waiting[0][1]), interval_ms, tick_ms))
        for slot, _ in due_slots:
            batch_id = buffer.seal(r, iid, text(slot), now_ms=now_ms, seal_due_ms=seal_due_ms)
            if batch_id:
                work.append((iid, batch_id))
                next_ms.append(seal_due_ms)
        # batches of the sweep stay due until a worker claims them: they are looked at (and sent) again next tick
        work.extend((iid, text(b)) for b in due_batches)
        updates.append((iid, seen, min(next_ms) if next_ms else due.IDLE_MS if installed else None))
    due.reschedule(r, updates)
    return work
