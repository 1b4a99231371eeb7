"""Installed integrations, stored in Redis.

Each integration is one JSON record at ``keys.integration(id)``; ``keys.INTEGRATIONS`` is the set of ids.
Record layout (times in ms since the epoch, UTC)::

    {"id": ..., "name": ..., "variant": "default", "delivery_mode": "server_side", "enabled": true,
     "source_id": null, "created_at_ms": ..., "updated_at_ms": ...,
     "config": {<every non-secret IntegrationConfig field>},
     "blueprint": {<Blueprint.public()>},
     "secrets": {"access_key_id": <Fernet token>, "secret_access_key": <Fernet token>, ...,
                 "hash_key": <Fernet token>}}

Secrets are encrypted with ``workers.crypto`` before they reach Redis and decrypted only when a record is loaded.
``hash_key`` is the integration's own HMAC key for the blueprint's ``hash_fields``: generated at install, kept for
the integration's life (so hashes stay joinable when the blueprint changes), never shown. A record written before
blueprints existed has neither: it loads with the default blueprint and gets its key on its next write.
The record and the index live in different hash slots, so they are never written in one transaction: a record is
written before its id enters the index and leaves the index before the record is deleted. The same holds for the
routing index of its source (``keys.source_integrations``), which lists the integrations that receive a source's
events.

An install or update body may carry ``"verify": true|false`` (whether the caller checks the bucket before storing);
``pop_verify`` takes it out before validation.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import redis
from pydantic import SecretStr

from workers import clock, crypto
from workers.errors import ConfigError, NotFound, Refused
from workers.events.blueprint import DEFAULT as DEFAULT_BLUEPRINT
from workers.events.blueprint import Blueprint, parse_blueprint
from workers.events.rules import Rules, compile_rules, new_hash_key
from workers.integrations import catalog
from workers.integrations.config import IntegrationConfig, parse_config
from workers.store import keys
from workers.store.db import rewrite, text

VARIANTS: tuple[str, ...] = catalog.variant_ids()
DELIVERY_MODES: tuple[str, ...] = catalog.DELIVERY_MODES
NAME_MAX_CHARS = 200
SOURCE_ID_MAX_CHARS = 200
INSTALL_FIELDS: tuple[str, ...] = (
    "name", "variant", "config", "blueprint", "delivery_mode", "enabled", "source_id",
)
HASH_KEY_SECRET = "hash_key"

# ``get`` runs for every ingested batch of events: keep loaded integrations this long in this process.
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


@dataclasses.dataclass(frozen=True, repr=False)
class Integration:
    id: str
    name: str
    variant: str
    delivery_mode: str
    config: IntegrationConfig
    enabled: bool
    created_at: datetime
    updated_at: datetime
    source_id: str | None
    blueprint: Blueprint = DEFAULT_BLUEPRINT
    hash_key: SecretStr | None = None  # hex; the HMAC key of the blueprint's hash_fields

    @functools.cached_property
    def rules(self) -> Rules | None:
        """The compiled blueprint for the ingest path; None when it forwards all events (nothing to apply)."""
        key = bytes.fromhex(self.hash_key.get_secret_value()) if self.hash_key is not None else None
        return compile_rules(self.blueprint, key)

    def public(self) -> dict[str, Any]:
        """JSON-able view with secrets redacted (the hash key is left out entirely) and ISO-8601 UTC times."""
        return {
            "id": self.id,
            "name": self.name,
            "variant": self.variant,
            "delivery_mode": self.delivery_mode,
            "enabled": self.enabled,
            "source_id": self.source_id,
            "created_at": clock.iso(self.created_at),
            "updated_at": clock.iso(self.updated_at),
            "config": self.config.public_dict(),
            "blueprint": self.blueprint.public(),
        }

    def __repr__(self) -> str:
        return (
            f"Integration(id={self.id!r}, name={self.name!r}, variant={self.variant!r}, "
            f"delivery_mode={self.delivery_mode!r}, enabled={self.enabled!r}, bucket={self.config.bucket!r}, "
            f"region={self.config.region!r}, prefix={self.config.prefix!r}, source_id={self.source_id!r})"
        )


# -- per-process cache of ``get`` -------------------------------------------------------------------------------

_cache: dict[str, tuple[float, Integration]] = {}
_cache_lock = threading.Lock()


def _cache_get(integration_id: str) -> Integration | None:
    entry = _cache.get(integration_id)
    if entry is None:
        return None
    expires_at, integration = entry
    if time.monotonic() >= expires_at:
        with _cache_lock:
            if _cache.get(integration_id) is entry:
                del _cache[integration_id]
        return None
    return integration


def _cache_put(integration: Integration) -> None:
    with _cache_lock:
        if len(_cache) >= _GET_CACHE_MAX_ENTRIES:
            _cache.clear()
        _cache[integration.id] = (time.monotonic() + GET_CACHE_TTL_S, integration)


def invalidate(integration_id: str) -> None:
    """Forget the cached copy of one integration in this process."""
    with _cache_lock:
        _cache.pop(integration_id, None)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


# -- record <-> Integration -------------------------------------------------------------------------------------


def _record(integration: Integration) -> bytes:
    config = integration.config
    public_part = config.model_dump(mode="json", exclude=set(IntegrationConfig.secret_fields))
    secrets: dict[str, str] = {}
    for name in IntegrationConfig.secret_fields:
        secret = getattr(config, name)
        if secret is not None:
            secrets[name] = crypto.encrypt(secret.get_secret_value())
    if integration.hash_key is not None:
        secrets[HASH_KEY_SECRET] = crypto.encrypt(integration.hash_key.get_secret_value())
    return orjson.dumps(
        {
            "id": integration.id,
            "name": integration.name,
            "variant": integration.variant,
            "delivery_mode": integration.delivery_mode,
            "enabled": integration.enabled,
            "source_id": integration.source_id,
            "created_at_ms": clock.to_ms(integration.created_at),
            "updated_at_ms": clock.to_ms(integration.updated_at),
            "config": public_part,
            "blueprint": integration.blueprint.public(),
            "secrets": secrets,
        }
    )


def _load(raw: bytes | str) -> Integration:
    data = orjson.loads(raw)
    config_data = dict(data["config"])
    secrets = dict(data.get("secrets", {}))
    hash_key_token = secrets.pop(HASH_KEY_SECRET, None)
    for name, token in secrets.items():
        config_data[name] = crypto.decrypt(token)
    return Integration(
        id=data["id"],
        name=data["name"],
        variant=data["variant"],
        delivery_mode=data["delivery_mode"],
        config=IntegrationConfig.model_validate(config_data),
        enabled=bool(data["enabled"]),
        created_at=clock.from_ms(data["created_at_ms"]),
        updated_at=clock.from_ms(data["updated_at_ms"]),
        source_id=data.get("source_id"),
        blueprint=Blueprint.model_validate(data["blueprint"]) if data.get("blueprint") else DEFAULT_BLUEPRINT,
        hash_key=SecretStr(crypto.decrypt(hash_key_token)) if hash_key_token else None,
    )


# -- validation of an install body ------------------------------------------------------------------------------


def _check_name(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, f"name must be a string of 1 to {NAME_MAX_CHARS} characters"
    name = value.strip()
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        return None, f"name must be 1 to {NAME_MAX_CHARS} characters long (got {len(name)})"
    if any(ch < " " or ch == "\x7f" for ch in name):
        return None, "name must not contain control characters"
    return name, None


def _check_source_id(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if not isinstance(value, str) or not 1 <= len(value) <= SOURCE_ID_MAX_CHARS:
        return None, f"source_id must be a string of 1 to {SOURCE_ID_MAX_CHARS} characters, or omitted"
    if any(ch < " " or ch == "\x7f" for ch in value):
        return None, "source_id must not contain control characters"
    return value, None


def check_name(value: Any) -> str:
    """The normalised integration name, or ``ConfigError`` on ``name``."""
    name, problem = _check_name(value)
    if problem or name is None:
        raise ConfigError([{"field": "name", "message": problem or "name is required"}])
    return name


def pop_verify(body: Any) -> tuple[Any, bool]:
    """``body`` without its ``verify`` flag, and the flag (default true); ``ConfigError`` if it is not a boolean."""
    if not isinstance(body, dict) or "verify" not in body:
        return body, True
    rest = {k: v for k, v in body.items() if k != "verify"}
    verify = body["verify"]
    if not isinstance(verify, bool):
        raise ConfigError([{"field": "verify", "message": "verify must be true or false"}])
    return rest, verify


def validate_install(body: Any) -> dict[str, Any]:
    """Check an install body; return its normalised fields or raise ``ConfigError`` listing every problem."""
    if not isinstance(body, dict):
        raise ConfigError([{"field": "body", "message": "the install body must be a JSON object"}])
    errors: list[dict[str, str]] = []
    for key in body:
        if key not in INSTALL_FIELDS:
            errors.append(
                {
                    "field": str(key),
                    "message": f"{key} is not a known install field; allowed fields are {', '.join(INSTALL_FIELDS)}",
                }
            )

    name: str | None = None
    if "name" not in body:
        errors.append({"field": "name", "message": "name is required"})
    else:
        name, problem = _check_name(body["name"])
        if problem:
            errors.append({"field": "name", "message": problem})

    variant = body.get("variant", "default")
    if variant not in VARIANTS:
        errors.append({"field": "variant", "message": f"variant must be one of {', '.join(VARIANTS)}"})

    config: IntegrationConfig | None = None
    if "config" not in body:
        errors.append({"field": "config", "message": "config is required"})
    else:
        try:
            config = parse_config(body["config"], field_prefix="config")
        except ConfigError as exc:
            errors.extend(exc.errors)

    blueprint = DEFAULT_BLUEPRINT
    try:
        blueprint = parse_blueprint(body.get("blueprint"), field_prefix="blueprint")
    except ConfigError as exc:
        errors.extend(exc.errors)

    delivery_mode = body.get("delivery_mode", "server_side")
    if delivery_mode not in DELIVERY_MODES:
        errors.append(
            {"field": "delivery_mode", "message": f"delivery_mode must be one of {', '.join(DELIVERY_MODES)}"}
        )

    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append({"field": "enabled", "message": "enabled must be true or false"})

    source_id, problem = _check_source_id(body.get("source_id"))
    if problem:
        errors.append({"field": "source_id", "message": problem})

    if errors:
        raise ConfigError(errors)
    return {
        "name": name,
        "variant": variant,
        "config": config,
        "blueprint": blueprint,
        "delivery_mode": delivery_mode,
        "enabled": enabled,
        "source_id": source_id,
    }


# -- operations -------------------------------------------------------------------------------------------------


def install(r: redis.Redis, body: dict[str, Any]) -> Integration:
    """Validate ``body`` and store a new integration; nothing is stored when the body is invalid."""
    fields = validate_install(body)
    created_at = _now_ms_precision()
    integration = Integration(
        id=str(uuid.uuid4()),
        created_at=created_at,
        updated_at=created_at,
        hash_key=SecretStr(new_hash_key()),
        **fields,
    )
    record = _record(integration)
    r.set(keys.integration(integration.id), record, nx=True)
    r.sadd(keys.INTEGRATIONS, integration.id)
    if integration.source_id is not None:
        r.sadd(keys.source_integrations(integration.source_id), integration.id)
    return integration


def get(r: redis.Redis, integration_id: str) -> Integration:
    cached = _cache_get(integration_id)
    if cached is not None:
        return cached
    raw = r.get(keys.integration(integration_id))
    if raw is None:
        raise UnknownIntegration(integration_id)
    integration = _load(raw)
    _cache_put(integration)
    return integration


def get_enabled(r: redis.Redis, integration_id: str) -> Integration:
    """``get``, refusing a disabled integration (``IntegrationDisabled``): what takes events in asks this."""
    integration = get(r, integration_id)
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
    found = [_load(raw) for raw in pipe.execute() if raw is not None]
    return sorted(found, key=lambda i: (i.created_at, i.id))


def _mutate(r: redis.Redis, integration_id: str, change: Callable[[Integration], Integration]) -> Integration:
    """Read, change and write one record atomically (optimistic WATCH on the record key)."""

    def rewritten(raw: bytes | None) -> tuple[Integration, bytes]:
        if raw is None:
            raise UnknownIntegration(integration_id)
        updated = change(_load(raw))
        if updated.hash_key is None:  # a record from before blueprints: give it its key now
            updated = dataclasses.replace(updated, hash_key=SecretStr(new_hash_key()))
        return updated, _record(updated)

    try:
        return rewrite(r, keys.integration(integration_id), rewritten, what=f"integration {integration_id}")
    finally:
        invalidate(integration_id)


def update_config(r: redis.Redis, integration_id: str, config: dict[str, Any]) -> Integration:
    """Replace the whole config of an integration, validated as at install (errors under ``config.``)."""
    new_config = parse_config(config, field_prefix="config")

    def change(current: Integration) -> Integration:
        return _replace(current, config=new_config)

    return _mutate(r, integration_id, change)


def update(
    r: redis.Redis, integration_id: str, *, config: IntegrationConfig | None = None, name: str | None = None,
    blueprint: Blueprint | None = None,
) -> Integration:
    """Replace the config, the name and/or the blueprint of an integration (already validated) in one atomic
    change. The hash key stays: hashes written before and after a change still join."""
    changes: dict[str, Any] = {}
    if config is not None:
        changes["config"] = config
    if name is not None:
        changes["name"] = check_name(name)
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
