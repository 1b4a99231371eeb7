"""The rules of each configuration field: the values it allows, its bounds, and the check that says what is wrong.

Each ``*_problem`` function returns the message a user is shown for a wrong value (naming what is allowed), or None
for a valid one. ``workers.integrations.config`` applies them to the model; the catalog describes the same values.
No message ever repeats a secret.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic_core import PydanticCustomError

from workers.events import partitions
from workers.integrations.regions import AWS_REGIONS
from workers.sink import object_keys

STORAGE_CLASSES: tuple[str, ...] = (
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
)
SSE_ALGORITHMS: tuple[str, ...] = ("AES256", "aws:kms")
# How the fleet gets credentials to write with: the integration's key pair (the default), a role it assumes with STS,
# or the fleet's own identity (the standard AWS chain: environment, shared config, IRSA, ECS and EC2 roles).
ACCESS_KEY, ASSUME_ROLE, FLEET = "access_key", "assume_role", "fleet"
CREDENTIAL_MODES: tuple[str, ...] = (ACCESS_KEY, ASSUME_ROLE, FLEET)
ADDRESSING_STYLES: tuple[str, ...] = ("auto", "path", "virtual")
# auto: botocore's default on AWS (a CRC32 checksum on every upload, and Content-MD5); when_required: no checksum
# header unless the request needs one (S3-compatible stores that refuse them; the default with an endpoint_url)
CHECKSUM_MODES: tuple[str, ...] = ("auto", "when_required")
OBJECT_TAGS_MAX = 10
TAG_KEY_MAX_CHARS = 128
TAG_VALUE_MAX_CHARS = 256

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

BATCH_MAX_EVENTS_MIN = 1
BATCH_MAX_EVENTS_MAX = 1_000_000
BATCH_MAX_BYTES_MIN = 1 * KIB
BATCH_MAX_BYTES_MAX = 5 * GIB
FLUSH_INTERVAL_S_MIN = 1.0
FLUSH_INTERVAL_S_MAX = 3600.0
PREFIX_MAX_CHARS = 900
PARTITION_TIMES: tuple[str, ...] = ("received_at", "timestamp")
DATE_LAYOUTS = object_keys.DATE_LAYOUTS
PARTITION_MAX_VALUES_DEFAULT = 100
PARTITION_MAX_VALUES_MAX = 10_000
PARTITION_TIME_BOUND_S_DEFAULT = 7 * 24 * 3600
PARTITION_TIME_BOUND_S_MIN = 60
PARTITION_TIME_BOUND_S_MAX = 366 * 24 * 3600
KMS_KEY_ID_MAX_CHARS = 2048

BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# IAM: arn:<partition>:iam::<12-digit account>:role/<optional path/><name>
ROLE_ARN = re.compile(r"arn:aws(?:-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}")
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
ROLE_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
# S3 object tags: letters, digits, spaces and + - = . _ : / @ (AWS' rule for tag keys and values)
TAG_TEXT = re.compile(r"[\w\s+\-=.:/@]*")

# What each field accepts, used when the input has the wrong type or shape.
ICEBERG_CATALOGS: tuple[str, ...] = ("sql", "glue")
ICEBERG_RETENTION_DAYS_MAX = 365
ICEBERG_TARGET_FILE_MB_MIN = 8
ICEBERG_TARGET_FILE_MB_MAX = 1024
ICEBERG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,254}")
ICEBERG_URI = re.compile(r"(sqlite:///\S+|postgresql(\+[a-z0-9]+)?://\S+|https?://\S+)")


def iceberg_uri_problem(catalog: str | None, uri: str | None) -> str | None:
    """A catalog URI of the wrong kind for its catalog (sql: a SQLAlchemy URL; glue: an http(s) endpoint)."""
    if not uri:
        return None
    if ICEBERG_URI.fullmatch(uri) is None:
        return ALLOWED["iceberg_catalog_uri"]
    glue = (catalog or "sql") == "glue"
    if glue != uri.startswith(("http://", "https://")):
        return ALLOWED["iceberg_catalog_uri"]
    return None


ALLOWED: dict[str, str] = {
    "bucket": "bucket must be a string naming an S3 bucket (3-63 lowercase letters, digits, dots or hyphens)",
    "region": "region must be an AWS region code such as us-east-1",
    "access_key_id": "access_key_id must be a non-empty string (the AWS access key ID)",
    "secret_access_key": "secret_access_key must be a non-empty string (the AWS secret access key)",
    "session_token": "session_token must be a string (an STS session token) or omitted",
    "prefix": "prefix must be a string such as events/ (ending with /) or empty",
    "storage_class": "storage_class must be one of " + ", ".join(STORAGE_CLASSES),
    "server_side_encryption": "server_side_encryption must be AES256, aws:kms or omitted",
    "kms_key_id": "kms_key_id must be a KMS key ARN (a string)",
    "batch_max_events": (
        f"batch_max_events must be a whole number from {BATCH_MAX_EVENTS_MIN} to {BATCH_MAX_EVENTS_MAX:_}"
    ),
    "batch_max_bytes": (
        f"batch_max_bytes must be a whole number of bytes from {BATCH_MAX_BYTES_MIN} (1 KiB) "
        f"to {BATCH_MAX_BYTES_MAX} (5 GiB)"
    ),
    "flush_interval_s": (
        f"flush_interval_s must be a number of seconds from {FLUSH_INTERVAL_S_MIN:g} to {FLUSH_INTERVAL_S_MAX:g}, "
        "or omitted to use the fleet default"
    ),
    "buffer_max_bytes": (
        "buffer_max_bytes must be a positive whole number of bytes, or omitted to use the fleet default"
    ),
    "endpoint_url": "endpoint_url must be an http:// or https:// URL, or omitted for Amazon S3",
    "partition_time": (
        "partition_time must be received_at (the hour the event arrived) or timestamp (the hour the event says "
        "it happened)"
    ),
    "partition_max_values": (
        f"partition_max_values must be a whole number from 1 to {PARTITION_MAX_VALUES_MAX}: the distinct values a "
        "partition field may take per hour (the others go to __other__)"
    ),
    "iceberg_catalog": (
        "iceberg_catalog must be sql (a SQLite file or PostgreSQL database, iceberg_catalog_uri) or glue (the AWS "
        "Glue Data Catalog of the bucket's account and region)"
    ),
    "iceberg_catalog_uri": (
        "iceberg_catalog_uri must be a SQLAlchemy URL, sqlite:///<path> or postgresql://user:password@host/database "
        "(iceberg_catalog sql), or the https:// endpoint of Glue (iceberg_catalog glue), or omitted for the default"
    ),
    "iceberg_namespace": (
        "iceberg_namespace must be 1 to 255 lower-case letters, digits and _, starting with a letter or _"
    ),
    "iceberg_table": "iceberg_table must be 1 to 255 lower-case letters, digits and _, starting with a letter or _",
    "iceberg_snapshot_retention_days": (
        f"iceberg_snapshot_retention_days must be a whole number of days from 1 to {ICEBERG_RETENTION_DAYS_MAX}"
    ),
    "iceberg_target_file_mb": (
        f"iceberg_target_file_mb must be a whole number of MB from {ICEBERG_TARGET_FILE_MB_MIN} to "
        f"{ICEBERG_TARGET_FILE_MB_MAX}"
    ),
    "date_layout": ("date_layout must be path (YYYY/MM/DD/HH/ in the key) or hive (dt=YYYY-MM-DD/hr=HH/ in the key)"),
    "credentials": (
        "credentials must be access_key (the integration's key pair), assume_role (a role the fleet assumes with STS)"
        " or fleet (the fleet's own AWS identity)"
    ),
    "role_arn": "role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/signal-writer",
    "external_id": (
        "external_id must be 2 to 1224 characters of letters, digits and + = , . @ : / - _ (AWS' rule for an "
        "ExternalId)"
    ),
    "role_session_name": "role_session_name must be 2 to 64 characters of letters, digits and + = , . @ - _",
    "addressing_style": "addressing_style must be auto, path or virtual",
    "checksums": "checksums must be auto or when_required, or omitted for the default",
    "object_tags": (
        f"object_tags must be an object of at most {OBJECT_TAGS_MAX} tags (key: value), or text such as "
        "team=analytics, env=prod"
    ),
    "bucket_key_enabled": "bucket_key_enabled must be true or false",
    "partition_time_bound_s": (
        f"partition_time_bound_s must be a whole number of seconds from {PARTITION_TIME_BOUND_S_MIN} to "
        f"{PARTITION_TIME_BOUND_S_MAX} (366 days)"
    ),
}


def redact(value: str | None) -> str | None:
    """``****`` followed by the last 4 characters; values of 4 characters or fewer become ``****``."""
    if value is None:
        return None
    if len(value) <= 4:
        return "****"
    return "****" + value[-4:]


def field_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("signal_config", message)


def kms_problem(server_side_encryption: str | None, kms_key_id: str | None) -> str | None:
    """The message for a wrong combination of ``server_side_encryption`` and ``kms_key_id``, or None."""
    if server_side_encryption == "aws:kms" and not kms_key_id:
        return "kms_key_id is required when server_side_encryption is aws:kms; give the KMS key ARN"
    if server_side_encryption != "aws:kms" and kms_key_id:
        return "kms_key_id is only allowed when server_side_encryption is aws:kms; remove it or set aws:kms"
    return None


STORE_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
AWS_REGION_MESSAGE = (
    "region must be an AWS region code such as us-east-1, eu-west-1 or ap-southeast-2 (with an endpoint_url, the "
    "region the store signs with, such as auto)"
)


def region_problem(region: str) -> str | None:
    """The region's shape: an AWS region code, or (checked against the list by ``store_region_problem``) the region an
    S3-compatible store signs with (``auto`` for R2, ``us-west-004`` for B2)."""
    if region not in AWS_REGIONS and not STORE_REGION.fullmatch(region):
        return AWS_REGION_MESSAGE
    return None


def store_region_problem(region: str | None, endpoint_url: str | None) -> str | None:
    """On Amazon S3 (no ``endpoint_url``) the region is one of AWS's; a compatible store names its own."""
    if region is not None and endpoint_url is None and region not in AWS_REGIONS:
        return AWS_REGION_MESSAGE
    return None


