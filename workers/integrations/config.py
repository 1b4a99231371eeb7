"""The configuration of one Amazon S3 integration: the model and its validation messages.

``parse_config`` is the one entry point for user input: it returns an ``IntegrationConfig`` or raises
``ConfigError`` with exactly one message per wrong field, each saying what is wrong and what is allowed (the rules
of each field are ``workers.integrations.checks``). No message, repr or ``public_dict()`` ever contains a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

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
from pydantic_core import InitErrorDetails

from workers.errors import ConfigError
from workers.integrations.checks import (
    ALLOWED,
    AWS_REGIONS,
    BATCH_MAX_BYTES_MAX,
    BATCH_MAX_BYTES_MIN,
    BATCH_MAX_EVENTS_MAX,
    BATCH_MAX_EVENTS_MIN,
    CONTROL_CHARS,
    FLUSH_INTERVAL_S_MAX,
    FLUSH_INTERVAL_S_MIN,
    KMS_KEY_ID_MAX_CHARS,
    MIB,
    PARTITION_TIME_BOUND_S_DEFAULT,
    PARTITION_TIME_BOUND_S_MAX,
    PARTITION_TIME_BOUND_S_MIN,
    PARTITION_TIMES,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    bucket_problem,
    endpoint_url_problem,
    field_error,
    kms_problem,
    prefix_problem,
    redact,
)

if TYPE_CHECKING:
    from workers.settings import Settings


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
            raise field_error(problem)
        return v

    @field_validator("region")
    @classmethod
    def _check_region(cls, v: str) -> str:
        if v not in AWS_REGIONS:
            raise field_error("region must be an AWS region code such as us-east-1, eu-west-1 or ap-southeast-2")
        return v

    @field_validator("access_key_id", "secret_access_key", mode="before")
    @classmethod
    def _check_required_secret(cls, v: Any, info: Any) -> Any:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if isinstance(v, str):
            v = v.strip()
            if not v:
                raise field_error(f"{info.field_name} must not be empty")
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
            raise field_error(problem)
        return v

    @field_validator("storage_class", mode="before")
    @classmethod
    def _none_storage_class_is_default(cls, v: Any) -> Any:
        return "STANDARD" if v is None or v == "" else v

    @field_validator("storage_class")
    @classmethod
    def _check_storage_class(cls, v: str) -> str:
        if v not in STORAGE_CLASSES:
            raise field_error(ALLOWED["storage_class"])
        return v

    @field_validator("server_side_encryption")
    @classmethod
    def _check_sse(cls, v: str | None) -> str | None:
        if v is not None and v not in SSE_ALGORITHMS:
            raise field_error(ALLOWED["server_side_encryption"])
        return v

    @field_validator("kms_key_id")
    @classmethod
    def _check_kms_key_id(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > KMS_KEY_ID_MAX_CHARS or CONTROL_CHARS.search(v)):
            raise field_error(
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
            raise field_error(ALLOWED["partition_time"])
        return v

    @field_validator("partition_time_bound_s")
    @classmethod
    def _check_partition_time_bound_s(cls, v: int) -> int:
        if not PARTITION_TIME_BOUND_S_MIN <= v <= PARTITION_TIME_BOUND_S_MAX:
            raise field_error(ALLOWED["partition_time_bound_s"] + f" (got {v})")
        return v

    @field_validator("batch_max_events", "batch_max_bytes", "buffer_max_bytes", "partition_time_bound_s", mode="before")
    @classmethod
    def _no_bool_for_int(cls, v: Any, info: Any) -> Any:
        if isinstance(v, bool):
            raise field_error(ALLOWED[info.field_name])
        return v

    @field_validator("batch_max_events", "batch_max_bytes", "partition_time_bound_s", mode="before")
    @classmethod
    def _none_is_default(cls, v: Any, info: Any) -> Any:
        return cls.model_fields[info.field_name].default if v is None else v

    @field_validator("flush_interval_s", mode="before")
    @classmethod
    def _no_bool_for_float(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise field_error(ALLOWED["flush_interval_s"])
        return v

    @field_validator("batch_max_events")
    @classmethod
    def _check_batch_max_events(cls, v: int) -> int:
        if not BATCH_MAX_EVENTS_MIN <= v <= BATCH_MAX_EVENTS_MAX:
            raise field_error(ALLOWED["batch_max_events"] + f" (got {v})")
        return v

    @field_validator("batch_max_bytes")
    @classmethod
    def _check_batch_max_bytes(cls, v: int) -> int:
        if not BATCH_MAX_BYTES_MIN <= v <= BATCH_MAX_BYTES_MAX:
            raise field_error(ALLOWED["batch_max_bytes"] + f" (got {v})")
        return v

    @field_validator("flush_interval_s")
    @classmethod
    def _check_flush_interval_s(cls, v: float | None) -> float | None:
        if v is not None and not FLUSH_INTERVAL_S_MIN <= v <= FLUSH_INTERVAL_S_MAX:
            raise field_error(ALLOWED["flush_interval_s"] + f" (got {v:g})")
        return v

    @field_validator("buffer_max_bytes")
    @classmethod
    def _check_buffer_max_bytes(cls, v: int | None) -> int | None:
        if v is not None and v <= 0:
            raise field_error(ALLOWED["buffer_max_bytes"] + f" (got {v})")
        return v

    @field_validator("endpoint_url")
    @classmethod
    def _check_endpoint_url(cls, v: str | None) -> str | None:
        if v is not None:
            problem = endpoint_url_problem(v)
            if problem:
                raise field_error(problem)
        return v

    # -- cross-field rules -----------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_kms(self) -> IntegrationConfig:
        problem = kms_problem(self.server_side_encryption, self.kms_key_id)
        if problem:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=field_error(problem), loc=("kms_key_id",), input=self.kms_key_id)],
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
    return ALLOWED.get(field, f"{field} is not valid")


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


def __raw_kms_problem(data: dict[str, Any]) -> str | None:
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
        raise ConfigError([{"field": field_prefix or "config", "message": "config must be an object of settings"}])
    try:
        return IntegrationConfig.model_validate(data)
    except ValidationError as exc:
        errors = errors_from(exc, field_prefix=field_prefix)
        kms_field = _join(field_prefix, "kms_key_id")
        if not any(e["field"] == kms_field for e in errors):
            problem = __raw_kms_problem(data)
            if problem:
                errors.append({"field": kms_field, "message": problem})
        raise ConfigError(errors) from None
