"""Sources: where events come from. Each source has a write key; every integration belongs to one source.

A source record is JSON at ``keys.source(id)``; ``keys.SOURCES`` is the set of ids; ``keys.write_key(sha256)`` maps
the sha256 hex digest of a write key to its source id (the key itself is never a Redis key name). Write keys are
random, encrypted at rest with ``workers.crypto`` like integration secrets, shown when a source is created or listed,
and never logged (``Source`` has no write key in its repr).

Collection routes a source's events to each enabled integration in ``keys.source_integrations(id)``, an index that
``workers.integrations.registry`` keeps when integrations are installed or deleted. The source ``default`` is created
on demand for integrations installed without a ``source_id``.

Settings of a source (``create`` / ``update``, validated with one message per wrong field): ``allowed_origins``
(``workers.integrations.origins``; empty: any website) and ``rate_limit_eps`` (events per second,
``workers.store.ratelimit``; null: the fleet's ``SIGNAL_SOURCE_RATE_LIMIT_EPS``, 0: no limit). Requests collection
refuses for a source (over its rate limit, from an origin it does not allow) are counted per reason in
``keys.source_stats(id)`` (``Refusals``).
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

from workers import clock, crypto
from workers.errors import ConfigError, NotFound
from workers.integrations import origins, registry
from workers.settings import Settings
from workers.store import keys
from workers.store.db import rewrite, text

DEFAULT_SOURCE_ID = "default"
DEFAULT_SOURCE_NAME = "Default source"
NAME_MAX_CHARS = 200
RATE_LIMIT_MAX_EPS = 1_000_000
FIELDS = ("name", "allowed_origins", "rate_limit_eps")
WRITE_KEY_PREFIX = "wk_"
WRITE_KEY_RANDOM_BYTES = 24

# Collection looks these up on every request: keep answers this long in this process.
WRITE_KEY_CACHE_TTL_S = 30.0
ROUTES_CACHE_TTL_S = 1.0
_CACHE_MAX_ENTRIES = 4096


class UnknownSource(NotFound):
    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        super().__init__(f"source {source_id} does not exist")


@dataclasses.dataclass(frozen=True, repr=False)
class Source:
    id: str
    name: str
    write_key: str
    created_at: datetime
    allowed_origins: tuple[str, ...] = ()
    rate_limit_eps: int | None = None  # None: the fleet's default

    def public(self) -> dict[str, Any]:
        """JSON-able view, write key included (it authorises sending events to this source only)."""
        return {
            "id": self.id,
            "name": self.name,
            "write_key": self.write_key,
            "created_at": clock.iso(self.created_at),
            "allowed_origins": list(self.allowed_origins),
            "rate_limit_eps": self.rate_limit_eps,
        }

    def effective_rate_limit_eps(self, settings: Settings) -> int:
        return settings.source_rate_limit_eps if self.rate_limit_eps is None else self.rate_limit_eps

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


def check_rate_limit(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= RATE_LIMIT_MAX_EPS:
        raise ConfigError(
            [
                {
                    "field": "rate_limit_eps",
                    "message": (
                        "rate_limit_eps must be a whole number of events per second from 0 (no limit) to "
                        f"{RATE_LIMIT_MAX_EPS}, or null for the fleet's default (SIGNAL_SOURCE_RATE_LIMIT_EPS)"
                    ),
                }
            ]
        )
    return value


def validate(body: Any, *, creating: bool) -> dict[str, Any]:
    """The fields of a create or update body, checked: every wrong or unknown field is reported at once."""
    if not isinstance(body, dict):
        raise ConfigError(
            [
                {
                    "field": "body",
                    "message": 'the body must be an object such as {"name": "Website", '
                    '"allowed_origins": [], "rate_limit_eps": null}',
                }
            ]
        )
    errors = [
        {"field": str(k), "message": f"{k} is not a source field; the fields are {', '.join(FIELDS)}"}
        for k in body
        if k not in FIELDS
    ]
    out: dict[str, Any] = {}
    if creating and "name" not in body:
        errors.append({"field": "name", "message": "name is required"})
    for field, check in (("name", check_name), ("rate_limit_eps", check_rate_limit)):
        if field in body:
            try:
                out[field] = check(body[field])
            except ConfigError as exc:
                errors.extend(exc.errors)
    if "allowed_origins" in body:
        entries, wrong = origins.check([] if body["allowed_origins"] is None else body["allowed_origins"])
        out["allowed_origins"] = tuple(entries)
        errors.extend(wrong)
    if errors:
        raise ConfigError(errors)
    return out


def _record(source: Source) -> bytes:
    return orjson.dumps(
        {
            "id": source.id,
            "name": source.name,
            "write_key": crypto.encrypt(source.write_key),
            "created_at_ms": clock.to_ms(source.created_at),
            "allowed_origins": list(source.allowed_origins),
            "rate_limit_eps": source.rate_limit_eps,
        }
    )


def _load(raw: bytes | str) -> Source:
    data = orjson.loads(raw)
    return Source(
        id=data["id"],
        name=data["name"],
        write_key=crypto.decrypt(data["write_key"]),
        created_at=clock.from_ms(data["created_at_ms"]),
        allowed_origins=tuple(data.get("allowed_origins") or ()),
        rate_limit_eps=data.get("rate_limit_eps"),
    )


# -- operations -------------------------------------------------------------------------------------------------


def create(
    r: redis.Redis, name: Any, *, source_id: str | None = None, allowed_origins: Any = None, rate_limit_eps: Any = None
) -> Source:
    """A new source with a fresh write key. With ``source_id`` given and taken, the existing source is returned."""
    body: dict[str, Any] = {"name": name, "allowed_origins": allowed_origins, "rate_limit_eps": rate_limit_eps}
    fields = validate(body, creating=True)
    source = Source(
        id=source_id or uuid.uuid4().hex,
        name=fields["name"],
        write_key=new_write_key(),
        created_at=clock.from_ms(clock.now_ms()),
        allowed_origins=fields["allowed_origins"],
        rate_limit_eps=fields["rate_limit_eps"],
    )
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


def create_from(r: redis.Redis, body: Any) -> Source:
    """Create a source from ``{"name", "allowed_origins"?, "rate_limit_eps"?}`` (the admin API's and CLI's body)."""
    fields = validate(body, creating=True)
    return create(
        r,
        fields["name"],
        allowed_origins=list(fields.get("allowed_origins", ())),
        rate_limit_eps=fields.get("rate_limit_eps"),
    )


def update(r: redis.Redis, source_id: str, body: Any) -> Source:
    """Change some of ``name``, ``allowed_origins`` (null or [] allows any origin) and ``rate_limit_eps`` (null: the
    fleet's default). Every wrong field is reported at once and nothing changes then. API processes see the change
    within ``ROUTES_CACHE_TTL_S``."""
    fields = validate(body, creating=False)

    def rewritten(raw: bytes | None) -> tuple[Source, bytes]:
        if raw is None:
            raise UnknownSource(source_id)
        updated = dataclasses.replace(_load(raw), **fields)
        return updated, _record(updated)

    return rewrite(r, keys.source(source_id), rewritten, what=f"source {source_id}")


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


# -- what collection needs to know about a source, and what it refused ------------------------------------------


@dataclasses.dataclass(frozen=True)
class Route:
    """A source as one collection request sees it: who may send, how fast, and where its events go."""

    source_id: str
    origins: origins.OriginPolicy
    rate_limit_eps: int
    integration_ids: tuple[str, ...]


def route(r: redis.Redis, source_id: str, settings: Settings) -> Route:
    source = get(r, source_id)
    return Route(
        source.id,
        origins.OriginPolicy(source.allowed_origins),
        source.effective_rate_limit_eps(settings),
        tuple(enabled_integrations(r, source_id)),
    )


RATE_LIMITED = "rate_limited"
ORIGIN_NOT_ALLOWED = "origin_not_allowed"
REFUSAL_REASONS = (RATE_LIMITED, ORIGIN_NOT_ALLOWED)


def refusals(r: redis.Redis, source_ids: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Requests and events refused per source and reason: ``{source_id: {reason: {"requests", "events"}}}``."""
    pipe = r.pipeline(transaction=False)
    for source_id in source_ids:
        pipe.hgetall(keys.source_stats(source_id))
    out = {}
    for source_id, raw in zip(source_ids, pipe.execute(), strict=True):
        counts = {text(k): int(v) for k, v in raw.items()}
        out[source_id] = {
            reason: {"requests": counts.get(f"{reason}:requests", 0), "events": counts.get(f"{reason}:events", 0)}
            for reason in REFUSAL_REASONS
        }
    return out


def view(r: redis.Redis, source: Source, settings: Settings) -> dict[str, Any]:
    """What every face shows of one source: its settings, where its events go, and what collection refused."""
    return {
        **source.public(),
        "effective_rate_limit_eps": source.effective_rate_limit_eps(settings),
        "integrations": integration_ids(r, source.id),
        "refused": refusals(r, [source.id])[source.id],
    }


class Refusals:
    """Refusals counted in one API process and added to Redis in one round trip by ``flush`` (the API flushes about
    once a second while there are any), so a flood of refused requests costs no Redis call per request."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], list[int]] = {}
        self._flush_due = False
        self._lock = threading.Lock()

    def add(self, source_id: str, reason: str, events: int) -> bool:
        """Count one refused request; True when no flush is due yet (the caller schedules one)."""
        with self._lock:
            counts = self._pending.setdefault((source_id, reason), [0, 0])
            counts[0] += 1
            counts[1] += events
            schedule, self._flush_due = not self._flush_due, True
            return schedule

    def flush(self, r: redis.Redis) -> None:
        with self._lock:
            pending, self._pending, self._flush_due = self._pending, {}, False
        if not pending:
            return
        pipe = r.pipeline(transaction=False)
        for (source_id, reason), (requests, events) in pending.items():
            pipe.hincrby(keys.source_stats(source_id), f"{reason}:requests", requests)
            if events:
                pipe.hincrby(keys.source_stats(source_id), f"{reason}:events", events)
        try:
            pipe.execute()
        except redis.RedisError:
            with self._lock:  # counted at the next flush instead
                for key, (requests, events) in pending.items():
                    counts = self._pending.setdefault(key, [0, 0])
                    counts[0] += requests
                    counts[1] += events
            raise


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
