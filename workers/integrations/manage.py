"""Managing integrations: the operations the HTTP API, the console and the CLI share, each written once.

Install (validate, check the bucket, join a source), update (merge a partial config, validate, check the bucket),
delete (refused while events are buffered or held; optionally deliver them first), and the test event, which sends
one event through the real path and waits for its outcome. Each raises a domain error the faces render their own
way: ``ConfigError`` (one message per wrong field), ``BucketCheckFailed`` (the the troubleshooting row),
``NotEmpty`` (the counts that block a delete).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import redis

from workers import clock
from workers.classify import classify
from workers.errors import ConfigError, Failure, Refused
from workers.events.blueprint import describe
from workers.integrations import bodies, catalog, registry, sources, status
from workers.integrations.checks import ASSUME_ROLE, FLEET
from workers.integrations.config import IntegrationConfig
from workers.integrations.model import Integration
from workers.queue.producer import Broker
from workers.settings import Settings
from workers.sink import bucket, check, credentials, iam
from workers.sink.iceberg import catalogs, table
from workers.store import buffer, due, facts, keys, table_lock

TEST_EVENT_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.1
REFLUSH_S = 5.0  # a test event still buffered this long after its flush is flushed again


class BucketCheckFailed(Refused):
    """The bucket check (GetBucketLocation) failed: nothing was stored. ``failure`` says why, with the hint."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.code}: {failure.message}")
        self.failure = failure


class NotEmpty(Refused):
    """A delete was refused: events are still ``held``, ``buffered``, or were not delivered in time (``timeout``).
    ``counts`` says how many."""

    def __init__(self, kind: str, message: str, counts: dict[str, int]) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.counts = counts


def view(integ: Integration) -> dict[str, Any]:
    """What every face shows of an integration: the public record (secrets redacted, its blueprint) and its type."""
    return {**integ.public(), "type": catalog.INTEGRATION_TYPE}


def _allowed(config: IntegrationConfig | None, settings: Settings) -> None:
    """``credentials: fleet`` only where the fleet allows it: in a fleet shared by several teams it would let any
    integration write with the fleet's rights."""
    if config is not None and config.credentials == FLEET and not settings.allow_fleet_credentials:
        raise ConfigError(
            [
                {
                    "field": "config.credentials",
                    "message": (
                        "credentials fleet (the fleet's own AWS identity) is not allowed by this fleet "
                        "(SIGNAL_ALLOW_FLEET_CREDENTIALS); use assume_role or access_key"
                    ),
                }
            ]
        )


def _check_bucket(config: IntegrationConfig, settings: Settings) -> bool | None:
    """The bucket check of an install or update (GetBucketLocation: exists, answers, in its region), then whether it
    has Object Lock (None: not permitted to know). Raises ``BucketCheckFailed``."""
    failure = bucket.verify_bucket(config, settings=settings)
    if failure is not None:
        raise BucketCheckFailed(failure)
    try:
        return bucket.detect_object_lock(config, settings=settings)
    except Exception:  # noqa: BLE001 - not needed to install: the first upload finds out instead
        return None


def _check_table(r: redis.Redis, config: IntegrationConfig, variant: str, settings: Settings) -> None:
    """An iceberg integration's table: its catalog reachable, the table created when missing or able to take the
    integration's events. Raises ``ConfigError`` naming the field to change."""
    if variant != "iceberg":
        return
    try:
        catalogs.open_table(config, settings, creating=lambda: table_lock.creating(r, table.location(config)))
    except Exception as exc:  # noqa: BLE001 - every failure becomes the message next to its field
        failure = classify(exc)
        field = {
            "IcebergTableMismatch": "config.iceberg_table",
            "IcebergCatalogRefused": "config.iceberg_catalog_uri",
        }.get(failure.code, "config.iceberg_catalog")
        message = failure.message if failure.code.startswith("Iceberg") else f"{failure.code}: {failure.message}"
        raise ConfigError([{"field": field, "message": f"the Iceberg table could not be opened: {message}"}]) from None


