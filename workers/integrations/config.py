"""The configuration of one Amazon S3 integration: the model, its validation messages and secret redaction.

``parse_config`` is the one entry point for user input: it returns an ``IntegrationConfig`` or raises
``ConfigError`` with exactly one message per wrong field, each saying what is wrong and what is allowed.
No message, repr or ``public_dict()`` ever contains a secret value.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from workers.errors import ConfigError

if TYPE_CHECKING:
    from workers.settings import Settings

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

_BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

# What each field accepts, used when the input has the wrong type or shape.
_ALLOWED: dict[str, str] = {
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


def _problem(message: str) -> PydanticCustomError:
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
    if not _BUCKET_CHARS.match(name):
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
    if _CONTROL_CHARS.search(prefix):
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
    if _CONTROL_CHARS.search(url) or any(ch.isspace() for ch in url):
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


class IntegrationConfig(BaseModel):
    """One integration's S3 settings. Secrets are ``SecretStr``; ``public_dict()`` is safe to show."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    secret_fields: ClassVar[tuple[str, ...]] = ("access_key_id", "secret_access_key", "session_token")

    bucket: str = Field(validation_alias=AliasChoices("bucket", "bucket_name"))
    region: str
    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None = None
    prefix: str = ""
    storage_class: str = "STANDARD"
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    batch_max_events: int = 100_000
    batch_max_bytes: int = 64 * MIB
    flush_interval_s: float | None = None
    buffer_max_bytes: int | None = None
    endpoint_url: str | None = None
    partition_time: str = "received_at"
    partition_time_bound_s: int = PARTITION_TIME_BOUND_S_DEFAULT

    # -- per-field rules -------------------------------------------------------------------------------------

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, v: str) -> str:
        problem = bucket_problem(v)
        if problem:
            raise _problem(problem)
        return v

    @field_validator("region")
    @classmethod
    def _check_region(cls, v: str) -> str:
        if v not in AWS_REGIONS:
            raise _problem("region must be an AWS region code such as us-east-1, eu-west-1 or ap-southeast-2")
        return v

    @field_validator("access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _check_required_secret(cls, v: Any, info: Any) -> Any:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if isinstance(v, str):
            v = v.strip()
            if not v:
                raise _problem(f"{info.field_name} must not be empty")
        return v

    @field_validator("session_token", "server_side_encryption", "kms_key_id", "endpoint_url", mode="before")
    @classmethod
    def _empty_means_unset(cls, v: Any) -> Any:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if isinstance(v, str) and not v.strip():
            return None
        if isinstance(v, str):
            return v.strip()
        return v

    @field_validator("prefix", mode="before")
    @classmethod
    def _none_prefix_is_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, v: str) -> str:
        problem = prefix_problem(v)
        if problem:
            raise _problem(problem)
        return v

    @field_validator("storage_class", mode="before")
    @classmethod
    def _none_storage_class_is_default(cls, v: Any) -> Any:
        return "STANDARD" if v is None or v == "" else v

    @field_validator("storage_class")
    @classmethod
    def _check_storage_class(cls, v: str) -> str:
        if v not in STORAGE_CLASSES:
            raise _problem(_ALLOWED["storage_class"])
        return v

    @field_validator("server_side_encryption")
    @classmethod
    def _check_sse(cls, v: str | None) -> str | None:
        if v is not None and v not in SSE_ALGORITHMS:
            raise _problem(_ALLOWED["server_side_encryption"])
        return v

    @field_validator("kms_key_id")
    @classmethod
    def _check_kms_key_id(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > KMS_KEY_ID_MAX_CHARS or _CONTROL_CHARS.search(v)):
            raise _problem(
                f"kms_key_id must be a KMS key ARN of at most {KMS_KEY_ID_MAX_CHARS} characters "
                "without control characters"
            )
        return v

    @field_validator("partition_time", mode="before")
    @classmethod
    def _check_partition_time(cls, v: Any) -> Any:
        if v is None or v == "":
            return "received_at"
        if v not in PARTITION_TIMES:
            raise _problem(_ALLOWED["partition_time"])
        return v

    @field_validator("partition_time_bound_s")
    @classmethod
    def _check_partition_time_bound_s(cls, v: int) -> int:
        if not PARTITION_TIME_BOUND_S_MIN <= v <= PARTITION_TIME_BOUND_S_MAX:
            raise _problem(_ALLOWED["partition_time_bound_s"] + f" (got {v})")
        return v

    @field_validator("batch_max_events", "batch_max_bytes", "buffer_max_bytes", "partition_time_bound_s",
                     mode="before")
    @classmethod
    def _no_bool_for_int(cls, v: Any, info: Any) -> Any:
        if isinstance(v, bool):
            raise _problem(_ALLOWED[info.field_name])
        return v

    @field_validator("batch_max_events", "batch_max_bytes", "partition_time_bound_s", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any, info: Any) -> Any:
        return cls.model_fields[info.field_name].default if v is None else v

    @field_validator("flush_interval_s", mode="before")
    @classmethod
    def _no_bool_for_float(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise _problem(_ALLOWED["flush_interval_s"])
        return v

    @field_validator("batch_max_events")
    @classmethod
    def _check_batch_max_events(cls, v: int) -> int:
        if not BATCH_MAX_EVENTS_MIN <= v <= BATCH_MAX_EVENTS_MAX:
            raise _problem(_ALLOWED["batch_max_events"] + f" (got {v})")
        return v

    @field_validator("batch_max_bytes")
    @classmethod
    def _check_batch_max_bytes(cls, v: int) -> int:
        if not BATCH_MAX_BYTES_MIN <= v <= BATCH_MAX_BYTES_MAX:
            raise _problem(_ALLOWED["batch_max_bytes"] + f" (got {v})")
        return v

    @field_validator("flush_interval_s")
    @classmethod
    def _check_flush_interval_s(cls, v: float | None) -> float | None:
        if v is not None and not FLUSH_INTERVAL_S_MIN <= v <= FLUSH_INTERVAL_S_MAX:
            raise _problem(_ALLOWED["flush_interval_s"] + f" (got {v:g})")
        return v

    @field_validator("buffer_max_bytes")
    @classmethod
    def _check_buffer_max_bytes(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise _problem(_ALLOWED["buffer_max_bytes"] + f" (got {v})")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint_url(cls, v: str | None) -> str | None:
        if v is not None:
            problem = endpoint_url_problem(v)
            if problem:
                raise _problem(problem)
        return v

    # -- cross-field rules -----------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_kms(self) -> IntegrationConfig:
        problem = kms_problem(self.server_side_encryption, self.kms_key_id)
        if problem:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=_problem(problem), loc=("kms_key_id",), input=self.kms_key_id)],
            )
        return self

    # -- derived values --------------------------------------------------------------------------------------

    def effective_flush_interval_s(self, settings: Settings) -> float:
        return self.flush_interval_s if self.flush_interval_s is not None else settings.flush_interval_s

    def effective_buffer_max_bytes(self, settings: Settings) -> int:
        return self.buffer_max_bytes if self.buffer_max_bytes is not None else settings.buffer_max_bytes

    @property
    def is_custom_endpoint(self) -> bool:
        return self.endpoint_url is not None

    def public_dict(self) -> dict[str, Any]:
        """Every field as JSON-able values, secrets redacted."""
        out: dict[str, Any] = self.model_dump(mode="python")
        for name in self.secret_fields:
            secret = getattr(self, name)
            out[name] = redact(secret.get_secret_value()) if secret is not None else None
        return out


