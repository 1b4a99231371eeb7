"""Installed integrations, stored in Redis: install, read (through a short per-process cache), change, delete.

Each integration is one JSON record at ``keys.integration(id)`` (``workers.integrations.model``); ``keys.INTEGRATIONS``
is the set of ids. The record and the index live in different hash slots, so they are never written in one
transaction: a record is written before its id enters the index and leaves the index before the record is deleted.
The same holds for the routing index of its source (``keys.source_integrations``), which lists the integrations that
receive a source's events.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import redis
from pydantic import SecretStr

from workers import clock
from workers.errors import ConfigError, NotFound, Refused
from workers.events.blueprint import Blueprint
from workers.events.rules import new_hash_key
from workers.integrations import bodies
from workers.integrations.config import IntegrationConfig
from workers.integrations.model import Integration, from_record, to_record
from workers.store import keys
from workers.store.db import rewrite, text

# ``get`` runs for every ingested batch of events: a loaded integration is used this long in this process (the
# pipeline passes SIGNAL_INTEGRATION_CACHE_TTL_S, whose default this is).
GET_CACHE_TTL_S = 1.0
_GET_CACHE_MAX_ENTRIES = 4096


class UnknownIntegration(NotFound):
    def __init__(self, integration_id: str) -> None:
        self.integration_id = integration_id
        super().__init__(f"integration {integration_id} is not installed")


class IntegrationDisabled(Refused):
    def __init__(self, integration_id: str) -> None:
        super().__init__(f"integration {integration_id} is disabled: events are not accepted")
        self.integration_id = integration_id


_cache: dict[str, tuple[float, Integration]] = {}  # id -> (monotonic time it was loaded, integration)
_cache_lock = threading.Lock()


def _cache_get(integration_id: str, max_age_s: float) -> Integration | None:
    entry = _cache.get(integration_id)
    if entry is None:
        return None
    loaded_at, integration = entry
    if time.monotonic() - loaded_at >= max_age_s:
        with _cache_lock:
            if _cache.get(integration_id) is entry:
                del _cache[integration_id]
        return None
    return integration


def _cache_put(integration: Integration) -> None:
    with _cache_lock:
        if len(_cache) >= _GET_CACHE_MAX_ENTRIES:
            _cache.clear()
        _cache[integration.id] = (time.monotonic(), integration)


def invalidate(integration_id: str) -> None:
    """Forget the cached copy of one integration in this process."""
    with _cache_lock:
        _cache.pop(integration_id, None)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def install(r: redis.Redis, body: dict[str, Any]) -> Integration:
    """Validate ``body`` and store a new integration; nothing is stored when the body is invalid."""
    fields = bodies.validate_install(body)
    created_at = _now_ms_precision()
    integration = Integration(
        id=str(uuid.uuid4()),
        created_at=created_at,
        updated_at=created_at,
        hash_key=SecretStr(new_hash_key()),
        **fields,
    )
    record = to_record(integration)
    r.set(keys.integration(integration.id), record, nx=True)
    r.sadd(keys.INTEGRATIONS, integration.id)
    if integration.source_id is not None:
        r.sadd(keys.source_integrations(integration.source_id), integration.id)
    return integration


def get(r: redis.Redis, integration_id: str, *, max_age_s: float = GET_CACHE_TTL_S) -> Integration:
    """The integration, from this process's copy when it is younger than ``max_age_s`` (0: always read Redis)."""
    cached = _cache_get(integration_id, max_age_s)
    if cached is not None:
        return cached
    raw = r.get(keys.integration(integration_id))
    if raw is None:
        raise UnknownIntegration(integration_id)
    integration = from_record(raw)
    _cache_put(integration)
    return integration


def get_enabled(r: redis.Redis, integration_id: str, *, max_age_s: float = GET_CACHE_TTL_S) -> Integration:
    """``get``, refusing a disabled integration (``IntegrationDisabled``): what takes events in asks this."""
    integration = get(r, integration_id, max_age_s=max_age_s)
    if not integration.enabled:
        raise IntegrationDisabled(integration_id)
    return integration


