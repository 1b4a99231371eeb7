"""Find one event: where it is now, by its ``event_id`` and (to search delivered objects) about when it was sent.

Looked for, cheapest first, each step bounded:

1. the recent events (Live Events' records) and the recent rejections: any state, with its reason or its trace to a
   batch and an object;
2. the buffers and sealed batches still in the store (open, in flight, held), of the hours around ``at`` or of every
   hour when ``at`` is not given: a line-by-line search of at most ``SCAN_MAX_EVENTS`` events;
3. with ``at``: the objects the ledger recorded for the partition hours around it, read back from S3 (at most
   ``OBJECTS_MAX`` objects and ``OBJECT_MAX_BYTES`` each), to name the object and the line.

The answer says what was searched when the event was not found, so "not found" is never a silent guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import redis

from workers import clock
from workers.errors import NotFound
from workers.events import partitions
from workers.integrations import registry, status
from workers.settings import Settings
from workers.sink import read
from workers.store import buffer, keys, ledger
from workers.store.db import text
from workers.store.elements import DamagedBatch, lines_text

SCAN_MAX_EVENTS = 1_000_000  # buffered or held lines searched per request
SCAN_CHUNK = 10_000
OBJECTS_MAX = 200  # objects read back per request
OBJECT_MAX_BYTES = 256 * 1024 * 1024
LEDGER_LOOKAHEAD_H = 48  # objects of an hour are written in that hour or later: ledger hours searched after it


class EventNotFound(NotFound):
    """Raised with what was searched."""

    def __init__(self, event_id: str, searched: dict[str, Any]) -> None:
        super().__init__(f"event {event_id!r} was not found")
        self.event_id = event_id
        self.searched = searched


@dataclass
class _Search:
    events_scanned: int = 0
    objects_read: int = 0
    objects_unreadable: list[dict[str, Any]] = field(default_factory=list)
    bounded: bool = False  # a bound stopped the search before it saw everything

    def view(self, hours: list[str] | None) -> dict[str, Any]:
        return {
            "recent_events": True,
            "hours": hours,
            "events_scanned": self.events_scanned,
            "objects_read": self.objects_read,
            "objects_unreadable": self.objects_unreadable[:5],
            "complete": not self.bounded and not self.objects_unreadable,
        }


def find_event(
    r: redis.Redis, integration_id: str, event_id: str, *, at: datetime | None, settings: Settings
) -> dict[str, Any]:
    """Where ``event_id`` is: ``buffered``, ``uploading`` / ``retrying``, ``delivered`` (object key and line number),
    ``held`` (batch and error), ``filtered`` or ``rejected`` (reason). Raises EventNotFound."""
    integ = registry.get(r, integration_id)
    search = _Search()
    hours = _hours_around(at) if at is not None else None
    recent = _in_recent(r, integration_id, event_id)
    if recent is not None and recent["state"] != "delivered":
        if recent.get("line") is None and recent["state"] != "filtered":
            # a live record holds no line: the event is in its buffer or batch, or just delivered
            stored = _in_store(r, integration_id, event_id, hours, search)
            if stored is not None:
                return recent | {"line": stored["line"]}
        return recent | {"line": recent.get("line")}
    stored = _in_store(r, integration_id, event_id, hours, search)
    if stored is not None:
        return stored
    if recent is not None and recent.get("object_key"):
        found = read.find_in_object(
            integ.config, recent["object_key"], event_id, settings=settings, max_bytes=OBJECT_MAX_BYTES
        )
        return recent | _found_view(found)
    if hours is not None:
        delivered = _in_objects(r, integ, event_id, hours, settings, search)
        if delivered is not None:
            return delivered
    if recent is not None:
        return recent  # delivered, its object no longer traced
    raise EventNotFound(event_id, search.view(hours))


def _hours_around(at: datetime) -> list[str]:
    """The partition hours an event sent at ``at`` may be in: its hour and the ones before and after (clocks)."""
    return [clock.hour_of(at + timedelta(hours=d)) for d in (-1, 0, 1)]


def _in_recent(r: redis.Redis, iid: str, event_id: str) -> dict[str, Any] | None:
    for view in status.live_events(r, iid, limit=buffer.LIST_MAX):
        if view["event_id"] == event_id:
            return _answer(event_id, view)
    for raw in r.lrange(keys.rejections(iid), 0, -1):
        rec = orjson.loads(raw)
        if rec.get("event_id") == event_id:
            return {
                "event_id": event_id,
                "state": "rejected",
                "reason": rec.get("reason"),
                "detail": rec.get("detail"),
                "at": clock.iso(clock.from_ms(rec["at_ms"])) if rec.get("at_ms") else None,
            }
    return None


def _answer(event_id: str, view: dict[str, Any]) -> dict[str, Any]:
    state = {"failed": "held"}.get(view["state"], view["state"])
    out = {"event_id": event_id, "state": state, "type": view.get("type"), "event": view.get("event")}
    for name in ("received_at", "batch_id", "hour", "partition", "object_key", "reason", "code", "hint", "line"):
        if view.get(name) is not None:
            out[name] = view[name]
    return out


def _in_store(
    r: redis.Redis, iid: str, event_id: str, hours: list[str] | None, search: _Search
) -> dict[str, Any] | None:
    """The event among the open buffers and sealed batches (in flight or held) of ``hours`` (None: all)."""
    open_slots = [text(h) for h in r.zrange(keys.open_index(iid), 0, -1)]
    for slot in open_slots:
        if hours is None or partitions.split_slot(slot)[0] in hours:
            line = _scan(r, keys.buffer(iid, slot), event_id, search)
            if line is not None:
                return {"event_id": event_id, "state": "buffered", **_slot_view(slot), "line": line}
    batches = [(b, "pending") for b in buffer.pending_batches(r, iid)]
    batches += [(meta["batch_id"], "held") for meta in buffer.held_batches(r, iid)]
    for batch_id, where in batches:
        meta = buffer.batch_meta(r, iid, batch_id)
        if not meta or (hours is not None and partitions.split_slot(meta.get("hour", ""))[0] not in hours):
            continue
        line = _scan(r, keys.batch(iid, batch_id), event_id, search)
        if line is None:
            continue
        out: dict[str, Any] = {"event_id": event_id, "batch_id": batch_id, **_slot_view(meta["hour"]), "line": line}
        if where == "held" or meta.get("state") == "dead":
            return out | {
                "state": "held",
                "code": meta.get("error_code"),
                "message": meta.get("error_message"),
                "hint": meta.get("error_hint"),
                "object_key": meta.get("key"),
            }
        return out | {"state": "retrying" if meta.get("error_code") else "uploading", "code": meta.get("error_code")}
    return None


def _lines_or_none(element: bytes) -> bytes | None:
    try:
        return lines_text(element)
    except DamagedBatch:  # its batch is held by the upload with this reason; the search goes on
        return None


def _scan(r: redis.Redis, key: str, event_id: str, search: _Search) -> str | None:
    """The line of ``event_id`` in a buffer or batch list (elements of one or more lines), read a few elements at a
    time within the request's bound."""
    wanted = read.needle(event_id)
    start, step = 0, 1
    while True:
        if search.events_scanned >= SCAN_MAX_EVENTS:
            search.bounded = True
            return None
        stored = r.lrange(key, start, start + step - 1)
        if not stored:
            return None
        elements = [text for text in map(_lines_or_none, stored) if text is not None]
        events = sum(e.count(b"\n") for e in elements) + len(elements)
        search.events_scanned += events
        for element in elements:
            at = element.find(wanted)
            while at >= 0:
                end = element.find(b"\n", at)
                line = element[element.rfind(b"\n", 0, at) + 1 : end if end >= 0 else len(element)]
                if orjson.loads(line).get("event_id") == event_id:
                    return line.decode()
                at = element.find(wanted, at + 1)
        start += len(stored)
        step = buffer.next_step(step, len(stored), events, SCAN_CHUNK)


