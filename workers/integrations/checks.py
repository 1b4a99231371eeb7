"""The rules of each configuration field: the values it allows, its bounds, and the check that says what is wrong.

Each ``*_problem`` function returns the message a user is shown for a wrong value (naming what is allowed), or None
for a valid one. ``workers.integrations.config`` applies them to the model; the catalog describes the same values.
No message ever repeats a secret.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from pydantic_core import PydanticCustomError

# Every region of the commercial (aws), GovCloud (aws-us-gov) and China (aws-cn) partitions that has S3.
AWS_REGIONS: frozenset[str] = frozenset(
    {
        # aws
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        # aws-us-gov
        "us-gov-east-1",
        "us-gov-west-1",
        # aws-cn
        "cn-north-1",
        "cn-northwest-1",
    }
)

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
PARTITION_TIME_BOUND_S_DEFAULT = 7 * 24 * 3600
PARTITION_TIME_BOUND_S_MIN = 60
PARTITION_TIME_BOUND_S_MAX = 366 * 24 * 3600
KMS_KEY_ID_MAX_CHARS = 2048

BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# What each field accepts, used when the input has the wrong type or shape.
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
