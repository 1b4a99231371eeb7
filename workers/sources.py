"""Sources: where events come from. Each source has a write key; every integration belongs to one source.

A source record is JSON at ``keys.source(id)``; ``keys.SOURCES`` is the set of ids; ``keys.write_key(sha256)`` maps
the sha256 hex digest of a write key to its source id (the key itself is never a Redis key name). Write keys are
random, encrypted at rest with ``workers.crypto`` like integration secrets, shown when a source is created or listed,
and never logged (``Source`` has no write key in its repr).

Collection routes a source's events to each enabled integration in ``keys.source_integrations(id)``, an index that
``workers.registry`` keeps when integrations are installed or deleted. The source ``default`` is created on demand
for integrations installed without a ``source_id``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import orjson
import redis

from workers import clock, crypto, keys, registry
from workers.config import ConfigError
from workers.db import text

DEFAULT_SOURCE_ID = "default"
DEFAULT_SOURCE_NAME = "Default source"
NAME_MAX_CHARS = 200
WRITE_KEY_PREFIX = "wk_"
WRITE_KEY_RANDOM_BYTES = 24

# Collection looks these up on every request: keep answers this long in this process.
WRITE_KEY_CACHE_TTL_S = 30.0
ROUTES_CACHE_TTL_S = 1.0
_CACHE_MAX_ENTRIES = 4096


class UnknownSource(LookupError):
    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        super().__init__(f"source {source_id} does not exist")


@dataclasses.dataclass(frozen=True, repr=False)
class Source:
    id: str
    name: str
    write_key: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """JSON-able view, write key included (it authorises sending events to this source only)."""
        return {"id": self.id, "name": self.name, "write_key": self.write_key, "created_at": clock.iso(self.created_at)}

    def __repr__(self) -> str:
        return f"Source(id={self.id!r}, name={self.name!r})"


def new_write_key() -> str:
    return WRITE_KEY_PREFIX + secrets.token_urlsafe(WRITE_KEY_RANDOM_BYTES)


def write_key_digest(write_key: str) -> str:
    return hashlib.sha256(write_key.encode("utf-8")).hexdigest()


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= NAME_MAX_CHARS:
        raise ConfigError([{"field": "name", "message": f"name must be a string of 1 to {NAME_MAX_CHARS} characters"}])
    if any(ch < " " or ch == "\x7f" for ch in value):
        raise ConfigError([{"field": "name", "message": "name must not contain control characters"}])
    return value.strip()


def _record(source: Source) -> bytes:
    return orjson.dumps({
        "id": source.id,
        "name": source.name,
        "write_key": crypto.encrypt(source.write_key),
        "created_at_ms": clock.to_ms(source.created_at),
    })


def _load(raw: bytes | str) -> Source:
    data = orjson.loads(raw)
    return Source(id=data["id"], name=data["name"], write_key=crypto.decrypt(data["write_key"]),
                  created_at=clock.from_ms(data["created_at_ms"]))


# -- operations -------------------------------------------------------------------------------------------------


def create(r: redis.Redis, name: Any, *, source_id: str | None = None) -> Source:
    """A new source with a fresh write key. With ``source_id`` given and taken, the existing source is returned."""
    source = Source(id=source_id or uuid.uuid4().hex, name=check_name(name), write_key=new_write_key(),
                    created_at=clock.from_ms(clock.now_ms()))
    if not r.set(keys.source(source.id), _record(source), nx=True):
        return get(r, source.id)
    r.set(keys.write_key(write_key_digest(source.write_key)), source.id)
    r.sadd(keys.SOURCES, source.id)
    return source


def get(r: redis.Redis, source_id: str) -> Source:
    raw = r.get(keys.source(source_id))
    if raw is None:
        raise UnknownSource(source_id)
    return _load(raw)


def ensure_default(r: redis.Redis) -> Source:
    try:
        return get(r, DEFAULT_SOURCE_ID)
    except UnknownSource:
        return create(r, DEFAULT_SOURCE_NAME, source_id=DEFAULT_SOURCE_ID)


def list_all(r: redis.Redis) -> list[Source]:
    """Every source, oldest first."""
    source_ids = sorted(text(m) for m in r.smembers(keys.SOURCES))
    pipe = r.pipeline(transaction=False)
    for source_id in source_ids:
        pipe.get(keys.source(source_id))
    found = [_load(raw) for raw in pipe.execute() if raw is not None]
    return sorted(found, key=lambda s: (s.created_at, s.id))


def source_for_write_key(r: redis.Redis, write_key: str) -> str | None:
    """The id of the source a write key belongs to, or None."""
    if not write_key:
        return None
    raw = r.get(keys.write_key(write_key_digest(write_key)))
    return text(raw) if raw is not None else None


def integration_ids(r: redis.Redis, source_id: str) -> list[str]:
    return sorted(text(m) for m in r.smembers(keys.source_integrations(source_id)))


def enabled_integrations(r: redis.Redis, source_id: str) -> list[str]:
    """Ids of the enabled integrations of a source: where its events go."""
    out = []
    for integration_id in integration_ids(r, source_id):
        try:
            if registry.get(r, integration_id).enabled:
                out.append(integration_id)
        except registry.UnknownIntegration:
            continue
    return out


# -- per-process caches for collection ---------------------------------------------------------------------------


class TtlCache:
    """A small thread-safe cache of lookups, each kept ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None or time.monotonic() >= entry[0]:
            return None
        return entry[1]

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            if len(self._entries) >= _CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl_s, value)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
