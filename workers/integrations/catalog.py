"""The integration catalog: what can be installed, with the field schema that drives every face.

The admin API serves it (``GET /v1/admin/integration-catalog``), derives its OpenAPI request bodies from it, and the
console builds its install and settings forms from the same fields. Validation itself lives in
``workers.integrations.config``;
the schema here describes it (names, types, allowed values, descriptions), it never re-implements it.
"""

from __future__ import annotations

from typing import Any

from workers.events import blueprint, rules
from workers.integrations.checks import (
    AWS_REGIONS,
    PARTITION_TIME_BOUND_S_DEFAULT,
    PARTITION_TIMES,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
)
from workers.sink import object_keys

INTEGRATION_TYPE = "amazon_s3"
DEFAULT_BLUEPRINT: dict[str, Any] = blueprint.DEFAULT.public()


def _key_pattern(variant: str) -> str:
    return f"<prefix>YYYY/MM/DD/HH/<batch-uuid>{object_keys.SUFFIXES[variant]}"


# The output formats, chosen at install with "variant" (fixed for the integration's life).
VARIANTS: tuple[dict[str, str], ...] = (
    {
        "id": "default",
        "name": "NDJSON (gzip)",
        "description": "Gzipped newline-delimited JSON, one canonical envelope per line: readable by any tool, "
        "queried in Athena with the OpenX JSON SerDe.",
        "object_key_pattern": _key_pattern("default"),
    },
    {
        "id": "parquet",
        "name": "Parquet (zstd)",
        "description": "Apache Parquet with a fixed column schema (timestamps typed, context / properties / traits as "
        "JSON text), zstd-compressed: smaller objects and faster, cheaper Athena scans.",
        "object_key_pattern": _key_pattern("parquet"),
    },
)
DELIVERY_MODES: tuple[str, ...] = ("server_side",)

FIELDS: tuple[dict[str, Any], ...] = (
    {
        "name": "bucket",
        "label": "Bucket",
        "type": "string",
        "required": True,
        "aliases": ["bucket_name"],
        "description": "The S3 bucket name. Also accepts bucket_name.",
    },
    {
        "name": "region",
        "label": "Region",
        "type": "select",
        "required": True,
        "allowed_values": sorted(AWS_REGIONS),
        "description": "The AWS region of the bucket (e.g. us-east-1).",
    },
    {
        "name": "access_key_id",
        "label": "Access key ID",
        "type": "secret",
        "required": True,
        "description": "AWS access key ID with s3:PutObject on the bucket.",
    },
    {
        "name": "secret_access_key",
        "label": "Secret access key",
        "type": "secret",
        "required": True,
        "description": "Secret access key matching the access key ID.",
    },
    {
        "name": "session_token",
        "label": "Session token",
        "type": "secret",
        "required": False,
        "description": "Optional STS session token for temporary credentials.",
    },
    {
        "name": "prefix",
        "label": "Prefix",
        "type": "string",
        "required": False,
        "default": "",
        "description": "Optional prefix (folder path) prepended to all object keys. Include a trailing slash "
        "(e.g. events/).",
    },
    {
        "name": "storage_class",
        "label": "Storage class",
        "type": "select",
        "required": False,
        "allowed_values": list(STORAGE_CLASSES),
        "default": "STANDARD",
        "description": "Optional S3 storage class (e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING). Defaults to "
        "STANDARD.",
    },
    {
        "name": "server_side_encryption",
        "label": "Server-side encryption",
        "type": "select",
        "required": False,
        "allowed_values": list(SSE_ALGORITHMS),
        "description": "Optional SSE algorithm: AES256 or aws:kms.",
    },
    {
        "name": "kms_key_id",
        "label": "KMS key ID",
        "type": "string",
        "required": False,
        "required_when": {"server_side_encryption": "aws:kms"},
        "description": "KMS key ARN \u2014 required when server_side_encryption is aws:kms.",
    },
    {
        "name": "batch_max_events",
        "label": "Batch max events",
        "type": "integer",
        "required": False,
        "default": 100_000,
        "advanced": True,
        "description": "Most events in one object.",
    },
    {
        "name": "batch_max_bytes",
        "label": "Batch max bytes",
        "type": "integer",
        "required": False,
        "default": 64 * 1024 * 1024,
        "advanced": True,
        "description": "Most uncompressed bytes in one object.",
    },
    {
        "name": "flush_interval_s",
        "label": "Flush interval (seconds)",
        "type": "number",
        "required": False,
        "advanced": True,
        "description": "How old a buffer gets before it is written (default: the fleet's flush interval).",
    },
    {
        "name": "buffer_max_bytes",
        "label": "Buffer max bytes",
        "type": "integer",
        "required": False,
        "advanced": True,
        "description": "Cap on buffered and held bytes of this integration (default: the fleet's).",
    },
    {
        "name": "endpoint_url",
        "label": "Endpoint URL",
        "type": "string",
        "required": False,
        "advanced": True,
        "description": "S3-compatible endpoint (MinIO, R2, ...); leave empty for Amazon S3.",
    },
    {
        "name": "partition_time",
        "label": "Partition time",
        "type": "select",
        "required": False,
        "allowed_values": list(PARTITION_TIMES),
        "default": "received_at",
        "advanced": True,
        "description": "Which hour (YYYY/MM/DD/HH of the key) an event is written under: received_at, when it "
        "arrived, or timestamp, when it happened (late events land in their own hour).",
    },
    {
        "name": "partition_time_bound_s",
        "label": "Partition time bound (seconds)",
        "type": "integer",
        "required": False,
        "advanced": True,
        "default": PARTITION_TIME_BOUND_S_DEFAULT,
        "description": "With partition_time timestamp: an event whose timestamp is further than this from its "
        "arrival goes to the hour it arrived instead (and is counted).",
    },
)

