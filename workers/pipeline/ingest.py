"""Ingest: a message's events prepared and appended to the integration's hourly buffers, once per message.

``prepare`` is the half a producer runs (the API does, before publishing ``signal.append``); ``append`` is what the
ingest worker does with a prepared message; ``ingest`` does both for any other producer's ``signal.ingest``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis

from workers import clock
from workers.events import partition_time, partitions, prepared
from workers.events.message import Message, message_of
from workers.integrations import registry
from workers.integrations.config import IntegrationConfig
from workers.queue.producer import Broker
from workers.settings import Settings
from workers.store import buffer, chunks, due, elements, keys, partition_values

log = logging.getLogger(__name__)

BUFFER_FULL = "the integration's buffer is full (buffer_max_bytes): delivery is failing or too slow"


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, object]] = field(default_factory=list)
    duplicate: bool = False
    sealed: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)  # events the blueprint removed, by reason
    partition_fallback: int = 0

    def summary(self) -> dict[str, object]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicate": self.duplicate,
            "removed": self.removed,
            "partition_fallback": self.partition_fallback,
        }


def prepare(r: redis.Redis, integration_id: str, events: object, *, settings: Settings) -> prepared.Prepared:
    """Validate, stamp and serialise ``events`` for one integration: the half of ingest a producer can run.

    Raises UnknownIntegration / IntegrationDisabled, and TypeError when ``events`` is not a list. Invalid events are
    rejected one by one, with a reason; the integration's blueprint runs on the valid ones (those it removes are
    reported by reason, not as errors) and the config's ``partition_time`` picks each event's hour, its
    ``partition_fields`` its partition (a value over ``partition_max_values`` in its hour goes under ``__other__``).
    The integration is read through the registry's per-process cache: its config may be
    ``SIGNAL_INTEGRATION_CACHE_TTL_S`` old.
    """
    integ = registry.get_enabled(r, integration_id, max_age_s=settings.integration_cache_ttl_s)
    if not isinstance(events, list):
        raise TypeError("events must be a list of event objects")
    fields = integ.config.partition_by
    ready = prepared.prepare(
        events,
        integration_id,
        received_at=clock.now(),
        event_max_bytes=settings.event_max_bytes,
        rules=integ.rules,
        partition=integ.config,
        fields=fields,
    )
    if fields:
        cfg = integ.config
        late_ms = cfg.partition_time_bound_s * 1000 if cfg.partition_time == partition_time.TIMESTAMP else 0
        _bound(r, integration_id, ready, fields, cfg.partition_max_values, late_ms)
    return ready


def _bound(
    r: redis.Redis,
    integration_id: str,
    ready: prepared.Prepared,
    fields: tuple[partitions.Field, ...],
    bound: int,
    late_ms: int,
) -> None:
    """Send the groups whose values are over the bound of their field and hour to ``__other__``."""
    open_names = {f.name for f in fields if f.kind not in partitions.CLOSED_KINDS}
    slots = {slot: partitions.split_slot(slot) for slot in ready.lines_by_hour}
    asked = [
        (hour, name, value)
        for hour, values in slots.values()
        for name, value in values
        if name in open_names and value not in (partitions.MISSING, partitions.OTHER)
    ]
    if not asked:
        return
    admitted = partition_values.admit(r, integration_id, asked, bound, late_ms=late_ms)
    renamed = {}
    for slot, (hour, values) in slots.items():
        kept = tuple(
            (name, value if admitted.get((hour, name, value), True) else partitions.OTHER) for name, value in values
        )
        if kept != values:
            renamed[slot] = partitions.join_slot(hour, kept)
    if renamed:
        prepared.regroup(ready, renamed)


def publish(r: redis.Redis, producer: Broker, integration_id: str, events: list[Any], *, settings: Settings) -> str:
    """What the API does with a request's events for one integration: prepare them here and publish them as
    ``signal.append``; returns the task id.

    The integration comes from the registry's per-process cache (up to ``SIGNAL_INTEGRATION_CACHE_TTL_S`` old). When it
    cannot be read here (unknown or disabled in that cache, Redis unreachable), the events go as they came, in
    ``signal.ingest``: the worker prepares them, or refuses them, as for any producer.
    """
    try:
        ready = prepare(r, integration_id, events, settings=settings)
    except (registry.UnknownIntegration, registry.IntegrationDisabled, redis.RedisError):
        return producer.ingest(integration_id, events)
    return producer.append(integration_id, ready)


def ingest(r: redis.Redis, integration_id: str, events: object, *, message_id: str, settings: Settings) -> IngestResult:
    """Validate ``events`` and append the valid ones to the integration's hourly buffers, once per message: ``prepare``
    here, then the same ``append`` as a prepared message."""
    message = message_of(prepare(r, integration_id, events, settings=settings))
    return append(r, integration_id, message, message_id=message_id, settings=settings)


def append(
    r: redis.Redis, integration_id: str, message: Message, *, message_id: str, settings: Settings
) -> IngestResult:
    """Append a prepared message's lines to the integration's hourly buffers, once per message, with its rejections.

    Each hour's text goes in whole, as one chunk: the worker never splits it into lines. Raises UnknownIntegration /
    IntegrationDisabled (nothing buffered). The rejections ``prepare`` made are counted with the append; an hour's
    lines that would pass the integration's buffer cap are refused together (reason ``buffer_full``).
    """
    integ = registry.get_enabled(r, integration_id, max_age_s=settings.integration_cache_ttl_s)
    cfg = integ.config
    now_ms = clock.now_ms()
    rejected = [
        {"index": rj.index, "reason": rj.reason, "detail": rj.detail, "event_id": rj.event_id}
        for rj in message.rejected
    ]
    appended = chunks.Append(
        message_id=message_id,
        now_ms=now_ms,
        chunks_by_hour={
            hour: [chunks.Chunk(text, len(message.indexes_by_hour[hour]))]
            for hour, text in message.texts_by_hour.items()
        },
        rejection_counts=Counter(rj.reason for rj in message.rejected),
        rejection_records=[orjson.dumps({"at_ms": now_ms, **rj}) for rj in rejected],
        live_records=_live_records(message.live, now_ms),
        removed_counts=message.removed,
        removed_records=_removed_records(message.removed_live, now_ms),
        partition_fallback=message.partition_fallback,
        partition_other=message.partition_other,
        pin=_pin(message),
    )
    result = chunks.append(r, integration_id, appended, append_limits(cfg, settings, now_ms))
    _tell_due_index(
        r, integration_id, result, now_ms=now_ms, settings=settings, interval_s=cfg.effective_flush_interval_s(settings)
    )
    if result.duplicate:
        return IngestResult(0, [], duplicate=True)
    if result.refused:
        # one chunk per hour, in order: map the refused ones back to the producer's indexes
        hours = list(message.texts_by_hour)
        for ordinal in result.refused:
            hour = hours[ordinal]
            lines = elements.lines_text(message.texts_by_hour[hour]).split(b"\n")
            for index, line in zip(message.indexes_by_hour[hour], lines, strict=True):
                rejected.append(
                    {
                        "index": index,
                        "reason": "buffer_full",
                        "event_id": orjson.loads(line)["event_id"],
                        "detail": BUFFER_FULL,
                    }
                )
    return IngestResult(
        result.accepted,
        rejected,
        sealed=result.sealed,
        removed=dict(message.removed),
        partition_fallback=message.partition_fallback,
    )


def append_limits(cfg: IntegrationConfig, settings: Settings, now_ms: int) -> chunks.Limits:
    """The bounds of an append for one integration: its buffer cap and batch limits, the fleet's replication."""
    return chunks.Limits(
        cap_bytes=cfg.effective_buffer_max_bytes(settings),
        batch_max_events=cfg.batch_max_events,
        batch_max_bytes=cfg.batch_max_bytes,
        seal_due_ms=now_ms + int(settings.lease_s * 1000),
        seen_ttl_ms=settings.ingest_dedup_ttl_s * 1000,
        min_replicas=settings.redis_min_replicas,
        replicas_timeout_ms=settings.redis_min_replicas_timeout_ms,
    )


