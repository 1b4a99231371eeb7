"""The configuration of one Amazon S3 integration: the model and its validation messages.

``parse_config`` is the one entry point for user input: it returns an ``IntegrationConfig`` or raises
``ConfigError`` with exactly one message per wrong field, each saying what is wrong and what is allowed (the rules
of each field are ``workers.integrations.checks``). No message, repr or ``public_dict()`` ever contains a secret.
"""

from __future__ import annotations

from collections.abc import Callable
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
from workers.events import partitions
from workers.integrations.checks import (
    ACCESS_KEY,
    ADDRESSING_STYLES,
    ALLOWED,
    ASSUME_ROLE,
    BATCH_MAX_BYTES_MAX,
    BATCH_MAX_BYTES_MIN,
    BATCH_MAX_EVENTS_MAX,
    BATCH_MAX_EVENTS_MIN,
    CHECKSUM_MODES,
    CREDENTIAL_FIELDS,
    CREDENTIAL_MODES,
    DATE_LAYOUTS,
    EXTERNAL_ID,
    FLUSH_INTERVAL_S_MAX,
    FLUSH_INTERVAL_S_MIN,
    ICEBERG_CATALOGS,
    ICEBERG_NAME,
    ICEBERG_RETENTION_DAYS_MAX,
    ICEBERG_TARGET_FILE_MB_MAX,
    ICEBERG_TARGET_FILE_MB_MIN,
    MIB,
    PARTITION_MAX_VALUES_DEFAULT,
    PARTITION_MAX_VALUES_MAX,
    PARTITION_TIME_BOUND_S_DEFAULT,
    PARTITION_TIME_BOUND_S_MAX,
    PARTITION_TIME_BOUND_S_MIN,
    PARTITION_TIMES,
    ROLE_ARN,
    ROLE_SESSION_NAME,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    bucket_key_problem,
    bucket_problem,
    credentials_problems,
    endpoint_url_problem,
    field_error,
    iceberg_uri_problem,
    key_length_problem,
    kms_key_id_problem,
    kms_problem,
    object_tags_problem,
    parse_object_tags,
    prefix_problem,
    redact,
    region_problem,
    store_region_problem,
)
from workers.integrations.config_errors import errors_from, join

if TYPE_CHECKING:
    from workers.settings import Settings