def _remember(r: redis.Redis, integration_id: str, object_lock: bool | None) -> None:
    if object_lock is not None:
        facts.set_object_lock(r, integration_id, object_lock, now_ms=clock.now_ms())


def access_policies(integ: Integration, *, settings: Settings) -> dict[str, Any]:
    """What to paste in the customer's account: the least-privilege permissions policy, and for a role also the trust
    policy that lets the fleet's principal assume it with the integration's external ID."""
    policies: dict[str, Any] = {"permissions_policy": iam.iam_policy(integ.config, variant=integ.variant)}
    if integ.config.credentials == ASSUME_ROLE:
        key_pair = integ.config.access_key_id is not None
        principal = None if key_pair else credentials.fleet_principal(settings)
        policies["trust_policy"] = credentials.trust_policy(
            principal, integ.config.external_id or "", key_pair=key_pair
        )
    return policies


def check_connection(r: redis.Redis, integration_id: str, *, settings: Settings) -> dict[str, Any]:
    """Every step an upload takes, each ok or failed with its hint (``workers.sink.check``); what it learns of the
    bucket (Object Lock) is remembered for the uploads."""
    integ = registry.get(r, integration_id, max_age_s=0)
    report = check.check_connection(integ.config, settings=settings)
    _remember(r, integration_id, report.object_lock)
    return {"integration_id": integration_id, **report.view()}


# -- install / update / delete ------------------------------------------------------------------------------------


def install_integration(r: redis.Redis, body: Any, *, settings: Settings) -> Integration:
    """Validate an install body, check the bucket unless ``"verify": false``, and store the integration in its
    source (``source_id``, or the default source, created on demand).

    Raises ``ConfigError`` (one entry per wrong field, ``source_id`` naming an unknown source) or
    ``BucketCheckFailed``; nothing is stored then.
    """
    body, verify = bodies.pop_verify(body)
    fields = bodies.validate_install(body)
    source_id = fields["source_id"]
    if source_id is not None and not r.exists(keys.source(source_id)):
        raise ConfigError([{"field": "source_id", "message": f"source {source_id} does not exist; create it first"}])
    _allowed(fields["config"], settings)
    object_lock = _check_bucket(fields["config"], settings) if verify else None
    if verify:
        _check_table(r, fields["config"], fields["variant"], settings)
    if source_id is None:
        body = {**body, "source_id": sources.ensure_default(r).id}
    integ = registry.install(r, body)
    _remember(r, integ.id, object_lock)
    return integ


def update_integration(
    r: redis.Redis, integration_id: str, body: Any, *, settings: Settings, merge: bool = True
) -> Integration:
    """Apply ``{"config": {...partial...}, "name": ..., "blueprint": {...whole...}, "verify": bool}``: every wrong
    field is reported at once, the merged config is validated like an install and its bucket checked (unless
    ``"verify": false``); a blueprint replaces the current one (``{}``: forward all events). With ``merge=False``
    the config given replaces the whole config (``signal-s3 update``)."""
    current = registry.get(r, integration_id)
    body, verify = bodies.pop_verify(body)
    change = bodies.validate_update(current.config, body, merge=merge)
    _allowed(change.config, settings)
    object_lock = _check_bucket(change.config, settings) if change.config is not None and verify else None
    if change.config is not None and verify:
        _check_table(r, change.config, current.variant, settings)
    integ = registry.update(r, integration_id, config=change.config, name=change.name, blueprint=change.blueprint)
    _remember(r, integration_id, object_lock)
    return integ


def counts(r: redis.Redis, integration_id: str) -> dict[str, int]:
    """What blocks a delete: buffered events (waiting for delivery) and held ones."""
    st = status.integration_status(r, integration_id)
    return {
        "buffered_events": st["buffered_events"],
        "dead_letter_events": st["dead_letter_events"],
        "dead_letter_batches": st["dead_letter_batches"],
    }


