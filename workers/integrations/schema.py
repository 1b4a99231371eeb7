"""The fields of an integration's config, described once: every face reads them (the console builds its
forms from them, the admin API its OpenAPI bodies and the catalog it serves). Validation itself lives in
``workers.integrations.config`` and ``workers.events.blueprint``; this describes it (names, types, allowed values,
descriptions, which field asks for which), it never re-implements it.

A field's ``required_when`` names the value of another field that makes it required (``{"credentials":
"access_key"}``); ``shown_when`` the values of another field it belongs to (a form hides it otherwise).
"""

from __future__ import annotations

from typing import Any

from workers.events import partitions
from workers.integrations.checks import (
    ADDRESSING_STYLES,
    AWS_REGIONS,
    CHECKSUM_MODES,
    CREDENTIAL_MODES,
    DATE_LAYOUTS,
    ICEBERG_CATALOGS,
    OBJECT_TAGS_MAX,
    PARTITION_MAX_VALUES_DEFAULT,
    PARTITION_TIME_BOUND_S_DEFAULT,
    PARTITION_TIMES,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
)

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
        "name": "credentials",
        "label": "Credentials",
        "type": "select",
        "required": False,
        "allowed_values": list(CREDENTIAL_MODES),
        "value_labels": {
            "access_key": "Access key pair",
            "assume_role": "Role in your account (AssumeRole with an external ID)",
            "fleet": "The fleet's own identity",
        },
        "default": "access_key",
        "description": "How the fleet gets AWS credentials: access_key, the integration's key pair (the default); "
        "assume_role, a role in your account the fleet assumes with an external ID (no long-lived key leaves your "
        "account); fleet, the fleet's own AWS identity (only where the fleet allows it).",
    },
    {
        "name": "role_arn",
        "label": "Role ARN",
        "type": "string",
        "required": False,
        "required_when": {"credentials": "assume_role"},
        "shown_when": {"credentials": ["assume_role"]},
        "description": "The IAM role in your account the fleet assumes, e.g. "
        "arn:aws:iam::123456789012:role/signal-writer. Its trust policy names the fleet and this external ID.",
    },
    {
        "name": "external_id",
        "label": "External ID",
        "type": "string",
        "required": False,
        "required_when": {"credentials": "assume_role"},
        "shown_when": {"credentials": ["assume_role"]},
        "proposed": True,
        "description": "The ExternalId the role's trust policy requires (sts:ExternalId), 2-1224 characters of "
        "letters, digits and + = , . @ : / - _. Keep the one proposed here, or use your own.",
    },
    {
        "name": "role_session_name",
        "label": "Role session name",
        "type": "string",
        "required": False,
        "shown_when": {"credentials": ["assume_role"]},
        "advanced": True,
        "description": "How the fleet's sessions appear in your CloudTrail (default: signal-s3).",
    },
    {
        "name": "access_key_id",
        "label": "Access key ID",
        "type": "secret",
        "required": False,
        "required_when": {"credentials": "access_key"},
        "shown_when": {"credentials": ["access_key", "assume_role"]},
        "description": "AWS access key ID with s3:PutObject on the bucket (with assume_role, optional: the identity "
        "that assumes the role; without it the fleet's own identity does).",
    },
    {
        "name": "secret_access_key",
        "label": "Secret access key",
        "type": "secret",
        "required": False,
        "required_when": {"credentials": "access_key"},
        "shown_when": {"credentials": ["access_key", "assume_role"]},
        "description": "Secret access key matching the access key ID.",
    },
    {
        "name": "session_token",
        "label": "Session token",
        "type": "secret",
        "required": False,
        "shown_when": {"credentials": ["access_key", "assume_role"]},
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
        "name": "bucket_key_enabled",
        "label": "S3 Bucket Key",
        "type": "boolean",
        "required": False,
        "default": False,
        "shown_when": {"server_side_encryption": ["aws:kms"]},
        "description": "With aws:kms, use an S3 Bucket Key: far fewer KMS requests (and their cost) for the same "
        "encryption.",
    },
    {
        "name": "object_tags",
        "label": "Object tags",
        "type": "tags",
        "required": False,
        "advanced": True,
        "description": f"Tags on every object, for lifecycle and cost rules: at most {OBJECT_TAGS_MAX}, written "
        "key=value, separated by commas (e.g. team=analytics, env=prod). Needs s3:PutObjectTagging.",
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
        "name": "addressing_style",
        "label": "Addressing style",
        "type": "select",
        "required": False,
        "allowed_values": list(ADDRESSING_STYLES),
        "default": "auto",
        "advanced": True,
        "description": "How the bucket is named in requests: virtual (bucket.host), path (host/bucket, for stores "
        "without virtual-host buckets) or auto (botocore decides).",
    },
    {
        "name": "checksums",
        "label": "Checksums",
        "type": "select",
        "required": False,
        "allowed_values": list(CHECKSUM_MODES),
        "advanced": True,
        "description": "auto: a checksum on every upload (boto3's default on AWS); when_required: none unless the "
        "request needs one, for S3-compatible stores that refuse them (the default with an endpoint URL). A bucket "
        "with Object Lock always gets one.",
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
    {
        "name": "partition_fields",
        "label": "Partition fields",
        "type": "list",
        "required": False,
        "advanced": True,
        "description": "Up to 3 fields whose values become folders between the prefix and the date, in order, e.g. "
        "event, consent.marketing gives <prefix>event=order_completed/consent_marketing=true/2026/12/07/05/<uuid>. "
        "Each of event, type, source_id, consent.<category>, context.<path> or properties.<path>. Every value "
        "makes its own objects: choose fields with few values.",
    },
    {
        "name": "partition_max_values",
        "label": "Partition max values",
        "type": "integer",
        "required": False,
        "advanced": True,
        "default": PARTITION_MAX_VALUES_DEFAULT,
        "description": "The distinct values one partition field may take per hour; events with a value beyond "
        "them go under __other__ (and are counted).",
    },
    {
        "name": "date_layout",
        "label": "Date layout",
        "type": "select",
        "required": False,
        "allowed_values": list(DATE_LAYOUTS),
        "default": "path",
        "advanced": True,
        "description": "How the hour is written in each key: path, <prefix>2026/12/07/05/<uuid> (Athena projects "
        "year, month, day, hour), or hive, <prefix>dt=2026-12-07/hr=05/<uuid> (partition columns dt and hr that "
        "Glue crawlers, MSCK REPAIR TABLE and Spark also read). A change applies to batches claimed after it; "
        "create the Athena table again for the new layout.",
    },
    {
        "name": "iceberg_catalog",
        "label": "Iceberg catalog",
        "type": "select",
        "required": False,
        "allowed_values": list(ICEBERG_CATALOGS),
        "value_labels": {"sql": "SQL catalog (SQLite or PostgreSQL)", "glue": "AWS Glue Data Catalog"},
        "default": "sql",
        "shown_when": {"variant": ["iceberg"]},
        "description": "Where the Iceberg table is registered: sql, a SQLite file (one machine; the fleet's own "
        "by default) or a PostgreSQL database (a fleet on several machines), named by iceberg_catalog_uri; or glue, "
        "the AWS Glue Data Catalog of the bucket's account and region (Athena sees the table at once).",
    },
    {
        "name": "iceberg_catalog_uri",
        "label": "Iceberg catalog URI",
        "type": "secret",
        "required": False,
        "shown_when": {"variant": ["iceberg"]},
        "description": "sql: a SQLAlchemy URL, postgresql://user:password@host:5432/database, or sqlite:///<path> "
        "in the fleet's catalog directory; blank for the fleet's own SQLite catalog. glue: the Glue endpoint, "
        "blank for the region's. Stored encrypted (a URL carries its password).",
    },
    {
        "name": "iceberg_namespace",
        "label": "Iceberg namespace",
        "type": "string",
        "required": False,
        "default": "signal",
        "shown_when": {"variant": ["iceberg"]},
        "description": "The table's namespace (the Glue database): lower-case letters, digits and _.",
    },
    {
        "name": "iceberg_table",
        "label": "Iceberg table",
        "type": "string",
        "required": False,
        "default": "events",
        "shown_when": {"variant": ["iceberg"]},
        "description": "The table's name: lower-case letters, digits and _. Created at install when missing; an "
        "existing table must be at s3://<bucket>/<prefix> with the columns and partitioning of these settings.",
    },
    {
        "name": "iceberg_snapshot_retention_days",
        "label": "Snapshot retention (days)",
        "type": "integer",
        "required": False,
        "default": 7,
        "advanced": True,
        "shown_when": {"variant": ["iceberg"]},
        "description": "Maintenance expires snapshots older than this: time travel reaches this far back.",
    },
    {
        "name": "iceberg_target_file_mb",
        "label": "Target file size (MB)",
        "type": "integer",
        "required": False,
        "default": 128,
        "advanced": True,
        "shown_when": {"variant": ["iceberg"]},
        "description": "Maintenance compacts each closed hour whose data files are smaller than this into fewer "
        "files of about this size.",
    },
)

_JSON_TYPES = {
    "string": "string",
    "select": "string",
    "secret": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "tags": "object",
    "list": "array",
}


def config_schema(*, partial: bool) -> dict[str, Any]:
    """The JSON Schema of an integration's config (OpenAPI); ``partial`` for a PATCH (nothing required)."""
    properties: dict[str, Any] = {}
    for f in FIELDS:
        prop: dict[str, Any] = {"type": _JSON_TYPES[f["type"]], "description": f["description"]}
        if "allowed_values" in f:
            prop["enum"] = f["allowed_values"]
        if f["type"] == "secret":
            prop["writeOnly"] = True
        if f["type"] == "tags":
            prop.update(additionalProperties={"type": "string"}, maxProperties=OBJECT_TAGS_MAX)
        if f["type"] in ("string", "secret") and not f["required"]:
            prop["type"] = ["string", "null"]
        if f["type"] == "list":  # a list, or one text of items separated by commas (a form's)
            prop.update(type=["array", "string", "null"], items={"type": "string"}, maxItems=partitions.MAX_FIELDS)
        properties[f["name"]] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if not partial:
        schema["required"] = [f["name"] for f in FIELDS if f["required"]]
    return schema
