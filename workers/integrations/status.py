"""What a user sees of one integration's delivery: buffered, delivered, retrying, held, last success and error."""

from __future__ import annotations

from typing import Any

import orjson
import redis

from workers import clock
from workers.events import partitions
from workers.integrations import registry
from workers.store import buffer, keys
from workers.store.db import text


def _iso_ms(v: str | None) -> str | None:
    return clock.iso(clock.from_ms(int(v))) if v else None


def integration_status(r: redis.Redis, integration_id: str) -> dict[str, Any]:
    registry.get(r, integration_id)
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.stats(integration_id))
    pipe.hgetall(keys.status(integration_id))
    pipe.zcard(keys.pending(integration_id))
    stats_raw, status_raw, pending = pipe.execute()
    stats = {text(k): int(v) for k, v in stats_raw.items()}
    st = {text(k): text(v) for k, v in status_raw.items()}
    held = buffer.held_batches(r, integration_id)
    for batch_id in buffer.pending_batches(r, integration_id):
        pipe.hget(keys.batch_meta(integration_id, batch_id), "error_code")
    retrying = [code for code in pipe.execute() if code]  # one round trip for every batch in flight
    last_error = None
    if st.get("last_error_code"):
        last_error = {
            "code": st["last_error_code"],
            "message": st.get("last_error_message"),
            "hint": st.get("last_error_hint") or None,
            "permanent": st.get("last_error_permanent") == "1",
            "at": _iso_ms(st.get("last_error_ms")),
        }
    held_events = sum(int(b.get("events", 0)) for b in held)
    held_bytes = sum(int(b.get("bytes", 0)) for b in held)
    return {
        "integration_id": integration_id,
        # the store's buffered counters include held batches until they are delivered: held is not buffered
        "buffered_events": max(stats.get("buffered_events", 0) - held_events, 0),
        "buffered_bytes": max(stats.get("buffered_bytes", 0) - held_bytes, 0),
        "ingested_events": stats.get("ingested_events", 0),
        "rejected_events": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("rejected:")},
        "removed_events": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("removed:")},
        "partition_fallback_events": stats.get(keys.STAT_PARTITION_FALLBACK, 0),
        "partition_other_events": stats.get(keys.STAT_PARTITION_OTHER, 0),
        "delivered_objects": stats.get("delivered_objects", 0),
        "delivered_events": stats.get("delivered_events", 0),
        "delivered_bytes": stats.get("delivered_bytes", 0),
        "failures": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("failures:")},
        "retries": stats.get("retries", 0),
        "last_success_at": _iso_ms(st.get("last_success_ms")),
        "last_object_key": st.get("last_object_key"),
        "last_error": last_error,
        "batches_in_flight": pending,
        "retrying_batches": len(retrying),
        "dead_letter_batches": len(held),
        "dead_letter_events": held_events,
    }


def current_error(st: dict[str, Any]) -> dict[str, Any] | None:
    """The last error of an ``integration_status`` while it still matters: batches are held or retrying, or nothing
    was delivered since it happened. None once a later delivery (or a replay) put things right."""
    error = st["last_error"]
    if error is None:
        return None
    if st["dead_letter_batches"] or st["retrying_batches"]:
        return error
    success = st["last_success_at"]
    if success is None or (error["at"] is not None and error["at"] >= success):
        return error
    return None


LIVE_STATES = ("buffered", "uploading", "retrying", "delivered", "failed", "filtered")


def live_events(
    r: redis.Redis,
    integration_id: str,
    limit: int = 50,
    *,
    state: str | None = None,
    type_: str | None = None,
    event: str | None = None,
) -> list[dict[str, Any]]:
    """The most recent valid events, newest first, each with its delivery state:
    ``buffered`` (waiting for its flush), ``uploading`` / ``retrying`` (sealed into a batch on its way, with the last
    error code when retrying), ``delivered`` (with the object key), ``failed`` (held in the dead-letter store, with
    the error code and hint) or ``filtered`` (removed by the integration's blueprint, with the ``reason``:
    ``filtered_out`` or ``consent_denied``; it never reaches S3). Each has its ``line`` as stored when it was short
    enough to keep. ``state``, ``type_`` and ``event`` (a case-insensitive part of the name) filter the records kept
    (the last ``buffer.LIST_MAX``); ``limit`` applies after them."""
    registry.get(r, integration_id)
    raw = r.lrange(
        keys.live(integration_id), 0, buffer.LIST_MAX - 1 if (state or type_ or event) else max(limit, 1) - 1
    )
    views = _traced(r, integration_id, [orjson.loads(x) for x in raw])
    wanted = (event or "").lower()
    return [
        v
        for v in views
        if (state is None or v["state"] == state)
        and (type_ is None or v["type"] == type_)
        and (not wanted or wanted in (v.get("event") or "").lower())
    ][:limit]