def _tell_due_index(
    r: redis.Redis,
    integration_id: str,
    result: chunks.AppendResult,
    *,
    now_ms: int,
    settings: Settings,
    interval_s: float,
) -> None:
    """Lower the integration's score in the due index for what this append left to flush (before the message is
    acknowledged). A duplicate may be the redelivery of a message whose process died before doing this: due now."""
    due_at = []
    if result.duplicate:
        due_at.append(now_ms)
    if result.opened:
        due_at.append(due.buffer_due_ms(now_ms, int(interval_s * 1000), int(settings.flush_interval_s * 1000)))
    if result.sealed:
        due_at.append(now_ms + int(settings.lease_s * 1000))
    if due_at:
        due.lower(r, integration_id, min(due_at))


def record_ingest_failure(
    r: redis.Redis, integration_id: str, events: object, exc: BaseException, *, n: int | None = None
) -> int:
    """Count the events of a message whose ingest failed unexpectedly (nothing was appended), so the integration's
    status shows them as rejected (reason ``ingest_failed``) with the error, instead of only a worker log line.
    ``n`` is their number when ``events`` is not the list of them (a prepared message)."""
    if n is None:
        n = len(events) if isinstance(events, list) else 1
    detail = f"ingest failed before buffering: {type(exc).__name__}: {str(exc)[:200]}"
    record = orjson.dumps(
        {
            "at_ms": clock.now_ms(),
            "index": None,
            "reason": "ingest_failed",
            "detail": detail,
            "event_id": None,
            "events": n,
        }
    )
    pipe = r.pipeline(transaction=False)
    pipe.hincrby(keys.stats(integration_id), "rejected:ingest_failed", n)
    pipe.lpush(keys.rejections(integration_id), record)
    pipe.ltrim(keys.rejections(integration_id), 0, buffer.LIST_MAX - 1)
    pipe.execute()
    return n