def delete_integration(
    r: redis.Redis,
    broker: Broker,
    integration_id: str,
    *,
    settings: Settings,
    flush: bool = False,
    timeout_s: float = FLUSH_TIMEOUT_S,
) -> None:
    """Delete an integration. Held events always block it (replay them first); buffered events block it unless
    ``flush``: then it is disabled, its buffers are sealed and uploaded, and it is deleted once they are delivered
    (re-enabled and refused if they are not delivered within ``timeout_s``)."""
    integ = registry.get(r, integration_id)
    found = counts(r, integration_id)
    if found["dead_letter_events"]:
        raise NotEmpty(
            "held",
            f"{found['dead_letter_events']} events are held in the dead-letter store; fix the "
            "cause and replay them before deleting the integration",
            found,
        )
    if found["buffered_events"] and not flush:
        raise NotEmpty(
            "buffered",
            f"{found['buffered_events']} events are buffered and not yet delivered; "
            "delete with ?flush=true to deliver them first",
            found,
        )
    if found["buffered_events"]:
        registry.set_enabled(r, integration_id, False)  # no new events while it drains
        found = flush_and_wait(r, broker, integration_id, settings=settings, timeout_s=timeout_s)
        if found["buffered_events"] or found["dead_letter_events"]:
            if integ.enabled:
                registry.set_enabled(r, integration_id, True)
            if found["dead_letter_events"]:
                raise NotEmpty(
                    "held",
                    f"{found['dead_letter_events']} events were held in the dead-letter store while they were "
                    "delivered; fix the cause and replay them before deleting the integration",
                    found,
                )
            raise NotEmpty(
                "timeout",
                f"{found['buffered_events']} events were still not delivered after "
                f"{timeout_s:g}s; see the status and try again",
                found,
            )
    registry.delete(r, integration_id)


def flush_and_wait(
    r: redis.Redis, broker: Broker, integration_id: str, *, settings: Settings, timeout_s: float
) -> dict[str, int]:
    """Seal and dispatch every buffer of an integration, then wait until nothing is buffered (held events, if any,
    remain held)."""
    for batch_id in flush_now(r, integration_id, settings=settings):
        broker.upload(integration_id, batch_id)
    deadline = time.monotonic() + timeout_s
    while True:
        found = counts(r, integration_id)
        if found["buffered_events"] == 0 or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_INTERVAL_S)


def flush_now(r: redis.Redis, integration_id: str, *, settings: Settings) -> list[str]:
    """Seal every open buffer of one integration now (test events, flush before delete); returns the batch ids."""
    now_ms = clock.now_ms()
    seal_due_ms = now_ms + int(settings.lease_s * 1000)
    hours = buffer.open_buffers(r, [integration_id]).get(integration_id, [])
    sealed = [buffer.seal(r, integration_id, hour, now_ms=now_ms, seal_due_ms=seal_due_ms) for hour, _ in hours]
    if any(sealed):
        due.lower(r, integration_id, seal_due_ms)  # the sweep's safety net, should a dispatch get lost
    return [b for b in sealed if b]


# -- test event ---------------------------------------------------------------------------------------------------


