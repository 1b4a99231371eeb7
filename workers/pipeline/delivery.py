"""The pipeline's plain functions: ingest events, flush due buffers, upload one batch, replay held batches.

Celery tasks in ``tasks/`` are thin adapters over these; everything here is testable without Celery.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import orjson
import redis

from workers import clock
from workers.events import prepared
from workers.integrations import registry
from workers.sink import s3
from workers.store import buffer, due, keys
from workers.store.db import text
from workers.errors import Failure, PermanentError, TransientError, classify, hint_for
from workers.sink.object_keys import object_key, variant_of
from workers.settings import Settings

log = logging.getLogger(__name__)


class IntegrationDisabled(Exception):
    def __init__(self, integration_id: str) -> None:
        super().__init__(f"integration {integration_id} is disabled: events are not accepted")
        self.integration_id = integration_id


# -- ingest ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, object]] = field(default_factory=list)
    duplicate: bool = False
    sealed: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)  # events the blueprint removed, by reason
    partition_fallback: int = 0

    def summary(self) -> dict[str, object]:
        return {"accepted": self.accepted, "rejected": self.rejected, "duplicate": self.duplicate,
                "removed": self.removed, "partition_fallback": self.partition_fallback}


def prepare(r: redis.Redis, integration_id: str, events: object, *, settings: Settings) -> prepared.Prepared:
    """Validate, stamp and serialise ``events`` for one integration: the half of ingest a producer can run.

    Raises UnknownIntegration / IntegrationDisabled, and TypeError when ``events`` is not a list. Invalid events are
    rejected one by one, with a reason; the integration's blueprint runs on the valid ones (those it removes are
    reported by reason, not as errors) and the config's ``partition_time`` picks each event's hour. The integration is
    read through the registry's per-process cache, so its config may be up to ``registry.GET_CACHE_TTL_S`` old.
    """
    integ = registry.get(r, integration_id)
    if not integ.enabled:
        raise IntegrationDisabled(integration_id)
    if not isinstance(events, list):
        raise TypeError("events must be a list of event objects")
    return prepared.prepare(events, integration_id, received_at=clock.now(), event_max_bytes=settings.event_max_bytes,
                            rules=integ.rules, partition=integ.config)


def ingest(r: redis.Redis, integration_id: str, events: object, *, message_id: str, settings: Settings) -> IngestResult:
    """Validate ``events`` and append the valid ones to the integration's hourly buffers, once per message: ``prepare``
    here, then the same ``append`` as a prepared message."""
    message = prepared.message(prepare(r, integration_id, events, settings=settings))
    return append(r, integration_id, message, message_id=message_id, settings=settings)


def append(r: redis.Redis, integration_id: str, message: prepared.Message, *, message_id: str,
           settings: Settings) -> IngestResult:
    """Append a prepared message's lines to the integration's hourly buffers, once per message, with its rejections.

    Raises UnknownIntegration / IntegrationDisabled (nothing buffered). The rejections ``prepare`` made are counted
    with the append; lines over the integration's buffer cap are refused one by one (reason ``buffer_full``).
    """
    integ = registry.get(r, integration_id)
    if not integ.enabled:
        raise IntegrationDisabled(integration_id)
    cfg = integ.config
    now_ms = clock.now_ms()
    rejected = [
        {"index": rj.index, "reason": rj.reason, "detail": rj.detail, "event_id": rj.event_id}
        for rj in message.rejected
    ]
    result = buffer.append(
        r,
        integration_id,
        message.lines_by_hour,
        message_id=message_id,
        now_ms=now_ms,
        seen_ttl_ms=settings.ingest_dedup_ttl_s * 1000,
        cap_bytes=cfg.effective_buffer_max_bytes(settings),
        batch_max_events=cfg.batch_max_events,
        batch_max_bytes=cfg.batch_max_bytes,
        seal_due_ms=now_ms + int(settings.lease_s * 1000),
        rejection_counts=Counter(rj.reason for rj in message.rejected),
        rejection_records=[orjson.dumps({"at_ms": now_ms, **rj}) for rj in rejected],
        live_records=_live_records(message.live, now_ms),
        removed_counts=message.removed,
        removed_records=_removed_records(message.removed_live, now_ms),
        partition_fallback=message.partition_fallback,
        min_replicas=settings.redis_min_replicas,
        replicas_timeout_ms=settings.redis_min_replicas_timeout_ms,
    )
    _tell_due_index(r, integration_id, result, now_ms=now_ms, settings=settings,
                    interval_s=cfg.effective_flush_interval_s(settings))
    if result.duplicate:
        return IngestResult(0, [], duplicate=True)
    if result.refused_positions:
        # lines went in grouped by hour: map their positions back to the producer's indexes
        indexes = [i for idx in message.indexes_by_hour.values() for i in idx]
        lines = [line for group in message.lines_by_hour.values() for line in group]
        for pos in result.refused_positions:
            rejected.append({
                "index": indexes[pos], "reason": "buffer_full", "event_id": orjson.loads(lines[pos])["event_id"],
                "detail": "the integration's buffer is full (buffer_max_bytes): delivery is failing or too slow",
            })
    return IngestResult(result.accepted, rejected, sealed=result.sealed, removed=dict(message.removed),
                        partition_fallback=message.partition_fallback)


def _tell_due_index(r: redis.Redis, integration_id: str, result: buffer.AppendResult, *, now_ms: int,
                    settings: Settings, interval_s: float) -> None:
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


def record_ingest_failure(r: redis.Redis, integration_id: str, events: object, exc: BaseException, *,
                          n: int | None = None) -> int:
    """Count the events of a message whose ingest failed unexpectedly (nothing was appended), so the integration's
    status shows them as rejected (reason ``ingest_failed``) with the error, instead of only a worker log line.
    ``n`` is their number when ``events`` is not the list of them (a prepared message)."""
    if n is None:
        n = len(events) if isinstance(events, list) else 1
    detail = f"ingest failed before buffering: {type(exc).__name__}: {str(exc)[:200]}"
    record = orjson.dumps({"at_ms": clock.now_ms(), "index": None, "reason": "ingest_failed", "detail": detail,
                           "event_id": None, "events": n})
    pipe = r.pipeline(transaction=False)
    pipe.hincrby(keys.stats(integration_id), "rejected:ingest_failed", n)
    pipe.lpush(keys.rejections(integration_id), record)
    pipe.ltrim(keys.rejections(integration_id), 0, buffer.LIST_MAX - 1)
    pipe.execute()
    return n


def _live_records(live: list[tuple[int, str, str, str, str | None, str]], now_ms: int) -> dict[int, bytes]:
    """Trace records of the last accepted lines (the live events view), keyed by flattened position, each missing
    the generation the append script completes it with."""
    return {
        pos: orjson.dumps({"event_id": event_id, "type": type_, "event": event, "received_at": received_at,
                           "at_ms": now_ms, "hour": hour})[:-1] + b',"gen":'
        for pos, hour, event_id, type_, event, received_at in live
    }


def _removed_records(removed_live: list[tuple[str, str, str | None, str, str]], now_ms: int) -> list[bytes]:
    """Live events records (state ``filtered``, with the reason) of the last events the blueprint removed."""
    return [
        orjson.dumps({"event_id": event_id, "type": type_, "event": event, "received_at": received_at,
                      "at_ms": now_ms, "state": "filtered", "reason": reason})
        for event_id, type_, event, received_at, reason in removed_live
    ]


# -- flush ------------------------------------------------------------------------------------------------------------


def flush_due(r: redis.Redis, *, settings: Settings, force: bool = False) -> list[tuple[str, str]]:
    """The beat's flush: seal every open buffer that is due, and collect every batch the sweep must (re)dispatch.

    A buffer is due at every tick when its integration flushes at the tick's pace, otherwise once it is as old as
    the integration's ``flush_interval_s``. Only the integrations the due index names are looked at, so a tick costs
    what is due; once every ``due.CHECK_EVERY_S`` every installed integration is looked at too. ``force`` seals
    every open buffer of every integration. Returns (integration id, batch id) pairs to upload.
    """
    now_ms = clock.now_ms()
    if force:
        candidates: list[tuple[str, int | None]] = [(iid, None) for iid in registry.ids(r)]
    else:
        candidates = list(due.due(r, now_ms))
        if due.claim_check(r):
            indexed = {iid for iid, _ in candidates}
            candidates += [(iid, None) for iid in registry.ids(r) if iid not in indexed]
    work: list[tuple[str, str]] = []
    for start in range(0, len(candidates), FLUSH_CHUNK):
        work += _flush_chunk(r, candidates[start:start + FLUSH_CHUNK], now_ms, settings=settings, force=force)
    return work


FLUSH_CHUNK = 500


def _flush_chunk(r: redis.Redis, candidates: list[tuple[str, int | None]], now_ms: int, *, settings: Settings,
                 force: bool) -> list[tuple[str, str]]:
    """Flush what is due of some integrations (one pipelined read for all of them), then move each in the due index
    to the time something of it is next due."""
    tick_ms = int(settings.flush_interval_s * 1000)
    seal_due_ms = now_ms + int(settings.lease_s * 1000)
    pipe = r.pipeline(transaction=False)
    for iid, _ in candidates:
        pipe.zrange(keys.open_index(iid), 0, -1, withscores=True)
        pipe.zrangebyscore(keys.pending(iid), "-inf", now_ms)
        pipe.zrange(keys.pending(iid), 0, 0, withscores=True)
        pipe.exists(keys.integration(iid))
    replies = pipe.execute()
    work: list[tuple[str, str]] = []
    updates: list[tuple[str, int | None, int | None]] = []
    for n, (iid, seen) in enumerate(candidates):
        hours, due_batches, first_pending, installed = replies[4 * n:4 * n + 4]
        next_ms = [int(first_pending[0][1])] if first_pending else []
        interval_ms = tick_ms
        if hours and installed:
            try:
                interval_ms = int(registry.get(r, iid).config.effective_flush_interval_s(settings) * 1000)
            except registry.UnknownIntegration:
                pass
        for hour, first_ms in hours:
            due_ms = due.buffer_due_ms(int(first_ms), interval_ms, tick_ms)
            if force or due_ms <= now_ms:
                batch_id = buffer.seal(r, iid, text(hour), now_ms=now_ms, seal_due_ms=seal_due_ms)
                if batch_id:
                    work.append((iid, batch_id))
                    next_ms.append(seal_due_ms)
            else:
                next_ms.append(due_ms)
        # batches of the sweep stay due until a worker claims them: they are looked at (and sent) again next tick
        work.extend((iid, text(b)) for b in due_batches)
        updates.append((iid, seen, min(next_ms) if next_ms else due.IDLE_MS if installed else None))
    due.reschedule(r, updates)
    return work


def flush_now(r: redis.Redis, integration_id: str, *, settings: Settings) -> list[str]:
    """Seal every open buffer of one integration now (test events, flush before delete); returns the batch ids."""
    now_ms = clock.now_ms()
    seal_due_ms = now_ms + int(settings.lease_s * 1000)
    hours = buffer.open_buffers(r, [integration_id]).get(integration_id, [])
    sealed = [buffer.seal(r, integration_id, hour, now_ms=now_ms, seal_due_ms=seal_due_ms) for hour, _ in hours]
    if any(sealed):
        due.lower(r, integration_id, seal_due_ms)  # the sweep's safety net, should a dispatch get lost
    return [b for b in sealed if b]


# -- upload -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadOutcome:
    """What an upload call did when it did not raise (failures raise TransientError / PermanentError)."""

    state: str  # delivered | skipped (already delivered, held, or leased by another uploader)
    key: str = ""
    events: int = 0


def compute_backoff_s(attempt: int, *, base_s: float, max_s: float, rand: Callable[[], float] = random.random) -> float:
    """Capped exponential backoff with equal jitter: half fixed, half random."""
    ceiling = min(max_s, base_s * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + ceiling / 2 * rand()


def upload(r: redis.Redis, integration_id: str, batch_id: str, *, settings: Settings) -> UploadOutcome:
    """Upload one sealed batch as one object; the batch is deleted only after S3 confirmed the PUT.

    Transient failures are recorded with the time the batch is due again (the durable retry state) and raised as
    TransientError for the caller to retry sooner; permanent failures and batches older than max_retry_age_s go to
    the dead-letter store and raise PermanentError. A batch whose uploaders died ``max_worker_losses`` times in a
    row is held too (code WorkerLost), so a poison batch cannot crash workers forever.
    """
    token = uuid.uuid4().hex
    now_ms = clock.now_ms()
    try:
        integ = registry.get(r, integration_id)
    except registry.UnknownIntegration:
        f = Failure("IntegrationMissing", f"integration {integration_id} is not installed", True,
                    hint_for("IntegrationMissing"), None)
        buffer.hold(r, integration_id, batch_id, token="", now_ms=now_ms, code=f.code, message=f.message,
                    hint=f.hint or "")
        log.error("held integration=%s batch=%s code=%s: %s", integration_id, batch_id, f.code, f.message,
                  extra={"integration_id": integration_id, "batch_id": batch_id, "code": f.code})
        raise PermanentError(f) from None
    cfg = integ.config
    meta_hour = buffer.batch_meta(r, integration_id, batch_id).get("hour")
    if meta_hour is None:
        return UploadOutcome("skipped")
    c = buffer.claim(r, integration_id, batch_id, token=token, now_ms=now_ms, lease_ms=int(settings.lease_s * 1000),
                     key=object_key(cfg.prefix, meta_hour, batch_id, integ.variant))
    if c.state != "ok":
        return UploadOutcome("skipped")
    if c.claims > settings.max_worker_losses:
        f = Failure("WorkerLost", f"the batch's upload was interrupted {c.claims - 1} times in a row "
                    "(worker killed or out of memory)", True, hint_for("WorkerLost"), None)
        buffer.hold(r, integration_id, batch_id, token=token, now_ms=now_ms, code=f.code, message=f.message,
                    hint=f.hint or "")
        log.error("held integration=%s batch=%s code=%s: %s", integration_id, batch_id, f.code, f.message,
                  extra={"integration_id": integration_id, "batch_id": batch_id, "code": f.code,
                         "events": c.events, "key": c.key})
        raise PermanentError(f)
    lines = buffer.read_batch(r, integration_id, batch_id, settings.drain_chunk_events, c.events)
    started_s = time.perf_counter()
    try:
        # the key was fixed at the first uncertain attempt: write the format it names
        result = s3.put_object(cfg, c.key, lines, settings=settings, variant=variant_of(c.key))
    except buffer.BatchVanished:
        return UploadOutcome("skipped")  # delivered by another uploader meanwhile: nothing was completed here
    except Exception as exc:  # classified below: nothing escapes unrecorded
        _record_failure(r, integration_id, batch_id, token, c, classify(exc), cfg, settings)
    upload_s = time.perf_counter() - started_s
    buffer.ack(r, integration_id, batch_id, now_ms=clock.now_ms(), compressed_bytes=result.compressed_bytes,
               key=c.key, upload_s=upload_s)
    log.info("delivered integration=%s batch=%s events=%d bytes=%d key=%s", integration_id, batch_id, c.events,
             result.compressed_bytes, c.key,
             extra={"integration_id": integration_id, "batch_id": batch_id, "events": c.events,
                    "bytes": result.compressed_bytes, "key": c.key, "upload_s": round(upload_s, 6)})
    return UploadOutcome("delivered", key=c.key, events=c.events)


def _record_failure(r: redis.Redis, iid: str, batch_id: str, token: str, c: buffer.Claim, f: Failure, cfg: object,
                    settings: Settings) -> NoReturn:
    """Hold the batch (permanent, or retried for too long) or schedule its retry; raises either way."""
    now_ms = clock.now_ms()
    first_ms = c.first_failure_ms or now_ms
    if not f.permanent and now_ms - first_ms >= settings.max_retry_age_s * 1000:
        f = Failure(f.code, f"still failing after {settings.max_retry_age_s}s of retries: {f.message}", True,
                    f.hint or hint_for(f.code), f.http_status)
    if f.permanent:
        if f.code in s3.AUTH_CODES:
            s3.evict(cfg)
        buffer.hold(r, iid, batch_id, token=token, now_ms=now_ms, code=f.code, message=f.message, hint=f.hint or "")
        log.error("held integration=%s batch=%s code=%s: %s | hint: %s", iid, batch_id, f.code, f.message, f.hint,
                  extra={"integration_id": iid, "batch_id": batch_id, "code": f.code, "events": c.events,
                         "key": c.key})
        raise PermanentError(f)
    delay_s = compute_backoff_s(c.attempts, base_s=settings.retry_backoff_base_s, max_s=settings.retry_backoff_max_s)
    # The Celery retry comes at delay_s; the sweep picks the batch up only if that retry message was lost.
    sweep_at_ms = now_ms + int((delay_s + settings.lease_s) * 1000)
    buffer.fail(r, iid, batch_id, token=token, now_ms=now_ms, retry_at_ms=sweep_at_ms, code=f.code, message=f.message)
    log.warning("retrying integration=%s batch=%s code=%s attempt=%d in %.2fs: %s", iid, batch_id, f.code,
                c.attempts, delay_s, f.message,
                extra={"integration_id": iid, "batch_id": batch_id, "code": f.code, "events": c.events,
                       "key": c.key, "attempt": c.attempts, "retry_in_s": round(delay_s, 3)})
    raise TransientError(f, retry_in_s=delay_s)


# -- dead letter ------------------------------------------------------------------------------------------------------


@dataclass
class ReplayReport:
    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, Failure]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """What a user is shown: delivered batches, batches already delivered, and what still fails and why."""
        return {
            "delivered": self.delivered,
            "already_delivered": self.skipped,
            "still_failing": [{"batch_id": b, "code": f.code, "message": f.message, "hint": f.hint}
                              for b, f in self.failed],
        }


def replay(
    r: redis.Redis,
    integration_id: str,
    *,
    settings: Settings,
    batch_id: str | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> ReplayReport:
    """Re-upload held batches now (after the user fixed the cause): same hour path, exactly once."""
    registry.get(r, integration_id)
    held = [b["batch_id"] for b in buffer.held_batches(r, integration_id)]
    if batch_id is not None:
        if batch_id not in held:
            raise LookupError(f"batch {batch_id} is not held for integration {integration_id}")
        held = [batch_id]
    report = ReplayReport()
    for b in held:
        # the sweep stays off it for one lease: this process uploads it right now
        due_ms = clock.now_ms() + int(settings.lease_s * 1000)
        buffer.release(r, integration_id, b, due_ms=due_ms)
        due.lower(r, integration_id, due_ms)
        try:
            outcome = upload(r, integration_id, b, settings=settings)
        except (PermanentError, TransientError) as exc:
            report.failed.append((b, exc.failure))
            if isinstance(exc, TransientError):
                # keep it visible and waiting: back to the dead-letter store, not into silent retries
                buffer.hold(r, integration_id, b, token="", now_ms=clock.now_ms(), code=exc.failure.code,
                            message=exc.failure.message, hint=exc.failure.hint or hint_for(exc.failure.code))
            state = "failed"
        else:
            (report.delivered if outcome.state == "delivered" else report.skipped).append(b)
            state = outcome.state
        if on_progress:
            on_progress(b, state)
    return report
