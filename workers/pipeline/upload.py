"""Upload one sealed batch as one object, exactly once: claimed under a lease, deleted only after S3 confirmed it.

Transient failures are recorded with the time the batch is due again (the durable retry state) and raised as
``TransientError`` for the Celery task to retry sooner; permanent failures go to the dead-letter store.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import redis

from workers import clock
from workers.classify import AUTH_CODES, EXPIRED_CODES, classify, hint_for
from workers.errors import Failure, PermanentError, TransientError
from workers.events import partitions
from workers.integrations import registry
from workers.integrations.checks import ACCESS_KEY, ASSUME_ROLE, FLEET
from workers.integrations.config import IntegrationConfig
from workers.pipeline import tables
from workers.settings import Settings
from workers.sink import clients, credentials, writer
from workers.sink.object_keys import batch_key, variant_of
from workers.store import buffer, facts, ledger

log = logging.getLogger(__name__)


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
        integ = registry.get(r, integration_id, max_age_s=settings.integration_cache_ttl_s)
    except registry.UnknownIntegration:
        _hold(
            r,
            integration_id,
            batch_id,
            "",
            _failure("IntegrationMissing", f"integration {integration_id} is not installed"),
            now_ms,
        )
    cfg = integ.config
    meta_hour = buffer.batch_meta(r, integration_id, batch_id).get("hour")
    if meta_hour is None:
        return UploadOutcome("skipped")
    hour, values = partitions.split_slot(meta_hour)
    key = batch_key(cfg.prefix, partitions.key_path(values), hour, batch_id, integ.variant, cfg.date_layout)
    c = buffer.claim(
        r, integration_id, batch_id, token=token, now_ms=now_ms, lease_ms=int(settings.lease_s * 1000), key=key
    )
    if c.state != "ok":
        return UploadOutcome("skipped")
    if c.claims > settings.max_worker_losses:
        _hold(
            r,
            integration_id,
            batch_id,
            token,
            _failure(
                "WorkerLost",
                f"the batch's upload was interrupted {c.claims - 1} times in a row (worker killed or out of memory)",
            ),
            now_ms,
            c,
        )
    if cfg.credentials == FLEET and not settings.allow_fleet_credentials:
        _hold(
            r,
            integration_id,
            batch_id,
            token,
            _failure(
                "FleetCredentialsNotAllowed",
                "the integration writes "
                "with the fleet's own identity, which SIGNAL_ALLOW_FLEET_CREDENTIALS does not allow",
            ),
            now_ms,
            c,
        )
    if cfg.credentials == ASSUME_ROLE and facts.role_refused_until_ms(r, integration_id) > now_ms:
        # STS refused the role a moment ago, to this or another worker: hold without asking again
        _hold(r, integration_id, batch_id, token, credentials.refused(cfg, settings), now_ms, c)
    started_s = time.perf_counter()
    try:
        result = _write(r, integration_id, batch_id, c, cfg, settings)
    except buffer.BatchVanished:
        return UploadOutcome("skipped")  # delivered by another uploader meanwhile: nothing was completed here
    except Exception as exc:  # classified below: nothing escapes unrecorded
        failure = classify(exc, refreshing_credentials=cfg.credentials != ACCESS_KEY)
        if failure.code == "AssumeRoleDenied":
            facts.set_role_refused(r, integration_id, until_ms=clock.now_ms() + int(settings.sts_refusal_hold_s * 1000))
        _record_failure(r, integration_id, batch_id, token, c, failure, cfg, settings)
    upload_s = time.perf_counter() - started_s
    written_ms = clock.now_ms()
    record = ledger.Record(
        key=c.key,
        hour=hour,
        events=c.events,
        raw_bytes=c.bytes,
        bytes=result.compressed_bytes,
        first_ms=c.first_ms,
        last_ms=c.last_ms,
        written_ms=written_ms,
        upload_ms=round(upload_s * 1000),
        attempts=c.attempts,
        etag=result.etag.strip('"'),
        bucket=cfg.bucket,
    )
    buffer.ack(
        r,
        integration_id,
        batch_id,
        now_ms=written_ms,
        compressed_bytes=result.compressed_bytes,
        key=c.key,
        upload_s=upload_s,
        ledger_record=ledger.pack(record, prefix=cfg.prefix),
        ledger_ttl_ms=settings.ledger_retention_s * 1000,
    )
    log.info(
        "delivered integration=%s batch=%s events=%d bytes=%d key=%s",
        integration_id,
        batch_id,
        c.events,
        result.compressed_bytes,
        c.key,
        extra={
            "integration_id": integration_id,
            "batch_id": batch_id,
            "events": c.events,
            "bytes": result.compressed_bytes,
            "key": c.key,
            "upload_s": round(upload_s, 6),
        },
    )
    return UploadOutcome("delivered", key=c.key, events=c.events)


def _write(
    r: redis.Redis, iid: str, batch_id: str, c: buffer.Claim, cfg: IntegrationConfig, settings: Settings
) -> writer.UploadResult:
    """The batch written as the object its key names (the key was fixed at the first uncertain attempt: write the
    format it names). A bucket with Object Lock gets a checksum on every request: known from a check, or learned
    here from the store's refusal, then remembered for every worker, and the batch is written again at once."""

    def put(checksum: bool) -> writer.UploadResult:
        lines = buffer.read_batch(r, iid, batch_id, settings.drain_chunk_events, c.events)
        variant = variant_of(c.key)
        if variant == "iceberg":
            slot = partitions.split_slot(c.hour)
            return tables.deliver(
                r, iid, batch_id, key=c.key, slot=slot, lines=lines, cfg=cfg, settings=settings, checksum=checksum
            )
        return writer.put_object(cfg, c.key, lines, settings=settings, variant=variant, checksum=checksum)

    known = facts.object_lock(r, iid)
    try:
        return put(known)
    except Exception as exc:
        if known or classify(exc).code != "ObjectLockChecksumRequired":
            raise
    facts.set_object_lock(r, iid, True, now_ms=clock.now_ms())
    return put(True)


