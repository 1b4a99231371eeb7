"""The due index: which integrations the beat's tick must look at, so that a tick costs what is due, not what is
installed.

``keys.DUE`` maps an integration id to the earliest time (ms) something of it may be due: an open buffer reaching its
flush interval, or a sealed batch whose lease or retry delay runs out (the sweep). An integration with nothing in
flight sits at ``IDLE_MS`` and costs a tick nothing. Writers only ever lower a score (``lower``: ZADD LT, which also
adds a missing id) and count each write in ``keys.DUE_VERSIONS``. The tick reads the ids whose time has come with their
versions (``due``), handles them, and moves each to its next due time with ``reschedule``: a compare-and-set on the
version, so that a writer who came after the tick's read is never overwritten (its time may be later than the score
the tick read, so comparing scores would miss it). The writers:

  * an append that opened an hour's buffer (due at ``buffer_due_ms``) or sealed a full one (due when its lease ends);
  * a duplicate append, due now: its first run may have opened a buffer before its process died;
  * a seal outside the tick (``workers.integrations.manage.flush_now``) and the release of a held batch for a replay.

Claims, failures and acks only move a batch's own time later, which the tick notices when it next looks.

The index is one key outside every integration's slot, so it is written after the integration's script, not inside
it: when a process dies in between, its message was not acknowledged, comes back, and lowers the score then. As a
safety net (an index write lost with a Redis master before it reached a replica, a fleet upgraded from a version
without the index) the tick checks every integration once every ``CHECK_EVERY_S`` (``claim_check``).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from workers.store import keys
from workers.store.db import text
from workers.store.scripts import SCRIPTS

IDLE_MS = 2**53 - 1  # nothing in flight: never due (the largest integer a sorted set score keeps exactly)
CHECK_EVERY_S = 600
_CHUNK = 500


def buffer_due_ms(first_ms: int, interval_ms: int, tick_ms: int) -> int:
    """When the tick seals a buffer opened at ``first_ms``: at the first tick when the integration flushes at the
    tick's pace or faster, otherwise once the buffer is as old as the integration's interval (to within half a tick)."""
    return first_ms if interval_ms <= tick_ms else first_ms + interval_ms - tick_ms // 2


def lower(r: redis.Redis, integration_id: str, due_ms: int) -> None:
    """Make sure the tick looks at ``integration_id`` no later than ``due_ms``."""
    SCRIPTS.lower(keys=[keys.DUE, keys.DUE_VERSIONS], args=[integration_id, due_ms], client=r)


def due(r: redis.Redis, now_ms: int) -> list[tuple[str, int]]:
    """(integration id, its version) of every integration the tick must look at now, earliest first. The versions
    are read after the ids: a write counted after this read is one the tick may not have seen."""
    ids = [text(member) for member in r.zrangebyscore(keys.DUE, "-inf", now_ms)]
    versions = r.hmget(keys.DUE_VERSIONS, ids) if ids else []
    return [(iid, int(v or 0)) for iid, v in zip(ids, versions, strict=True)]


def reschedule(r: redis.Redis, updates: Sequence[tuple[str, int | None, int | None]]) -> None:
    """After the tick handled them: (integration id, the version it read or None, the next due ms or None to remove).

    An id written since the tick read it is only lowered; None as the version read means "only lower"."""
    for start in range(0, len(updates), _CHUNK):
        chunk = updates[start : start + _CHUNK]
        args: list[object] = [len(chunk)]
        for integration_id, version, next_ms in chunk:
            args += [integration_id, "" if version is None else version, "" if next_ms is None else next_ms]
        SCRIPTS.reschedule(keys=[keys.DUE, keys.DUE_VERSIONS], args=args, client=r)


def claim_check(r: redis.Redis) -> bool:
    """True for the one tick per ``CHECK_EVERY_S`` that must also look at every integration the index may miss."""
    return bool(r.set(keys.DUE_CHECKED, "1", nx=True, ex=CHECK_EVERY_S))