def kms_key_id_problem(kms_key_id: str) -> str | None:
    if len(kms_key_id) > KMS_KEY_ID_MAX_CHARS or CONTROL_CHARS.search(kms_key_id):
        return (
            f"kms_key_id must be a KMS key ARN of at most {KMS_KEY_ID_MAX_CHARS} characters without control characters"
        )
    return None


def bucket_problem(name: str) -> str | None:
    """Why ``name`` is not a valid S3 bucket name (general purpose bucket rules), or None."""
    if not 3 <= len(name) <= 63:
        return f"bucket must be 3 to 63 characters long (got {len(name)})"
    if not BUCKET_CHARS.match(name):
        return "bucket may contain only lowercase letters, digits, dots (.) and hyphens (-)"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "bucket must start and end with a lowercase letter or digit"
    if ".." in name:
        return "bucket must not contain two adjacent dots (..)"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "bucket must not be formatted as an IP address"
    for reserved in ("xn--", "sthree-"):
        if name.startswith(reserved):
            return f"bucket must not start with the reserved prefix {reserved}"
    for reserved in ("-s3alias", "--ol-s3"):
        if name.endswith(reserved):
            return f"bucket must not end with the reserved suffix {reserved}"
    return None


def prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` is not a valid object key prefix, or None. The empty prefix is valid."""
    if prefix == "":
        return None
    if len(prefix) > PREFIX_MAX_CHARS:
        return f"prefix must be at most {PREFIX_MAX_CHARS} characters (got {len(prefix)})"
    if CONTROL_CHARS.search(prefix):
        return "prefix must not contain control characters such as newlines or tabs"
    if prefix.startswith("/"):
        return "prefix must not start with /; write it like events/"
    if not prefix.endswith("/"):
        return "prefix must end with / (for example events/)"
    if any(segment == ".." for segment in prefix.split("/")):
        return "prefix must not contain a .. path segment"
    return None


def endpoint_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable S3 endpoint URL, or None."""
    if CONTROL_CHARS.search(url) or any(ch.isspace() for ch in url):
        return "endpoint_url must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "endpoint_url must be a valid http:// or https:// URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "endpoint_url must be an http:// or https:// URL with a host, e.g. https://s3.example.com"
    if parts.username or parts.password:
        return "endpoint_url must not contain credentials; use access_key_id and secret_access_key"
    return None


def object_tags_problem(tags: dict[str, str]) -> str | None:
    """Why ``tags`` are not valid S3 object tags (at most 10; keys 1-128, values 0-256 characters of letters, digits,
    spaces and + - = . _ : / @; no key starting with aws:), or None."""
    if len(tags) > OBJECT_TAGS_MAX:
        return f"object_tags may hold at most {OBJECT_TAGS_MAX} tags (got {len(tags)})"
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return "object_tags must map text keys to text values"
        if not 1 <= len(key) <= TAG_KEY_MAX_CHARS or not TAG_TEXT.fullmatch(key):
            return (
                f"object_tags key {key[:40]!r} must be 1 to {TAG_KEY_MAX_CHARS} characters of letters, digits, "
                "spaces and + - = . _ : / @"
            )
        if key.lower().startswith("aws:"):
            return f"object_tags key {key[:40]!r} must not start with aws: (reserved by AWS)"
        if len(value) > TAG_VALUE_MAX_CHARS or not TAG_TEXT.fullmatch(value):
            return (
                f"object_tags value of {key[:40]!r} must be at most {TAG_VALUE_MAX_CHARS} characters of letters, "
                "digits, spaces and + - = . _ : / @"
            )
    return None


def parse_object_tags(text: str) -> dict[str, str]:
    """``team=analytics, env=prod`` as a dict (how a form writes tags); ValueError naming a pair without ``=``."""
    tags: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"object_tags must be key=value pairs separated by commas, got {pair.strip()[:40]!r}")
        tags[key.strip()] = value.strip()
    return tags


# the fields a credentials mode uses or forbids
CREDENTIAL_FIELDS = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "role_arn",
    "external_id",
    "role_session_name",
)


def credentials_problems(values: dict[str, object]) -> dict[str, str]:
    """The rules between the credential fields, by the field each problem is shown next to. ``values`` are the
    normalised settings (None for anything not given); ``credentials`` is the effective mode."""
    mode = values.get("credentials")
    has_id, has_secret = values.get("access_key_id") is not None, values.get("secret_access_key") is not None
    out: dict[str, str] = {}
    if mode == ACCESS_KEY:
        for name in ("access_key_id", "secret_access_key"):
            if values.get(name) is None:
                out[name] = (
                    f"{name} is required with credentials access_key (the default); to grant access by "
                    "role instead, give role_arn and external_id"
                )
        for name in ("role_arn", "external_id", "role_session_name"):
            if values.get(name) is not None:
                out[name] = f"{name} is only used with credentials assume_role"
    elif mode == ASSUME_ROLE:
        for name, what in (
            ("role_arn", "the role to assume"),
            ("external_id", "the ExternalId its trust policy requires"),
        ):
            if values.get(name) is None:
                out[name] = f"{name} is required with credentials assume_role ({what})"
        if has_id != has_secret:
            missing = "secret_access_key" if has_id else "access_key_id"
            out[missing] = (
                "give both access_key_id and secret_access_key (the identity that assumes the role), or "
                "neither (the fleet's own identity assumes it)"
            )
    elif mode == FLEET:
        for name in CREDENTIAL_FIELDS:
            if values.get(name) is not None:
                out[name] = f"{name} is not used with credentials fleet (the fleet's own AWS identity writes)"
    if values.get("session_token") is not None and not (has_id and has_secret) and "session_token" not in out:
        out["session_token"] = "session_token goes with access_key_id and secret_access_key; give them too"
    return out


def bucket_key_problem(server_side_encryption: object, bucket_key_enabled: object) -> str | None:
    if bucket_key_enabled and server_side_encryption != "aws:kms":
        return "bucket_key_enabled is only used with server_side_encryption aws:kms (S3 Bucket Keys are for SSE-KMS)"
    return None


KEY_MAX_BYTES = 1024  # S3's limit on an object key
# the rest of the longest key: dt=YYYY-MM-DD/hr=HH/ (20), a batch uuid (36) and the longest suffix
_KEY_TAIL_BYTES = 20 + 36 + max(len(s) for s in object_keys.SUFFIXES.values())


def key_length_problem(prefix: Any, fields: Any) -> str | None:
    """Why keys with this prefix and these partition fields could pass S3's 1,024 bytes, or None (fields that cannot
    be parsed are reported by their own check)."""
    try:
        parsed = partitions.parse_fields(fields or [])
    except partitions.FieldsError:
        return None
    longest = len(str(prefix or "").encode()) + partitions.folders_max_bytes(parsed) + _KEY_TAIL_BYTES
    if parsed and longest > KEY_MAX_BYTES:
        return (
            f"partition_fields: with this prefix a key could be {longest} bytes, over S3's limit of {KEY_MAX_BYTES}; "
            "use a shorter prefix or fewer, shorter fields"
        )
    return None