def _failure(code: str, message: str) -> Failure:
    return Failure(code, message, True, hint_for(code), None)


def _hold(
    r: redis.Redis, iid: str, batch_id: str, token: str, f: Failure, now_ms: int, c: buffer.Claim | None = None
) -> NoReturn:
    """Hold the batch in the dead-letter store for a failure of our own, log it, and raise it."""
    buffer.hold(r, iid, batch_id, token=token, now_ms=now_ms, code=f.code, message=f.message, hint=f.hint or "")
    context = {"events": c.events, "key": c.key} if c is not None else {}
    log.error(
        "held integration=%s batch=%s code=%s: %s",
        iid,
        batch_id,
        f.code,
        f.message,
        extra={"integration_id": iid, "batch_id": batch_id, "code": f.code, **context},
    )
    raise PermanentError(f)


def _record_failure(
    r: redis.Redis,
    iid: str,
    batch_id: str,
    token: str,
    c: buffer.Claim,
    f: Failure,
    cfg: IntegrationConfig,
    settings: Settings,
) -> NoReturn:
    """Hold the batch (permanent, or retried for too long) or schedule its retry; raises either way."""
    now_ms = clock.now_ms()
    first_ms = c.retry_since_ms or now_ms
    if not f.permanent and now_ms - first_ms >= settings.max_retry_age_s * 1000:
        f = Failure(
            f.code,
            f"still failing after {settings.max_retry_age_s}s of retries: {f.message}",
            True,
            f.hint or hint_for(f.code),
            f.http_status,
        )
    if f.code in EXPIRED_CODES or (cfg.credentials == ACCESS_KEY and f.code in AUTH_CODES):
        # the next attempt starts from a fresh client (a role's session stays: S3 applies a changed permission to
        # it at once, and asking STS again per failed batch would flood the customer's CloudTrail)
        clients.evict(cfg)
    if f.permanent:
        buffer.hold(r, iid, batch_id, token=token, now_ms=now_ms, code=f.code, message=f.message, hint=f.hint or "")
        log.error(
            "held integration=%s batch=%s code=%s: %s | hint: %s",
            iid,
            batch_id,
            f.code,
            f.message,
            f.hint,
            extra={"integration_id": iid, "batch_id": batch_id, "code": f.code, "events": c.events, "key": c.key},
        )
        raise PermanentError(f)
    delay_s = compute_backoff_s(c.attempts, base_s=settings.retry_backoff_base_s, max_s=settings.retry_backoff_max_s)
    # The Celery retry comes at delay_s; the sweep picks the batch up only if that retry message was lost.
    sweep_at_ms = now_ms + int((delay_s + settings.lease_s) * 1000)
    buffer.fail(r, iid, batch_id, token=token, now_ms=now_ms, retry_at_ms=sweep_at_ms, code=f.code, message=f.message)
    log.warning(
        "retrying integration=%s batch=%s code=%s attempt=%d in %.2fs: %s",
        iid,
        batch_id,
        f.code,
        c.attempts,
        delay_s,
        f.message,
        extra={
            "integration_id": iid,
            "batch_id": batch_id,
            "code": f.code,
            "events": c.events,
            "key": c.key,
            "attempt": c.attempts,
            "retry_in_s": round(delay_s, 3),
        },
    )
    raise TransientError(f, retry_in_s=delay_s)