def ids(r: redis.Redis) -> list[str]:
    return sorted(text(member) for member in r.smembers(keys.INTEGRATIONS))


def list_all(r: redis.Redis) -> list[Integration]:
    """Every installed integration, oldest first."""
    integration_ids = ids(r)
    pipe = r.pipeline(transaction=False)
    for integration_id in integration_ids:
        pipe.get(keys.integration(integration_id))
    found = [from_record(raw) for raw in pipe.execute() if raw is not None]
    return sorted(found, key=lambda i: (i.created_at, i.id))


def _mutate(r: redis.Redis, integration_id: str, change: Callable[[Integration], Integration]) -> Integration:
    """Read, change and write one record atomically (optimistic WATCH on the record key)."""

    def rewritten(raw: bytes | None) -> tuple[Integration, bytes]:
        if raw is None:
            raise UnknownIntegration(integration_id)
        updated = change(from_record(raw))
        if updated.hash_key is None:  # a record from before blueprints: give it its key now
            updated = dataclasses.replace(updated, hash_key=SecretStr(new_hash_key()))
        return updated, to_record(updated)

    try:
        return rewrite(r, keys.integration(integration_id), rewritten, what=f"integration {integration_id}")
    finally:
        invalidate(integration_id)


def update(
    r: redis.Redis,
    integration_id: str,
    *,
    config: IntegrationConfig | None = None,
    name: str | None = None,
    blueprint: Blueprint | None = None,
) -> Integration:
    """Replace the config, the name and/or the blueprint of an integration (already validated) in one atomic
    change. The hash key stays: hashes written before and after a change still join."""
    changes: dict[str, Any] = {}
    if config is not None:
        changes["config"] = config
    if name is not None:
        changes["name"] = bodies.check_name(name)
    if blueprint is not None:
        changes["blueprint"] = blueprint

    def change(current: Integration) -> Integration:
        return _replace(current, **changes)

    return _mutate(r, integration_id, change)


def set_enabled(r: redis.Redis, integration_id: str, enabled: bool) -> Integration:
    if not isinstance(enabled, bool):
        raise ConfigError([{"field": "enabled", "message": "enabled must be true or false"}])

    def change(current: Integration) -> Integration:
        return _replace(current, enabled=enabled)

    return _mutate(r, integration_id, change)


def reencrypt(r: redis.Redis) -> int:
    """Rewrite every record so its secrets are encrypted with the first ``SIGNAL_SECRET_KEY``; returns the count.

    Run after putting a new key first; the old key can be dropped once this has finished.
    """
    count = 0
    for integration_id in ids(r):
        try:
            _mutate(r, integration_id, lambda current: current)
        except UnknownIntegration:
            continue
        count += 1
    return count


def delete(r: redis.Redis, integration_id: str) -> None:
    """Remove the record and its index entries (buffers, batches and dead letters are left alone)."""
    raw = r.get(keys.integration(integration_id))
    source_id = orjson.loads(raw).get("source_id") if raw is not None else None
    try:
        if source_id is not None:
            r.srem(keys.source_integrations(source_id), integration_id)
        removed_from_index = r.srem(keys.INTEGRATIONS, integration_id)
        removed_record = r.delete(keys.integration(integration_id))
        r.zrem(keys.DUE, integration_id)  # the tick's due index (workers/store/due.py): nothing of it is due any more
    finally:
        invalidate(integration_id)
    if not removed_from_index and not removed_record:
        raise UnknownIntegration(integration_id)


def _replace(current: Integration, **changes: Any) -> Integration:
    return dataclasses.replace(current, updated_at=_now_ms_precision(), **changes)


def _now_ms_precision() -> datetime:
    """Now, at the millisecond precision the record keeps, so a returned Integration equals a loaded one."""
    return clock.from_ms(clock.now_ms())
