"""One installed integration as the fleet holds it (``Integration``) and as Redis stores it (its record).

Record layout (JSON; times in ms since the epoch, UTC)::

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
"""

from __future__ import annotations

import dataclasses
import functools
from datetime import datetime
from typing import Any

import orjson
from pydantic import SecretStr

from workers import clock, crypto
from workers.events.blueprint import DEFAULT as DEFAULT_BLUEPRINT
from workers.events.blueprint import Blueprint
from workers.events.rules import Rules, compile_rules
from workers.integrations.config import IntegrationConfig

HASH_KEY_SECRET = "hash_key"


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


def to_record(integration: Integration) -> bytes:
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


def from_record(raw: bytes | str) -> Integration:
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
