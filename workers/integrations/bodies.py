"""The bodies of install and update requests, checked field by field: every wrong field is reported at once
(``ConfigError``), in the same words whether the body came from the API, the console's forms or the CLI.

An install or update body may carry ``"verify": true|false`` (whether the caller checks the bucket before storing);
``pop_verify`` takes it out before validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.errors import ConfigError
from workers.events.blueprint import DEFAULT as DEFAULT_BLUEPRINT
from workers.events.blueprint import Blueprint, parse_blueprint
from workers.integrations import catalog
from workers.integrations.config import IntegrationConfig, parse_config

VARIANTS: tuple[str, ...] = catalog.variant_ids()
DELIVERY_MODES: tuple[str, ...] = catalog.DELIVERY_MODES
NAME_MAX_CHARS = 200
SOURCE_ID_MAX_CHARS = 200
INSTALL_FIELDS: tuple[str, ...] = (
    "name",
    "variant",
    "config",
    "blueprint",
    "delivery_mode",
    "enabled",
    "source_id",
)
UPDATE_FIELDS: tuple[str, ...] = ("config", "name", "blueprint")


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


def merged_config(current: IntegrationConfig, patch: Any) -> dict[str, Any]:
    """The current config (secrets in clear, for validation only) with ``patch`` applied; ``None`` clears a field."""
    if not isinstance(patch, dict):
        raise ConfigError([{"field": "config", "message": "config must be an object of settings"}])
    merged: dict[str, Any] = {}
    for name, value in current.model_dump(mode="python").items():
        merged[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    if "bucket_name" in patch:
        merged.pop("bucket", None)
    merged.update(patch)
    return merged


def _not_updatable(field: str) -> str:
    if field == "variant":
        return (
            "variant cannot be changed after install: objects in one format per prefix keep the Athena table "
            "valid; install a new integration with another prefix for the other format"
        )
    return f"{field} cannot be changed here; the fields are {', '.join(UPDATE_FIELDS)} and verify"


@dataclass(frozen=True)
class Update:
    """What an update body changes (None: unchanged), every field already validated."""

    config: IntegrationConfig | None
    name: str | None
    blueprint: Blueprint | None


def validate_update(current: IntegrationConfig, body: Any, *, merge: bool = True) -> Update:
    """Check ``{"config": {...partial...}, "name": ..., "blueprint": {...whole...}}`` (``verify`` already taken out):
    every wrong field is reported at once; the config, merged into ``current`` (or replacing it when ``merge`` is
    False), is validated like an install's; a blueprint replaces the current one."""
    if not isinstance(body, dict):
        raise ConfigError(
            [{"field": "body", "message": 'the body must be {"config": {...}, "name": "...", "blueprint": {...}}'}]
        )
    errors: list[dict[str, str]] = [
        {"field": str(k), "message": _not_updatable(str(k))} for k in body if k not in UPDATE_FIELDS
    ]
    name = None
    if "name" in body:
        try:
            name = check_name(body["name"])
        except ConfigError as exc:
            errors.extend(exc.errors)
    config = None
    if "config" in body:
        try:
            given = merged_config(current, body["config"]) if merge else body["config"]
            config = parse_config(given, field_prefix="config")
        except ConfigError as exc:
            errors.extend(exc.errors)
    new_blueprint = None
    if "blueprint" in body:
        try:
            new_blueprint = parse_blueprint(body["blueprint"], field_prefix="blueprint")
        except ConfigError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigError(errors)
    return Update(config, name, new_blueprint)
