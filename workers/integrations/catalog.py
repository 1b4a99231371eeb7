"""The integration catalog: what can be installed, with the field schema that drives every face.

The admin API serves it (``GET /v1/admin/integration-catalog``), derives its OpenAPI request bodies from it, and the
console builds its install and settings forms from the same fields. Validation itself lives in
``workers.integrations.config``;
the schema here describes it (names, types, allowed values, descriptions), it never re-implements it.
"""

from __future__ import annotations

from typing import Any

from workers import clock
from workers.events import blueprint, partitions, rules
from workers.integrations import blueprint_fields, schema
from workers.sink import object_keys

INTEGRATION_TYPE = "amazon_s3"
DEFAULT_BLUEPRINT: dict[str, Any] = blueprint.DEFAULT.public()


def _key_pattern(variant: str) -> str:
    if variant == "iceberg":
        return f"<prefix>data/dt=YYYY-MM-DD/hr=HH/<batch-uuid>{object_keys.SUFFIXES[variant]}"
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
    {
        "id": "iceberg",
        "name": "Apache Iceberg table",
        "description": "An Apache Iceberg table at s3://<bucket>/<prefix>, registered in a SQL catalog (SQLite or "
        "PostgreSQL) or the AWS Glue Data Catalog: each flush is one atomic commit of Parquet data files, "
        "partitioned by hour, with snapshots to time-travel and compaction of small files. Read it with Athena, "
        "Spark, Trino or DuckDB, no DDL to keep in step.",
        "object_key_pattern": _key_pattern("iceberg"),
    },
)
DELIVERY_MODES: tuple[str, ...] = ("server_side",)

BLUEPRINT: dict[str, Any] = {
    "description": blueprint_fields.BLUEPRINT_DESCRIPTION,
    "default": DEFAULT_BLUEPRINT,
    "fields": list(blueprint_fields.BLUEPRINT_FIELDS),
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
    "fields": list(schema.FIELDS),
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


# The sample event the console builds an example key from (the install form and Settings).
SAMPLE_EVENT: dict[str, Any] = {
    "type": "track",
    "event": "order_completed",
    "source_id": "src_web",
    "context": {
        "consent": {"categoryPreferences": {"marketing": True, "analytics": True}},
        "page": {"path": "/checkout"},
        "locale": "en-US",
    },
    "properties": {"plan": "pro", "currency": "usd", "revenue": 42.5},
}
SAMPLE_DESCRIPTION = (
    "a track call order_completed from source src_web, marketing and analytics consent granted, "
    'context.locale en-US, context.page.path /checkout, properties {"plan": "pro", "currency": "usd", '
    '"revenue": 42.5}'
)


def example_key(
    *, prefix: str, partition_fields: str, date_layout: str, variant: str, hour: str | None = None
) -> tuple[str | None, str | None]:
    """The key ``SAMPLE_EVENT`` would get at ``hour`` (the current one by default) with these settings (as a form
    holds them), or the problem that stops it: ``(key, None)`` or ``(None, message)``."""
    try:
        fields = partitions.parse_fields(partition_fields or [])
        iceberg = variant == "iceberg"
        date = object_keys.hour_path(hour or clock.hour_of(clock.now()), "hive" if iceberg else date_layout or "path")
        suffix = object_keys.suffix(variant or "default")
    except (partitions.FieldsError, ValueError) as exc:
        return None, str(exc)
    folders = partitions.key_path(partitions.values_of(fields, SAMPLE_EVENT))
    data = "data/" if iceberg else ""
    return f"{prefix}{data}{folders}{date}/<batch-uuid>{suffix}", None
