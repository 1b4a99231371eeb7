"""The account of delivery: the overview of an integration or of the whole fleet (per UTC hour of a window up to
seven days: the funnel received -> filtered -> rejected -> delivered -> held, objects and bytes written, the
event-to-object latency, with the events buffered now; ``workers.store.overview``), and the ledger of the objects
written (``workers.store.ledger``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import redis

from workers import clock
from workers.integrations import registry, status
from workers.store import keys, ledger, overview
from workers.store.db import text
from workers.store.overview import Hour

MAX_HOURS = 7 * 24
_CURSOR = re.compile(r"[0-9]{8}\.[0-9]{1,7}")
_CHUNK = 2000  # block reads per pipeline round trip


def window(hours: int, *, now: datetime | None = None) -> list[str]:
    """The last ``hours`` UTC hours ``YYYYMMDDHH``, oldest first, ending with the current one."""
    end = (now or clock.now()).replace(minute=0, second=0, microsecond=0)
    return [clock.hour_of(end - timedelta(hours=n)) for n in range(hours - 1, -1, -1)]


def check_hours(hours: int) -> int:
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours must be a whole number from 1 to {MAX_HOURS}")
    return hours


def read_hours(r: redis.Redis, integration_ids: list[str], hours: list[str]) -> dict[str, Hour]:
    """The counts of ``hours`` summed over ``integration_ids``, by hour (every hour present, zero when nothing
    happened), reading each integration's blocks once."""
    blocks = overview.blocks_of(hours)
    wanted = set(hours)
    out = {h: Hour(h) for h in hours}
    pairs = [(iid, block) for iid in integration_ids for block in blocks]
    for start in range(0, len(pairs), _CHUNK):
        chunk = pairs[start : start + _CHUNK]
        pipe = r.pipeline(transaction=False)
        for iid, block in chunk:
            pipe.hgetall(keys.overview(iid, block))
        for (_, block), raw in zip(chunk, pipe.execute(), strict=True):
            if not raw:
                continue
            decoded = {text(k): int(v) for k, v in raw.items()}
            for hour, counts in overview.parse_block(block, decoded).items():
                if hour in wanted:
                    out[hour].add(counts)
    return out


def hour_view(h: Hour) -> dict[str, Any]:
    return {
        "hour": f"{h.hour[0:4]}-{h.hour[4:6]}-{h.hour[6:8]}T{h.hour[8:10]}:00:00Z" if h.hour else None,
        "received": h.received,
        "accepted": h.accepted,
        "filtered": dict(sorted(h.filtered.items())),
        "rejected": dict(sorted(h.rejected.items())),
        "delivered": h.delivered,
        "held": h.held,
        "objects": h.objects,
        "bytes": h.bytes,
        "latency_p50_s": _round(h.latency_quantile(0.5)),
        "latency_p95_s": _round(h.latency_quantile(0.95)),
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _answer(counts: dict[str, Hour], buffered: int, held_now: int) -> dict[str, Any]:
    rows = [counts[h] for h in sorted(counts)]
    totals = overview.total(rows)
    return {
        "hours": [hour_view(h) for h in rows],
        "totals": {k: v for k, v in hour_view(totals).items() if k != "hour"},
        "buffered": buffered,
        "held_now": held_now,
    }


def integration_overview(r: redis.Redis, integration_id: str, *, hours: int = 24) -> dict[str, Any]:
    """``GET /v1/admin/integrations/{id}/overview``: the integration's last ``hours`` hours."""
    check_hours(hours)
    registry.get(r, integration_id)
    st = status.integration_status(r, integration_id)
    counts = read_hours(r, [integration_id], window(hours))
    return {"integration_id": integration_id, **_answer(counts, st["buffered_events"], st["dead_letter_events"])}


def fleet_overview(r: redis.Redis, *, hours: int = 24, buffered: int, held: int) -> dict[str, Any]:
    """``GET /v1/admin/overview``: every integration's last ``hours`` hours, summed; ``buffered`` and ``held`` are
    the fleet's totals now (``workers.observe.fleet.totals``)."""
    check_hours(hours)
    ids = sorted(registry.ids(r))
    counts = read_hours(r, ids, window(hours))
    return {"integrations": len(ids), **_answer(counts, buffered, held)}


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 instant from a query string (``2026-12-07T05:00:00Z``; no zone: UTC); ValueError naming ``name``."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 time such as 2026-12-07T05:00:00Z, got {value[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=clock.now().tzinfo)


def objects(
    r: redis.Redis,
    integration_id: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """``GET /v1/admin/integrations/{id}/objects``: the ledger's records written from ``since`` (default: 24 hours
    before ``until``) to ``until`` (default: now), newest first, with their totals and a cursor to the next page."""
    integ = registry.get(r, integration_id)
    until_ms = clock.to_ms(until) if until is not None else clock.now_ms()
    since_ms = clock.to_ms(since) if since is not None else until_ms - 24 * 3_600_000
    if since_ms > until_ms:
        raise ValueError("since must not be after until")
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise ValueError("cursor must be the next_cursor of an earlier answer")
    page = ledger.read(r, integration_id, since_ms=since_ms, until_ms=until_ms, cursor=cursor, limit=limit)
    return {
        "integration_id": integration_id,
        "bucket": integ.config.bucket,
        "since": clock.iso(clock.from_ms(since_ms)),
        "until": clock.iso(clock.from_ms(until_ms)),
        "objects": [rec.view() for rec in page.records],
        "next_cursor": page.cursor,
    }
