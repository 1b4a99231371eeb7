"""The fleet as a whole: queue depths, the workers online, beat's last tick, buffered and held totals.

Read by the console's Fleet page. Queue depths are ``topology.queue_depths`` (the same numbers as ``signal-s3
queues``, on Redis or RabbitMQ); workers answer Celery's ``inspect`` broadcast within a bounded timeout. Every
function here blocks: call it off the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from workers import clock
from workers.observe import metrics
from workers.queue import topology
from workers.settings import Settings
from workers.store import keys
from workers.store.db import text

INSPECT_TIMEOUT_S = 1.0
# Beat counts as late after this many flush intervals without a tick.
BEAT_LATE_TICKS = 3


@dataclass(frozen=True)
class Worker:
    name: str
    queues: tuple[str, ...]


def workers_online(app: Celery, timeout_s: float = INSPECT_TIMEOUT_S) -> list[Worker]:
    """The workers that answered an ``inspect active_queues`` broadcast within ``timeout_s``, with their queues."""
    replies: dict[str, Any] = app.control.inspect(timeout=timeout_s).active_queues() or {}
    return sorted(
        (Worker(name, tuple(sorted(q["name"] for q in queues or ()))) for name, queues in replies.items()),
        key=lambda w: w.name,
    )


def last_tick_ms(r: redis.Redis) -> int | None:
    raw = r.get(keys.BEAT_LAST_TICK)
    return int(text(raw)) if raw is not None else None


def beat(r: redis.Redis, settings: Settings, now_ms: int) -> dict[str, Any]:
    """Beat's last tick (ISO time, age in seconds) and whether it is late."""
    tick = last_tick_ms(r)
    if tick is None:
        return {"last_tick_at": None, "age_s": None, "late": True}
    age_s = max(0.0, (now_ms - tick) / 1000)
    return {
        "last_tick_at": clock.iso(clock.from_ms(tick)),
        "age_s": age_s,
        "late": age_s > BEAT_LATE_TICKS * settings.flush_interval_s,
    }


def totals(r: redis.Redis) -> dict[str, int]:
    """Fleet-wide buffered and held numbers, summed over every integration."""
    out = {"integrations": 0, "buffered_events": 0, "buffered_bytes": 0, "held_batches": 0, "held_events": 0}
    for c in metrics.read(r):
        out["integrations"] += 1
        out["buffered_events"] += c.buffered_events
        out["buffered_bytes"] += c.buffered_bytes
        out["held_batches"] += c.dead_letter_batches
        out["held_events"] += c.dead_letter_events
    return out


def overview(
    r: redis.Redis, app: Celery, settings: Settings, *, inspect_timeout_s: float = INSPECT_TIMEOUT_S
) -> dict[str, Any]:
    """Everything the Fleet page shows. A broker that cannot be read is reported, not raised."""
    out: dict[str, Any] = {
        "totals": totals(r),
        "beat": beat(r, settings, clock.now_ms()),
        "flush_interval_s": settings.flush_interval_s,
        "flower_url": settings.flower_url,
        "queues": None,
        "workers": None,
        "broker_error": None,
    }
    try:
        out["queues"] = topology.queue_depths(settings)
        out["workers"] = workers_online(app, inspect_timeout_s)
    except Exception as exc:  # noqa: BLE001 - shown on the page: the rest of it stays useful
        out["broker_error"] = f"the broker could not be read ({type(exc).__name__})"
    return out
