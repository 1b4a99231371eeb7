"""What a user sees of one integration's delivery: buffered, delivered, retrying, held, last success and error."""

from __future__ import annotations

from typing import Any

import redis

from workers import buffer, clock, keys, registry


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _iso_ms(v: str | None) -> str | None:
    return clock.iso(clock.from_ms(int(v))) if v else None


def integration_status(r: redis.Redis, integration_id: str) -> dict[str, Any]:
    registry.get(r, integration_id)
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.stats(integration_id))
    pipe.hgetall(keys.status(integration_id))
    pipe.zcard(keys.pending(integration_id))
    stats_raw, status_raw, pending = pipe.execute()
    stats = {_text(k): int(v) for k, v in stats_raw.items()}
    st = {_text(k): _text(v) for k, v in status_raw.items()}
    held = buffer.held_batches(r, integration_id)
    retrying = [b for b in buffer.pending_batches(r, integration_id)
                if buffer.batch_meta(r, integration_id, b).get("error_code")]
    last_error = None
    if st.get("last_error_code"):
        last_error = {
            "code": st["last_error_code"],
            "message": st.get("last_error_message"),
            "hint": st.get("last_error_hint") or None,
            "permanent": st.get("last_error_permanent") == "1",
            "at": _iso_ms(st.get("last_error_ms")),
        }
    return {
        "integration_id": integration_id,
        "buffered_events": stats.get("buffered_events", 0),
        "buffered_bytes": stats.get("buffered_bytes", 0),
        "ingested_events": stats.get("ingested_events", 0),
        "rejected_events": {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("rejected:")},
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
        "dead_letter_events": sum(int(b.get("events", 0)) for b in held),
    }