class IntegrationConfig(BaseModel):
    """One integration's S3 settings. Secrets are ``SecretStr``; ``public_dict()`` is safe to show."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    secret_fields: ClassVar[tuple[str, ...]] = (
        "access_key_id",
        "secret_access_key",
        "session_token",
        "iceberg_catalog_uri",  # a PostgreSQL URL carries its password
    )

    bucket: str = Field(validation_alias=AliasChoices("bucket", "bucket_name"))
    region: str
    credentials: str = ACCESS_KEY
    role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    prefix: str = ""
    storage_class: str = "STANDARD"
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    bucket_key_enabled: bool = False
    object_tags: dict[str, str] = Field(default_factory=dict)
    batch_max_events: int = 100_000
    batch_max_bytes: int = 64 * MIB
    flush_interval_s: float | None = None
    buffer_max_bytes: int | None = None
    endpoint_url: str | None = None
    addressing_style: str = "auto"
    checksums: str | None = None  # None: auto on Amazon S3, when_required with an endpoint_url
    partition_time: str = "received_at"
    partition_time_bound_s: int = PARTITION_TIME_BOUND_S_DEFAULT
    partition_fields: tuple[str, ...] = ()
    partition_max_values: int = PARTITION_MAX_VALUES_DEFAULT
    date_layout: str = "path"
    # the iceberg variant's table (workers.sink.iceberg)
    iceberg_catalog: str = "sql"
    iceberg_catalog_uri: SecretStr | None = None
    iceberg_namespace: str = "signal"
    iceberg_table: str = "events"
    iceberg_snapshot_retention_days: int = 7
    iceberg_target_file_mb: int = 128

    # -- per-field rules, by kind (each message names what is allowed: checks.ALLOWED) -------------------

    # blank (None or "") means the default
    _DEFAULTS: ClassVar[tuple[str, ...]] = (
        "storage_class",
        "addressing_style",
        "partition_time",
        "date_layout",
        "partition_max_values",
        "batch_max_events",
        "batch_max_bytes",
        "partition_time_bound_s",
        "prefix",
        "iceberg_catalog",
        "iceberg_namespace",
        "iceberg_table",
        "iceberg_snapshot_retention_days",
        "iceberg_target_file_mb",
    )
    # blank means not given; text is stripped
    _OPTIONAL: ClassVar[tuple[str, ...]] = (
        "access_key_id",
        "secret_access_key",
        "session_token",
        "server_side_encryption",
        "kms_key_id",
        "endpoint_url",
        "role_arn",
        "external_id",
        "role_session_name",
        "checksums",
        "iceberg_catalog_uri",
    )
    _NUMBERS: ClassVar[tuple[str, ...]] = (
        "batch_max_events",
        "batch_max_bytes",
        "buffer_max_bytes",
        "partition_time_bound_s",
        "flush_interval_s",
        "partition_max_values",
        "iceberg_snapshot_retention_days",
        "iceberg_target_file_mb",
    )
    _CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "credentials": CREDENTIAL_MODES,
        "storage_class": STORAGE_CLASSES,
        "server_side_encryption": SSE_ALGORITHMS,
        "addressing_style": ADDRESSING_STYLES,
        "checksums": CHECKSUM_MODES,
        "partition_time": PARTITION_TIMES,
        "date_layout": DATE_LAYOUTS,
        "iceberg_catalog": ICEBERG_CATALOGS,
    }
    _RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "batch_max_events": (BATCH_MAX_EVENTS_MIN, BATCH_MAX_EVENTS_MAX),
        "batch_max_bytes": (BATCH_MAX_BYTES_MIN, BATCH_MAX_BYTES_MAX),
        "flush_interval_s": (FLUSH_INTERVAL_S_MIN, FLUSH_INTERVAL_S_MAX),
        "partition_time_bound_s": (PARTITION_TIME_BOUND_S_MIN, PARTITION_TIME_BOUND_S_MAX),
        "buffer_max_bytes": (1, float("inf")),
        "partition_max_values": (1, PARTITION_MAX_VALUES_MAX),
        "iceberg_snapshot_retention_days": (1, ICEBERG_RETENTION_DAYS_MAX),
        "iceberg_target_file_mb": (ICEBERG_TARGET_FILE_MB_MIN, ICEBERG_TARGET_FILE_MB_MAX),
    }
    _PROBLEMS: ClassVar[dict[str, Callable[[str], str | None]]] = {
        "bucket": bucket_problem,
        "prefix": prefix_problem,
        "endpoint_url": endpoint_url_problem,
        "kms_key_id": kms_key_id_problem,
        "region": region_problem,
        "role_arn": lambda v: None if ROLE_ARN.fullmatch(v) else ALLOWED["role_arn"],
        "external_id": lambda v: None if EXTERNAL_ID.fullmatch(v) else ALLOWED["external_id"],
        "role_session_name": lambda v: None if ROLE_SESSION_NAME.fullmatch(v) else ALLOWED["role_session_name"],
        "iceberg_namespace": lambda v: None if ICEBERG_NAME.fullmatch(v) else ALLOWED["iceberg_namespace"],
        "iceberg_table": lambda v: None if ICEBERG_NAME.fullmatch(v) else ALLOWED["iceberg_table"],
    }

    @model_validator(mode="before")
    @classmethod
    def _default_credentials(cls, data: Any) -> Any:
        """No ``credentials`` given: ``assume_role`` when a ``role_arn`` is, else ``access_key`` (the key pair)."""
        if isinstance(data, dict) and data.get("credentials") in (None, ""):
            role_arn = data.get("role_arn")
            given = isinstance(role_arn, str) and role_arn.strip()
            data = {**data, "credentials": ASSUME_ROLE if given else ACCESS_KEY}
        return data

    @field_validator(*_DEFAULTS, mode="before")
    @classmethod
    def _blank_is_default(cls, v: Any, info: Any) -> Any:
        return cls.model_fields[info.field_name].default if v is None or v == "" else v

    @field_validator(*_OPTIONAL, mode="before")
    @classmethod
    def _blank_is_unset(cls, v: Any) -> Any:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if isinstance(v, str):
            return v.strip() or None
        return v

    @field_validator(*_NUMBERS, mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, v: Any, info: Any) -> Any:
        if isinstance(v, bool):
            raise field_error(ALLOWED[info.field_name])
        return v

    @field_validator(*_CHOICES)
    @classmethod
    def _one_of(cls, v: str | None, info: Any) -> str | None:
        if v is not None and v not in cls._CHOICES[info.field_name]:
            raise field_error(ALLOWED[info.field_name])
        return v

    @field_validator(*_RANGES)
    @classmethod
    def _in_range(cls, v: float | None, info: Any) -> float | None:
        low, high = cls._RANGES[info.field_name]
        if v is not None and not low <= v <= high:
            raise field_error(ALLOWED[info.field_name] + (f" (got {v:g})" if isinstance(v, float) else f" (got {v})"))
        return v

    @field_validator(*_PROBLEMS)
    @classmethod
    def _no_problem(cls, v: str | None, info: Any) -> str | None:
        problem = cls._PROBLEMS[info.field_name](v) if v is not None else None
        if problem:
            raise field_error(problem)
        return v

    @field_validator("object_tags", mode="before")
    @classmethod
    def _check_object_tags(cls, v: Any) -> Any:
        if v is None or v == "":
            return {}
        if isinstance(v, str):  # a form's text: team=analytics, env=prod
            try:
                v = parse_object_tags(v)
            except ValueError as exc:
                raise field_error(str(exc)) from None
        if not isinstance(v, dict):
            raise field_error(ALLOWED["object_tags"])
        problem = object_tags_problem(v)
        if problem:
            raise field_error(problem)
        return v

    @field_validator("partition_fields", mode="before")
    @classmethod
    def _check_partition_fields(cls, v: Any) -> Any:
        if v is None or v == "":
            return ()
        try:
            return tuple(f.spec for f in partitions.parse_fields(v))
        except partitions.FieldsError as exc:
            raise field_error(str(exc)) from None

    @field_validator("bucket_key_enabled", mode="before")
    @classmethod
    def _check_bucket_key_enabled(cls, v: Any) -> Any:
        if v is None or v == "":
            return False
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"  # a form's select
        if not isinstance(v, bool):
            raise field_error(ALLOWED["bucket_key_enabled"])
        return v

    # -- cross-field rules -----------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_between_fields(self) -> IntegrationConfig:
        problems = cross_field_problems(self.model_dump(mode="python"))
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(type=field_error(message), loc=(name,), input=None)
                    for name, message in problems.items()
                ],
            )
        return self

    # -- derived values --------------------------------------------------------------------------------------

    def effective_flush_interval_s(self, settings: Settings) -> float:
        return self.flush_interval_s if self.flush_interval_s is not None else settings.flush_interval_s

    def effective_buffer_max_bytes(self, settings: Settings) -> int:
        return self.buffer_max_bytes if self.buffer_max_bytes is not None else settings.buffer_max_bytes

    @property
    def partition_by(self) -> tuple[partitions.Field, ...]:
        """The compiled ``partition_fields`` (empty: no partition folders in the keys)."""
        return partitions.compiled(self.partition_fields)

    @property
    def is_custom_endpoint(self) -> bool:
        return self.endpoint_url is not None

    @property
    def effective_checksums(self) -> str:
        """``checksums`` as set, else ``when_required`` for an S3-compatible store (an ``endpoint_url``) and ``auto`` on
        Amazon S3."""
        return self.checksums or ("when_required" if self.endpoint_url else "auto")

    def public_dict(self) -> dict[str, Any]:
        """Every field as JSON-able values, secrets redacted."""
        out: dict[str, Any] = self.model_dump(mode="python")
        for name in self.secret_fields:
            secret = getattr(self, name)
            out[name] = redact(secret.get_secret_value()) if secret is not None else None
        return out


def cross_field_problems(values: dict[str, Any]) -> dict[str, str]:
    """Every rule between fields, by the field its message is shown next to (``values``: normalised settings, secrets
    as they are, None for what is not given)."""
    out = credentials_problems({k: values.get(k) for k in ("credentials", *CREDENTIAL_FIELDS)})
    kms = kms_problem(values.get("server_side_encryption"), values.get("kms_key_id"))
    if kms:
        out["kms_key_id"] = kms
    region = store_region_problem(values.get("region"), values.get("endpoint_url"))
    if region:
        out["region"] = region
    bucket_key = bucket_key_problem(values.get("server_side_encryption"), values.get("bucket_key_enabled"))
    if bucket_key:
        out["bucket_key_enabled"] = bucket_key
    uri = values.get("iceberg_catalog_uri")
    uri = uri.get_secret_value() if hasattr(uri, "get_secret_value") else uri
    iceberg_uri = iceberg_uri_problem(values.get("iceberg_catalog"), uri)
    if iceberg_uri:
        out["iceberg_catalog_uri"] = iceberg_uri
    key_length = key_length_problem(values.get("prefix"), values.get("partition_fields"))
    if key_length:
        out["partition_fields"] = key_length
    return out


def _normalised(data: dict[str, Any]) -> dict[str, Any]:
    """Raw input as the cross-field rules read it, so their problems are reported together with the fields' own (the
    model checks them only once every field is valid)."""
    out = {k: (v.strip() or None) if isinstance(v, str) else v for k, v in data.items()}
    if not out.get("credentials"):
        out["credentials"] = ASSUME_ROLE if out.get("role_arn") else ACCESS_KEY
    return out


def parse_config(data: dict[str, Any], *, field_prefix: str = "config") -> IntegrationConfig:
    """Validate user input into an ``IntegrationConfig`` or raise ``ConfigError`` listing every wrong field."""
    if not isinstance(data, dict):
        raise ConfigError([{"field": field_prefix or "config", "message": "config must be an object of settings"}])
    try:
        return IntegrationConfig.model_validate(data)
    except ValidationError as exc:
        errors = errors_from(exc, known=tuple(IntegrationConfig.model_fields), field_prefix=field_prefix)
        wrong = {e["field"] for e in errors}
        if join(field_prefix, "server_side_encryption") not in wrong and join(field_prefix, "credentials") not in wrong:
            for name, message in cross_field_problems(_normalised(data)).items():
                if join(field_prefix, name) not in wrong:
                    errors.append({"field": join(field_prefix, name), "message": message})
        order = {join(field_prefix, name): i for i, name in enumerate(IntegrationConfig.model_fields)}
        raise ConfigError(sorted(errors, key=lambda e: order.get(e["field"], len(order)))) from None
