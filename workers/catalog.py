"""The integration catalog: what can be installed, with the field schema that drives every face.

The admin API serves it (``GET /v1/admin/integration-catalog``), derives its OpenAPI request bodies from it, and the
console builds its install and settings forms from the same fields. Validation itself lives in ``workers.config``;
the schema here describes it (names, types, allowed values, descriptions), it never re-implements it.
"""

from __future__ import annotations

from typing import Any

from workers.config import AWS_REGIONS, SSE_ALGORITHMS, STORAGE_CLASSES

INTEGRATION_TYPE = "amazon_s3"
DEFAULT_BLUEPRINT: dict[str, Any] = {"name": "default", "forward": "all_events"}

VARIANTS: tuple[dict[str, str], ...] = (
    {"id": "default", "name": "Default", "description": "Gzipped NDJSON objects, one per batch"},
)
DELIVERY_MODES: tuple[str, ...] = ("server_side",)

FIELDS: tuple[dict[str, Any], ...] = (
    {"name": "bucket", "label": "Bucket", "type": "string", "required": True, "aliases": ["bucket_name"],
     "description": "The S3 bucket name. Also accepts bucket_name."},
    {"name": "region", "label": "Region", "type": "select", "required": True,
     "allowed_values": sorted(AWS_REGIONS), "description": "The AWS region of the bucket (e.g. us-east-1)."},
    {"name": "access_key_id", "label": "Access key ID", "type": "secret", "required": True,
     "description": "AWS access key ID with s3:PutObject on the bucket."},
    {"name": "secret_access_key", "label": "Secret access key", "type": "secret", "required": True,
     "description": "Secret access key matching the access key ID."},
    {"name": "session_token", "label": "Session token", "type": "secret", "required": False,
     "description": "Optional STS session token for temporary credentials."},
    {"name": "prefix", "label": "Prefix", "type": "string", "required": False, "default": "",
     "description": "Optional prefix (folder path) prepended to all object keys. Include a trailing slash "
                    "(e.g. events/)."},
    {"name": "storage_class", "label": "Storage class", "type": "select", "required": False,
     "allowed_values": list(STORAGE_CLASSES), "default": "STANDARD",
     "description": "Optional S3 storage class (e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING). Defaults to "
                    "STANDARD."},
    {"name": "server_side_encryption", "label": "Server-side encryption", "type": "select", "required": False,
     "allowed_values": list(SSE_ALGORITHMS), "description": "Optional SSE algorithm: AES256 or aws:kms."},
    {"name": "kms_key_id", "label": "KMS key ID", "type": "string", "required": False,
     "required_when": {"server_side_encryption": "aws:kms"},
     "description": "KMS key ARN \u2014 required when server_side_encryption is aws:kms."},
    {"name": "batch_max_events", "label": "Batch max events", "type": "integer", "required": False,
     "default": 100_000, "advanced": True, "description": "Most events in one object."},
    {"name": "batch_max_bytes", "label": "Batch max bytes", "type": "integer", "required": False,
     "default": 64 * 1024 * 1024, "advanced": True, "description": "Most uncompressed bytes in one object."},
    {"name": "flush_interval_s", "label": "Flush interval (seconds)", "type": "number", "required": False,
     "advanced": True,
     "description": "How old a buffer gets before it is written (default: the fleet's flush interval)."},
    {"name": "buffer_max_bytes", "label": "Buffer max bytes", "type": "integer", "required": False, "advanced": True,
     "description": "Cap on buffered and held bytes of this integration (default: the fleet's)."},
    {"name": "endpoint_url", "label": "Endpoint URL", "type": "string", "required": False, "advanced": True,
     "description": "S3-compatible endpoint (MinIO, R2, ...); leave empty for Amazon S3."},
)

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
    "object_key_pattern": "<prefix>YYYY/MM/DD/HH/<batch-uuid>.json.gz",
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
    return [e for e in found
            if all(w in f"{e['name']} {e['category']} {e['description']}".lower() for w in words)]


def categories() -> list[str]:
    return sorted({e["category"] for e in ENTRIES})


def find(integration_type: str) -> dict[str, Any] | None:
    return next((e for e in ENTRIES if e["id"] == integration_type), None)


def variant_ids() -> tuple[str, ...]:
    return tuple(v["id"] for v in VARIANTS)


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