def pinned_event(r: redis.Redis, integration_id: str) -> dict[str, Any] | None:
    """The test event sent last (kept apart for ``buffer.PIN_TTL_MS``), traced like a live event, however many events
    arrived since; None when there is none."""
    raw = r.get(keys.pinned(integration_id))
    if raw is None:
        return None
    return _traced(r, integration_id, [orjson.loads(raw)])[0]


def _traced(r: redis.Redis, integration_id: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Live records with their state, traced through the sealed batch to the object (two round trips)."""
    pipe = r.pipeline(transaction=False)
    for rec in records:
        if "hour" in rec:
            pipe.get(keys.sealed(integration_id, rec["hour"], rec["gen"]))
    sealed = iter(pipe.execute())
    batch_ids: list[str | None] = []
    for rec in records:
        b = next(sealed) if "hour" in rec else None  # a filtered event has no buffer to trace
        batch_ids.append(text(b) if b else None)
    for b in batch_ids:
        if b:
            pipe.get(keys.delivered(integration_id, b))
            pipe.hmget(keys.batch_meta(integration_id, b), "state", "error_code", "error_hint", "key")
    traced = iter(pipe.execute())
    out = []
    for rec, b in zip(records, batch_ids, strict=True):
        view: dict[str, Any] = {
            "event_id": rec["event_id"],
            "type": rec["type"],
            "event": rec.get("event"),
            "received_at": rec["received_at"],
            "batch_id": b,
            "state": "buffered",
            **slot_view(rec.get("hour")),
        }
        if rec.get("line") is not None:
            view["line"] = orjson.dumps(rec["line"]).decode()  # kept as JSON in the record; the line as stored
        if rec.get("state") == "filtered":
            view.update(state="filtered", reason=rec["reason"])
        elif b:
            delivered_key = next(traced)
            state, code, hint, key = (text(v) if v is not None else None for v in next(traced))
            if delivered_key:
                view.update(state="delivered", object_key=text(delivered_key))
            elif state == "dead":
                view.update(state="failed", code=code, hint=hint, object_key=key)
            elif state is None:
                view.update(state="delivered")  # its trace expired
            else:
                view.update(state="retrying" if code else "uploading", code=code)
        out.append(view)
    return out


def dead_letter(r: redis.Redis, integration_id: str) -> list[dict[str, Any]]:
    """The held batches of an integration as users see them: where they go, what failed, what to do."""
    registry.get(r, integration_id)
    return [
        {
            "batch_id": meta["batch_id"],
            **slot_view(meta.get("hour")),
            "object_key": meta.get("key"),
            "events": int(meta.get("events", 0)),
            "bytes": int(meta.get("bytes", 0)),
            "code": meta.get("error_code"),
            "message": meta.get("error_message"),
            "hint": meta.get("error_hint"),
            "attempts": int(meta.get("attempts", 0)),
            "first_failure_at": _iso_ms(meta.get("first_failure_ms")),
            "last_failure_at": _iso_ms(meta.get("last_failure_ms")),
        }
        for meta in buffer.held_batches(r, integration_id)
    ]


def slot_view(slot: str | None) -> dict[str, Any]:
    """``hour`` and ``partition`` (its folders, ``event=x/consent_marketing=true``, or None) of a buffer's slot, as
    Live Events, the dead letter and finding an event show them."""
    if slot is None:
        return {"hour": None, "partition": None}
    hour, values = partitions.split_slot(slot)
    return {"hour": hour, "partition": partitions.key_path(values).rstrip("/") or None}
