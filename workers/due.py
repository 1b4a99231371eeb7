"""The due index: which integrations the beat's tick must look at, so that a tick costs what is due, not what is
installed.

``keys.DUE`` maps an integration id to the earliest time (ms) something of it may be due: an open buffer reaching its
flush interval, or a sealed batch whose lease or retry delay runs out (the sweep). An integration with nothing in
flight sits at ``IDLE_MS`` and costs a tick nothing. The tick reads the ids whose time has come (``due``), handles
them, and moves each to its next due time with ``reschedule``: a compare-and-set against the score it read, so that a
writer who lowered the score meanwhile wins. Writers only ever lower a score (``lower``: ZADD LT, which also adds a
missing id):

  * an append that opened an hour's buffer (due at ``buffer_due_ms``) or sealed a full one (due when its lease ends);
  * a duplicate append, due now: its first run may have opened a buffer before its process died;
  * a seal outside the tick (``delivery.flush_now``) and the release of a held batch for a replay.

Claims, failures and acks only move a batch's own time later, which the tick notices when it next looks.

The index is one key outside every integration's slot, so it is written after the integration's script, not inside
it: when a process dies in between, its message was not acknowledged, comes back, and lowers the score then. As a
safety net (an index write lost with a Redis master before it reached a replica, a fleet upgraded from a version
without the index) the tick checks every integration once every ``CHECK_EVERY_S`` (``claim_check``).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from workers import keys
from workers.buffer import scripts
from workers.db import text

IDLE_MS = 2**53 - 1  # nothing in flight: never due (the largest integer a sorted set score keeps exactly)
CHECK_EVERY_S = 600
_CHUNK = 500


def buffer_due_ms(first_ms: int, interval_ms: int, tick_ms: int) -> int:
    """When the tick seals a buffer opened at ``first_ms``: at the first tick when the integration flushes at the
    tick's pace or faster, otherwise once the buffer is as old as the integration's interval (to within half a tick)."""
    return first_ms if interval_ms <= tick_ms else first_ms + interval_ms - tick_ms // 2


def lower(r: redis.Redis, integration_id: str, due_ms: int) -> None:
    """Make sure the tick looks at ``integration_id`` no later than ``due_ms``."""
    r.zadd(keys.DUE, {integration_id: due_ms}, lt=True)


def due(r: redis.Redis, now_ms: int) -> list[tuple[str, float]]:
    """(integration id, its score) of every integration the tick must look at now, earliest first."""
    return [(text(member), score) for member, score in r.zrangebyscore(keys.DUE, "-inf", now_ms, withscores=True)]


def reschedule(r: redis.Redis, updates: Sequence[tuple[str, float | None, int | None]]) -> None:
    """After the tick handled them: (integration id, the score it read or None, the next due ms or None to remove).

    An id whose score changed since it was read is only lowered; None as the score read means "only lower"."""
    for start in range(0, len(updates), _CHUNK):
        chunk = updates[start:start + _CHUNK]
        args: list[object] = [len(chunk)]
        for integration_id, seen, next_ms in chunk:
            args += [integration_id, "" if seen is None else f"{seen:.0f}", "" if next_ms is None else next_ms]
        scripts(r).reschedule(keys=[keys.DUE], args=args, client=r)


def claim_check(r: redis.Redis) -> bool:
    """True for the one tick per ``CHECK_EVERY_S`` that must also look at every integration the index may miss."""
    return bool(r.set(keys.DUE_CHECKED, "1", nx=True, ex=CHECK_EVERY_S))
