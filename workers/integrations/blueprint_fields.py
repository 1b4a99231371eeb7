"""A blueprint's fields as the console's form and the API's documents show them (flat names; the validation is
``workers.events.blueprint``, whose ``from_form`` / ``to_form`` convert)."""

from __future__ import annotations

from typing import Any

from workers.events import blueprint

BLUEPRINT_DESCRIPTION = (
    "Which events this integration delivers and which fields it removes or hashes, applied before events are "
    "buffered. The default blueprint forwards all events. Events a rule removes are counted, never delivered."
)
BLUEPRINT_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "name": "consent.require",
        "type": "list",
        "description": "Consent categories that must all be granted (context.consent.<category> or "
        'context.consent.categoryPreferences.<category> is true or "granted"), e.g. analytics.',
    },
    {
        "name": "consent.missing",
        "type": "select",
        "allowed_values": ["deny", "allow"],
        "default": "deny",
        "description": "An event without consent information for a category: deny (not delivered) or allow.",
    },
    {
        "name": "events.include",
        "type": "list",
        "description": "Deliver only events whose type or event name is listed (exact, case-sensitive).",
    },
    {
        "name": "events.exclude",
        "type": "list",
        "description": "Never deliver events whose type or event name is listed (use include or exclude).",
    },
    {"name": "drop_fields", "type": "list", "description": "Dotted paths removed from every event, e.g. context.ip."},
    {
        "name": "hash_fields",
        "type": "list",
        "description": "Dotted paths replaced by an HMAC-SHA-256 under this integration's own secret key, e.g. "
        "user_id, traits.email: joins still work, values cannot be guessed from a dictionary.",
    },
)


def blueprint_schema() -> dict[str, Any]:
    """The JSON Schema of a blueprint (OpenAPI bodies); ``workers.events.blueprint`` does the validation."""

    def texts(description: str, *, min_items: int = 1) -> dict[str, Any]:
        return {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": min_items,
            "maxItems": blueprint.MAX_ENTRIES,
            "description": description,
        }

    described = {f["name"]: f["description"] for f in BLUEPRINT_FIELDS}
    return {
        "type": "object",
        "description": BLUEPRINT_DESCRIPTION + " Replaced as a whole; {} is the default.",
        "additionalProperties": False,
        "properties": {
            "consent": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "required": ["require"],
                "properties": {
                    "require": texts(described["consent.require"]),
                    "missing": {
                        "type": "string",
                        "enum": ["deny", "allow"],
                        "default": "deny",
                        "description": described["consent.missing"],
                    },
                },
            },
            "events": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": 1,
                "description": "Either include or exclude.",
                "properties": {
                    "include": texts(described["events.include"]),
                    "exclude": texts(described["events.exclude"]),
                },
            },
            "drop_fields": texts(described["drop_fields"], min_items=0),
            "hash_fields": texts(described["hash_fields"], min_items=0),
        },
    }