def _join(field_prefix: str, name: str) -> str:
    return f"{field_prefix}.{name}" if field_prefix else name


def _message(field: str, error: Any) -> str:
    kind = error["type"]
    if kind == "signal_config":
        return str(error["msg"])
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        if field == "bucket_name":
            return "give the bucket name as bucket or bucket_name, not both"
        allowed = ", ".join(IntegrationConfig.model_fields)
        return f"{field} is not a known setting; allowed settings are {allowed}"
    return _ALLOWED.get(field, f"{field} is not valid")


def errors_from(exc: ValidationError, *, field_prefix: str = "config") -> list[dict[str, str]]:
    """One ``{"field", "message"}`` per wrong field of a pydantic error, in the order pydantic reported them.

    Built only from our own wording, never from pydantic's messages, which may echo the input (a secret).
    """
    by_field: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else "config"
        if name not in by_field:
            by_field[name] = _message(name, error)
    return [{"field": _join(field_prefix, name), "message": msg} for name, msg in by_field.items()]


def _raw_kms_problem(data: dict[str, Any]) -> str | None:
    """The kms rule on raw input, so it is reported together with other errors (the model check runs last)."""
    sse = data.get("server_side_encryption")
    kms = data.get("kms_key_id")
    if sse is not None and sse not in SSE_ALGORITHMS and sse != "":
        return None  # server_side_encryption itself is wrong; that is its own error
    if kms is not None and not isinstance(kms, str):
        return None
    return kms_problem(sse or None, (kms or "").strip() or None)


def parse_config(data: dict[str, Any], *, field_prefix: str = "config") -> IntegrationConfig:
    """Validate user input into an ``IntegrationConfig`` or raise ``ConfigError`` listing every wrong field."""
    if not isinstance(data, dict):
        raise ConfigError(
            [{"field": field_prefix or "config", "message": "config must be an object of settings"}]
        )
    try:
        return IntegrationConfig.model_validate(data)
    except ValidationError as exc:
        errors = errors_from(exc, field_prefix=field_prefix)
        kms_field = _join(field_prefix, "kms_key_id")
        if not any(e["field"] == kms_field for e in errors):
            problem = _raw_kms_problem(data)
            if problem:
                errors.append({"field": kms_field, "message": problem})
        raise ConfigError(errors) from None