# The blueprint's fields as a form shows them (flat names; ``blueprint.from_form`` / ``to_form`` convert).
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
BLUEPRINT: dict[str, Any] = {
    "description": (
        "Which events this integration delivers and which fields it removes or hashes, applied before events are "
        "buffered. The default blueprint forwards all events. Events a rule removes are counted, never delivered."
    ),
    "default": DEFAULT_BLUEPRINT,
    "fields": list(BLUEPRINT_FIELDS),
    "removal_reasons": list(rules.REASONS),
    "protected_fields": sorted(blueprint.PROTECTED_FIELDS),
}

ENTRY: dict[str, Any] = {
    "id": INTEGRATION_TYPE,
    "name": "Amazon S3",
    "category": "Cloud Storage",
    "description": (
        "Writes batches of first-party events as objects into an S3 bucket, ready for query with Athena, Glue, "
        "Spark, Presto, or any downstream lakehouse tooling."
    ),
    "variants": list(VARIANTS),
    "delivery_modes": list(DELIVERY_MODES),
    "default_blueprint": DEFAULT_BLUEPRINT,
    "blueprint": BLUEPRINT,
    "object_key_pattern": _key_pattern("default"),
    "fields": list(FIELDS),
}
ENTRIES: tuple[dict[str, Any], ...] = (ENTRY,)


def entries(category: str | None = None) -> list[dict[str, Any]]:
    """The catalog, optionally only one category (matched case-insensitively)."""
    if category is None:
        return list(ENTRIES)
    wanted = category.strip().lower()
    return [e for e in ENTRIES if e["category"].lower() == wanted]


def search(query: str = "", category: str | None = None) -> list[dict[str, Any]]:
    """The entries of ``category`` (all when None or empty) whose name, category or description contains every word
    of ``query`` (case-insensitive)."""
    words = query.lower().split()
    found = entries(category or None)
    return [e for e in found if all(w in f"{e['name']} {e['category']} {e['description']}".lower() for w in words)]


def categories() -> list[str]:
    return sorted({e["category"] for e in ENTRIES})


def find(integration_type: str) -> dict[str, Any] | None:
    return next((e for e in ENTRIES if e["id"] == integration_type), None)


def variant_ids() -> tuple[str, ...]:
    return tuple(v["id"] for v in VARIANTS)


def variant(variant_id: str) -> dict[str, str] | None:
    return next((v for v in VARIANTS if v["id"] == variant_id), None)


_JSON_TYPES = {"string": "string", "select": "string", "secret": "string", "integer": "integer", "number": "number"}


def config_schema(*, partial: bool) -> dict[str, Any]:
    """The JSON Schema of an integration's config (OpenAPI); ``partial`` for a PATCH (nothing required)."""
    properties: dict[str, Any] = {}
    for f in FIELDS:
        prop: dict[str, Any] = {"type": _JSON_TYPES[f["type"]], "description": f["description"]}
        if "allowed_values" in f:
            prop["enum"] = f["allowed_values"]
        if f["type"] == "secret":
            prop["writeOnly"] = True
        properties[f["name"]] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if not partial:
        schema["required"] = [f["name"] for f in FIELDS if f["required"]]
    return schema


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
        "description": BLUEPRINT["description"] + " Replaced as a whole; {} is the default.",
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