TEST_EVENT_ID = re.compile(r"test-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _live_records(live: list[tuple[int, str, str, str, str | None, str]], now_ms: int) -> dict[int, bytes]:
    """Trace records of the last accepted lines (the live events view), keyed by position over all hours, each
    missing the generation the append script completes it with. A record holds no line: the event is in its buffer,
    its batch or its object, where finding it reads it (``workers.integrations.find``)."""
    out = {}
    for pos, hour, event_id, type_, event, received_at in live:
        out[pos] = (
            orjson.dumps(
                {
                    "event_id": event_id,
                    "type": type_,
                    "event": event,
                    "received_at": received_at,
                    "at_ms": now_ms,
                    "hour": hour,
                }
            )[:-1]
            + b',"gen":'
        )
    return out


def _pin(message: Message) -> int:
    """The record to keep apart for a test event (``signal-s3 test``, Send test event), in append.lua's terms."""
    for pos, _hour, event_id, *_ in message.live:
        if TEST_EVENT_ID.fullmatch(event_id):
            return pos + 1
    for k, (event_id, *_) in enumerate(message.removed_live):
        if TEST_EVENT_ID.fullmatch(event_id):
            return -(k + 1)
    return 0


def _removed_records(removed_live: list[tuple[str, str, str | None, str, str]], now_ms: int) -> list[bytes]:
    """Live events records (state ``filtered``, with the reason) of the last events the blueprint removed."""
    return [
        orjson.dumps(
            {
                "event_id": event_id,
                "type": type_,
                "event": event,
                "received_at": received_at,
                "at_ms": now_ms,
                "state": "filtered",
                "reason": reason,
            }
        )
        for event_id, type_, event, received_at, reason in removed_live
    ]