def _in_objects(
    r: redis.Redis, integ: Any, event_id: str, hours: list[str], settings: Settings, search: _Search
) -> dict[str, Any] | None:
    """The event in the objects the ledger recorded for the partition ``hours`` (written in them or up to
    ``LEDGER_LOOKAHEAD_H`` later), read back from S3."""
    first = clock.to_ms(datetime.strptime(hours[0], "%Y%m%d%H").replace(tzinfo=clock.now().tzinfo))
    records = ledger.records_between(r, integ.id, first, first + LEDGER_LOOKAHEAD_H * 3_600_000)
    candidates = [rec for rec in records if rec.hour in hours]
    for rec in candidates:
        if search.objects_read >= OBJECTS_MAX:
            search.bounded = True
            return None
        search.objects_read += 1
        found = read.find_in_object(integ.config, rec.key, event_id, settings=settings, max_bytes=OBJECT_MAX_BYTES)
        if found.failure is not None:
            search.objects_unreadable.append(
                {"key": rec.key, "code": found.failure.code, "hint": _read_hint(found.failure.code)}
            )
            continue
        search.bounded = search.bounded or found.truncated
        if found.line_number is not None:
            return {
                "event_id": event_id,
                "state": "delivered",
                "object_key": rec.key,
                "batch_id": rec.batch_id,
                "written_at": clock.iso(clock.from_ms(rec.written_ms)),
            } | _found_view(found)
    return None


def _found_view(found: read.Found) -> dict[str, Any]:
    if found.failure is not None:
        return {"line_number": None, "read_error": {"code": found.failure.code, "hint": _read_hint(found.failure.code)}}
    out: dict[str, Any] = {"line_number": found.line_number}
    if found.line is not None:
        out["line"] = found.line.decode()
    return out


def _read_hint(code: str) -> str:
    if code in ("AccessDenied", "403"):
        return "Reading objects back needs s3:GetObject on the integration's prefix (see Query & access)."
    return "The object could not be read back; the ledger still names it."


def _slot_view(slot: str) -> dict[str, Any]:
    """``status.slot_view`` without a ``partition`` where there is none (an integration without partition fields)."""
    return {k: v for k, v in status.slot_view(slot).items() if v is not None}