def run_test_event(
    r: redis.Redis, broker: Broker, integration_id: str, *, settings: Settings, timeout_s: float = TEST_EVENT_TIMEOUT_S
) -> tuple[int, dict[str, Any]]:
    """Send one test track event through the real path (ingest task, seal, upload task) and wait for its outcome.

    Returns (HTTP status, body): 200 delivered with the object key, 424 failed with code/message/hint, 409 when the
    integration is disabled or when its blueprint removed the test event (``"state": "filtered"`` with the
    ``reason`` and what the blueprint does: nothing was written to S3), 504 with the state reached when
    ``timeout_s`` ran out.
    """
    integ = registry.get(r, integration_id)
    if not integ.enabled:
        return 409, {"error": "disabled", "message": f"integration {integration_id} is disabled; enable it first"}
    event_id = f"test-{uuid.uuid4()}"
    event = {
        "event_id": event_id,
        "type": "track",
        "event": "Signal Test Event",
        "anonymous_id": "signal-test-event",
        "properties": {"test": True},
        "context": {"library": {"name": "signal-s3", "test_event": True}},
    }
    if integ.source_id:
        event["source_id"] = integ.source_id
    started = time.monotonic()
    broker.ingest(integration_id, [event])
    deadline = started + timeout_s
    state, next_flush, found = "queued", 0.0, None
    while True:
        found = _test_event_now(r, integration_id, event_id)
        if found is not None:
            state = found["state"]
            if state == "buffered" and time.monotonic() >= next_flush:
                # seal its buffer now rather than at the next tick; again every few seconds should it still wait
                for batch_id in flush_now(r, integration_id, settings=settings):
                    broker.upload(integration_id, batch_id)
                next_flush = time.monotonic() + REFLUSH_S
                continue
            if state == "filtered":
                return 409, _filtered_test_event(integ, event_id, found["reason"])
            if state == "delivered":
                return 200, {
                    "event_id": event_id,
                    "state": "delivered",
                    "bucket": integ.config.bucket,
                    "object_key": found.get("object_key"),
                    "batch_id": found.get("batch_id"),
                    "elapsed_ms": int((time.monotonic() - started) * 1000),
                }
            if state == "failed":
                meta = buffer.batch_meta(r, integration_id, found["batch_id"])
                return 424, {
                    "error": "delivery_failed",
                    "event_id": event_id,
                    "state": "failed",
                    "code": found.get("code"),
                    "message": meta.get("error_message") or "delivery failed",
                    "hint": found.get("hint"),
                    "batch_id": found.get("batch_id"),
                }
        if time.monotonic() >= deadline:
            body = {
                "error": "timeout",
                "event_id": event_id,
                "state": state,
                "message": f"the test event was not delivered within {timeout_s:g}s (last state: {state}); "
                "are the workers running?",
            }
            if found is not None and found.get("code"):
                body["code"] = found["code"]
            return 504, body
        time.sleep(POLL_INTERVAL_S)


def _test_event_now(r: redis.Redis, integration_id: str, event_id: str) -> dict[str, Any] | None:
    """The test event as Live Events traces it: the pinned record (kept apart however busy the integration), else
    among the recent events (a worker that pinned another test event since)."""
    pinned = status.pinned_event(r, integration_id)
    if pinned is not None and pinned["event_id"] == event_id:
        return pinned
    return next(
        (v for v in status.live_events(r, integration_id, limit=buffer.LIST_MAX) if v["event_id"] == event_id), None
    )


_FILTERED_WHY = {
    "consent_denied": "the blueprint requires consent the test event does not carry (it has no consent information)",
    "filtered_out": 'the blueprint\'s events rule does not deliver a track event named "Signal Test Event"',
}


def _filtered_test_event(integ: Integration, event_id: str, reason: str) -> dict[str, Any]:
    """The answer when the integration's blueprint removed the test event: it reached the ingest path and was counted
    under ``removed_events``, but nothing went to S3, so the bucket was not tested."""
    why = _FILTERED_WHY.get(reason, "the blueprint removed it")
    return {
        "error": "filtered",
        "event_id": event_id,
        "state": "filtered",
        "reason": reason,
        "code": reason,
        "message": f"the test event was removed by the integration's blueprint ({reason}): {why}; nothing was "
        "written to S3, so the bucket was not tested",
        "hint": "Blueprint: " + " ".join(describe(integ.blueprint)) + " To test the bucket, send an event the "
        "blueprint delivers, or test while the blueprint forwards all events.",
    }
