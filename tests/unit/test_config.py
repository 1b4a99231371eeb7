from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, seed_config
from workers.errors import ConfigError
from workers.integrations.checks import AWS_REGION_MESSAGE, AWS_REGIONS, STORAGE_CLASSES, redact
from workers.integrations.config import IntegrationConfig, parse_config
from workers.settings import Settings

SECRETS = (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN)

# The config object of the documented install request.
SEED_CONFIG: dict[str, Any] = seed_config()

MINIMAL: dict[str, Any] = {
    "bucket": "my-bucket",
    "region": "eu-west-1",
    "access_key_id": ACCESS_KEY_ID,
    "secret_access_key": SECRET_ACCESS_KEY,
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    data = dict(base)
    for key, value in changes.items():
        if value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


_DROP = object()


def errors_of(data: Any, **kwargs: Any) -> list[dict[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, **kwargs)
    return caught.value.errors


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- the documented config -------------------------------------------------------------------------------------


def test_seed_config_is_valid_and_keeps_every_value() -> None:
    config = parse_config(SEED_CONFIG)
    assert config.bucket == "datafly-events-production"
    assert config.region == "us-east-1"
    assert config.access_key_id.get_secret_value() == ACCESS_KEY_ID
    assert config.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY
    assert config.session_token is None
    assert config.prefix == "events/"
    assert config.storage_class == "STANDARD"
    assert config.server_side_encryption == "AES256"
    assert config.kms_key_id is None


def test_defaults() -> None:
    config = parse_config(MINIMAL)
    assert config.prefix == ""
    assert config.storage_class == "STANDARD"
    assert config.server_side_encryption is None
    assert config.kms_key_id is None
    assert config.session_token is None
    assert config.batch_max_events == 100_000
    assert config.batch_max_bytes == 64 * 1024 * 1024
    assert config.flush_interval_s is None
    assert config.buffer_max_bytes is None
    assert config.endpoint_url is None
    assert config.is_custom_endpoint is False
    assert config.partition_time == "received_at"
    assert config.partition_time_bound_s == 7 * 24 * 3600
    assert config.date_layout == "path"


def test_bucket_name_is_accepted_as_alias_and_serialises_as_bucket() -> None:
    config = parse_config(with_(MINIMAL, bucket=_DROP, bucket_name="alias-bucket"))
    assert config.bucket == "alias-bucket"
    dumped = config.model_dump()
    assert dumped["bucket"] == "alias-bucket"
    assert "bucket_name" not in dumped
    assert config.public_dict()["bucket"] == "alias-bucket"


def test_bucket_and_bucket_name_together_are_refused() -> None:
    errors = errors_of(with_(MINIMAL, bucket_name="other-bucket"))
    assert errors == [
        {"field": "config.bucket_name", "message": "give the bucket name as bucket or bucket_name, not both"}
    ]


def test_model_accepts_field_names_directly() -> None:
    config = IntegrationConfig(**MINIMAL)
    assert config.bucket == "my-bucket"


# -- one rule per row ------------------------------------------------------------------------------------------

VALID_ROWS: list[tuple[str, Any]] = [
    ("bucket", "abc"),
    ("bucket", "a" * 63),
    ("bucket", "my.bucket-1"),
    ("bucket", "1bucket9"),
    ("bucket", "192.168.1"),  # not a full IP address
    ("region", "us-east-1"),
    ("region", "ap-southeast-7"),
    ("region", "mx-central-1"),
    ("region", "il-central-1"),
    ("region", "us-gov-west-1"),
    ("region", "cn-north-1"),
    ("region", "cn-northwest-1"),
    ("prefix", ""),
    ("prefix", "events/"),
    ("prefix", "a/b/c/"),
    ("prefix", "team..x/"),  # '..' inside a segment is fine
    ("prefix", "p" * 899 + "/"),
    ("prefix", None),
    ("session_token", SESSION_TOKEN),
    ("session_token", None),
    ("batch_max_events", 1),
    ("batch_max_events", 1_000_000),
    ("batch_max_bytes", 1024),
    ("batch_max_bytes", 5 * 1024**3),
    ("flush_interval_s", 1),
    ("flush_interval_s", 3600),
    ("flush_interval_s", 30.5),
    ("flush_interval_s", None),
    ("buffer_max_bytes", 1),
    ("buffer_max_bytes", None),
    ("endpoint_url", "http://127.0.0.1:9000"),
    ("endpoint_url", "https://s3.example.com/"),
    ("endpoint_url", None),
    ("server_side_encryption", None),
    ("server_side_encryption", "AES256"),
    ("partition_time", "received_at"),
    ("partition_time", "timestamp"),
    ("partition_time_bound_s", 60),
    ("partition_time_bound_s", 366 * 24 * 3600),
    ("date_layout", "path"),
    ("date_layout", "hive"),
] + [("storage_class", storage_class) for storage_class in STORAGE_CLASSES]


@pytest.mark.parametrize(("field", "value"), VALID_ROWS)
def test_valid_values(field: str, value: Any) -> None:
    config = parse_config(with_(MINIMAL, **{field: value}))
    got = getattr(config, field)
    if isinstance(got, SecretStr):
        got = got.get_secret_value()
    if field == "prefix" and value is None:
        assert got == ""
    else:
        assert got == value


ACCESS_KEY_ID_REQUIRED = (
    "access_key_id is required with credentials access_key (the default); to grant access by role instead, give "
    "role_arn and external_id"
)
SECRET_REQUIRED = ACCESS_KEY_ID_REQUIRED.replace("access_key_id", "secret_access_key", 1)
REGION_MESSAGE = AWS_REGION_MESSAGE
INVALID_ROWS: list[tuple[str, Any, str]] = [
    # bucket
    ("bucket", _DROP, "bucket is required"),
    ("bucket", "ab", "bucket must be 3 to 63 characters long (got 2)"),
    ("bucket", "a" * 64, "bucket must be 3 to 63 characters long (got 64)"),
    ("bucket", "My-Bucket", "bucket may contain only lowercase letters, digits, dots (.) and hyphens (-)"),
    ("bucket", "my_bucket", "bucket may contain only lowercase letters, digits, dots (.) and hyphens (-)"),
    ("bucket", "-bucket", "bucket must start and end with a lowercase letter or digit"),
    ("bucket", "bucket.", "bucket must start and end with a lowercase letter or digit"),
    ("bucket", "my..bucket", "bucket must not contain two adjacent dots (..)"),
    ("bucket", "192.168.5.4", "bucket must not be formatted as an IP address"),
    ("bucket", "xn--bucket", "bucket must not start with the reserved prefix xn--"),
    ("bucket", "sthree-bucket", "bucket must not start with the reserved prefix sthree-"),
    ("bucket", "bucket-s3alias", "bucket must not end with the reserved suffix -s3alias"),
    ("bucket", "bucket--ol-s3", "bucket must not end with the reserved suffix --ol-s3"),
    ("bucket", 123, "bucket must be a string naming an S3 bucket (3-63 lowercase letters, digits, dots or hyphens)"),
    # region
    ("region", _DROP, "region is required"),
    ("region", "us-east-9", REGION_MESSAGE),
    ("region", "US-EAST-1", REGION_MESSAGE),
    ("region", "", REGION_MESSAGE),
    # secrets
    (
        "access_key_id",
        _DROP,
        ACCESS_KEY_ID_REQUIRED,
    ),
    (
        "access_key_id",
        "",
        ACCESS_KEY_ID_REQUIRED,
    ),
    (
        "access_key_id",
        "   ",
        ACCESS_KEY_ID_REQUIRED,
    ),
    ("access_key_id", 42, "access_key_id must be a non-empty string (the AWS access key ID)"),
    (
        "secret_access_key",
        _DROP,
        SECRET_REQUIRED,
    ),
    (
        "secret_access_key",
        "",
        SECRET_REQUIRED,
    ),
    ("session_token", 7, "session_token must be a string (an STS session token) or omitted"),
    # prefix
    ("prefix", "events", "prefix must end with / (for example events/)"),
    ("prefix", "/events/", "prefix must not start with /; write it like events/"),
    ("prefix", "a/../b/", "prefix must not contain a .. path segment"),
    ("prefix", "../", "prefix must not contain a .. path segment"),
    ("prefix", "ev\nents/", "prefix must not contain control characters such as newlines or tabs"),
    ("prefix", "ev\tents/", "prefix must not contain control characters such as newlines or tabs"),
    ("prefix", "p" * 900 + "/", "prefix must be at most 900 characters (got 901)"),
    ("prefix", 5, "prefix must be a string such as events/ (ending with /) or empty"),
    # storage_class
    (
        "storage_class",
        "standard",
        "storage_class must be one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, "
        "DEEP_ARCHIVE, REDUCED_REDUNDANCY",
    ),
    (
        "storage_class",
        "EXPRESS_ONEZONE",
        "storage_class must be one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, "
        "DEEP_ARCHIVE, REDUCED_REDUNDANCY",
    ),
    # server_side_encryption
    ("server_side_encryption", "aes256", "server_side_encryption must be AES256, aws:kms or omitted"),
    ("server_side_encryption", "aws:kms:dsse", "server_side_encryption must be AES256, aws:kms or omitted"),
    # batch settings
    ("batch_max_events", 0, "batch_max_events must be a whole number from 1 to 1_000_000 (got 0)"),
    ("batch_max_events", 1_000_001, "batch_max_events must be a whole number from 1 to 1_000_000 (got 1000001)"),
    ("batch_max_events", "many", "batch_max_events must be a whole number from 1 to 1_000_000"),
    ("batch_max_events", 1.5, "batch_max_events must be a whole number from 1 to 1_000_000"),
    ("batch_max_events", True, "batch_max_events must be a whole number from 1 to 1_000_000"),
    (
        "batch_max_bytes",
        1023,
        "batch_max_bytes must be a whole number of bytes from 1024 (1 KiB) to 5368709120 (5 GiB) (got 1023)",
    ),
    (
        "batch_max_bytes",
        5 * 1024**3 + 1,
        "batch_max_bytes must be a whole number of bytes from 1024 (1 KiB) to 5368709120 (5 GiB) (got 5368709121)",
    ),
    (
        "flush_interval_s",
        0.5,
        "flush_interval_s must be a number of seconds from 1 to 3600, or omitted to use the fleet default (got 0.5)",
    ),
    (
        "flush_interval_s",
        3601,
        "flush_interval_s must be a number of seconds from 1 to 3600, or omitted to use the fleet default (got 3601)",
    ),
    (
        "flush_interval_s",
        "soon",
        "flush_interval_s must be a number of seconds from 1 to 3600, or omitted to use the fleet default",
    ),
    (
        "buffer_max_bytes",
        0,
        "buffer_max_bytes must be a positive whole number of bytes, or omitted to use the fleet default (got 0)",
    ),
    # endpoint_url
    (
        "endpoint_url",
        "ftp://example.com",
        "endpoint_url must be an http:// or https:// URL with a host, e.g. https://s3.example.com",
    ),
    (
        "endpoint_url",
        "example.com",
        "endpoint_url must be an http:// or https:// URL with a host, e.g. https://s3.example.com",
    ),
    ("endpoint_url", "http://exa mple.com", "endpoint_url must not contain spaces or control characters"),
    (
        "endpoint_url",
        "https://user:pw@example.com",
        "endpoint_url must not contain credentials; use access_key_id and secret_access_key",
    ),
    ("endpoint_url", "http://example.com:notaport", "endpoint_url must be a valid http:// or https:// URL"),
    *[
        (
            "date_layout",
            value,
            "date_layout must be path (YYYY/MM/DD/HH/ in the key) or hive (dt=YYYY-MM-DD/hr=HH/ in the key)",
        )
        for value in ("flat", "Hive", 1, ["hive"])
    ],
    # partition time
    *[
        (
            "partition_time",
            value,
            "partition_time must be received_at (the hour the event arrived) or timestamp "
            "(the hour the event says it happened)",
        )
        for value in ("event_time", "Timestamp", 1, True, ["timestamp"])
    ],
    (
        "partition_time_bound_s",
        59,
        "partition_time_bound_s must be a whole number of seconds from 60 to 31622400 (366 days) (got 59)",
    ),
    (
        "partition_time_bound_s",
        366 * 24 * 3600 + 1,
        "partition_time_bound_s must be a whole number of seconds from 60 to 31622400 (366 days) (got 31622401)",
    ),
    *[
        (
            "partition_time_bound_s",
            value,
            "partition_time_bound_s must be a whole number of seconds from 60 to 31622400 (366 days)",
        )
        for value in ("7d", 3600.5, True)
    ],
]


@pytest.mark.parametrize(("field", "value", "message"), INVALID_ROWS)
def test_invalid_values_give_one_clear_message(field: str, value: Any, message: str) -> None:
    errors = errors_of(with_(MINIMAL, **{field: value}))
    assert errors == [{"field": f"config.{field}", "message": message}]
    assert_no_secret(str(errors))


def test_every_wrong_field_is_reported_once_in_one_error() -> None:
    data = {
        "bucket": "Bad_Bucket",
        "region": "mars-1",
        "access_key_id": "",
        "prefix": "no-slash",
        "storage_class": "COLD",
        "batch_max_events": -1,
        "colour": "blue",
    }
    errors = errors_of(data)
    fields = [e["field"] for e in errors]
    assert sorted(fields) == sorted(
        [
            "config.bucket",
            "config.region",
            "config.access_key_id",
            "config.secret_access_key",
            "config.prefix",
            "config.storage_class",
            "config.batch_max_events",
            "config.colour",
        ]
    )
    assert len(fields) == len(set(fields))


def test_unknown_setting_names_the_allowed_ones() -> None:
    errors = errors_of(with_(MINIMAL, bucket_region="us-east-1"))
    assert len(errors) == 1
    assert errors[0]["field"] == "config.bucket_region"
    assert errors[0]["message"].startswith("bucket_region is not a known setting; allowed settings are bucket, region")


def test_field_prefix_is_configurable() -> None:
    assert errors_of(with_(MINIMAL, region="x"), field_prefix="")[0]["field"] == "region"
    assert errors_of(with_(MINIMAL, region="x"), field_prefix="body.config")[0]["field"] == "body.config.region"


def test_config_that_is_not_an_object() -> None:
    assert errors_of(["bucket"]) == [{"field": "config", "message": "config must be an object of settings"}]


def test_config_error_is_a_value_error_with_a_readable_message() -> None:
    with pytest.raises(ValueError, match=r"config\.region: region must be an AWS region code"):
        parse_config(with_(MINIMAL, region="nowhere"))


def test_region_set_covers_partitions() -> None:
    for region in ("us-east-1", "ap-southeast-7", "mx-central-1", "il-central-1", "us-gov-west-1", "cn-north-1"):
        assert region in AWS_REGIONS
    assert isinstance(AWS_REGIONS, frozenset)


# -- kms_key_id -------------------------------------------------------------------------------------------------

KMS_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_kms_key_with_aws_kms_is_valid() -> None:
    config = parse_config(with_(MINIMAL, server_side_encryption="aws:kms", kms_key_id=KMS_ARN))
    assert config.server_side_encryption == "aws:kms"
    assert config.kms_key_id == KMS_ARN


@pytest.mark.parametrize(
    ("sse", "kms", "message"),
    [
        ("aws:kms", _DROP, "kms_key_id is required when server_side_encryption is aws:kms; give the KMS key ARN"),
        ("aws:kms", "", "kms_key_id is required when server_side_encryption is aws:kms; give the KMS key ARN"),
        (
            "AES256",
            KMS_ARN,
            "kms_key_id is only allowed when server_side_encryption is aws:kms; remove it or set aws:kms",
        ),
        (
            _DROP,
            KMS_ARN,
            "kms_key_id is only allowed when server_side_encryption is aws:kms; remove it or set aws:kms",
        ),
    ],
)
def test_kms_key_rules(sse: Any, kms: Any, message: str) -> None:
    errors = errors_of(with_(MINIMAL, server_side_encryption=sse, kms_key_id=kms))
    assert errors == [{"field": "config.kms_key_id", "message": message}]


def test_kms_rule_is_reported_together_with_other_errors() -> None:
    errors = errors_of(with_(MINIMAL, region="nowhere", server_side_encryption="aws:kms"))
    assert [e["field"] for e in errors] == ["config.region", "config.kms_key_id"]


def test_wrong_sse_is_reported_without_a_kms_error() -> None:
    errors = errors_of(with_(MINIMAL, server_side_encryption="KMS", kms_key_id=KMS_ARN))
    assert [e["field"] for e in errors] == ["config.server_side_encryption"]


def test_direct_construction_attaches_kms_error_to_its_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        IntegrationConfig(**with_(MINIMAL, server_side_encryption="aws:kms"))
    assert [e["loc"] for e in caught.value.errors()] == [("kms_key_id",)]


# -- secrets never leak -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", "****"),
        ("abc", "****"),
        ("abcd", "****"),
        ("abcde", "****bcde"),
        (ACCESS_KEY_ID, "****MPLE"),
    ],
)
def test_redact(value: str | None, expected: str | None) -> None:
    assert redact(value) == expected


def test_public_dict_redacts_secrets_and_is_json_able() -> None:
    import json

    config = parse_config(with_(SEED_CONFIG, session_token=SESSION_TOKEN))
    public = config.public_dict()
    assert public["access_key_id"] == "****MPLE"
    assert public["secret_access_key"] == "****EKEY"
    assert public["session_token"] == "****9876"
    assert public["bucket"] == "datafly-events-production"
    text = json.dumps(public)
    assert_no_secret(text)
    assert set(public) == set(IntegrationConfig.model_fields)


def test_public_dict_without_session_token() -> None:
    assert parse_config(MINIMAL).public_dict()["session_token"] is None


def test_secret_fields() -> None:
    assert IntegrationConfig.secret_fields == (
        "access_key_id",
        "secret_access_key",
        "session_token",
        "iceberg_catalog_uri",
    )


def test_repr_and_str_never_show_secrets() -> None:
    config = parse_config(with_(SEED_CONFIG, session_token=SESSION_TOKEN))
    assert_no_secret(repr(config))
    assert_no_secret(str(config))


@pytest.mark.parametrize(
    "changes",
    [
        {"access_key_id": 12345678901234},
        {"secret_access_key": ["wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]},
        {"session_token": {"t": SESSION_TOKEN}},
        {"region": SECRET_ACCESS_KEY},
        {"bucket": SECRET_ACCESS_KEY},
        {"storage_class": SECRET_ACCESS_KEY},
        {"prefix": SECRET_ACCESS_KEY},
        {"endpoint_url": SECRET_ACCESS_KEY},
        {"kms_key_id": SECRET_ACCESS_KEY},
        {"batch_max_events": SECRET_ACCESS_KEY},
    ],
)
def test_error_messages_never_echo_input_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(with_(MINIMAL, **changes))
    assert_no_secret(str(caught.value.errors))
    assert_no_secret(str(caught.value))
    assert_no_secret(repr(caught.value))


def test_surrounding_whitespace_of_keys_is_dropped() -> None:
    config = parse_config(with_(MINIMAL, access_key_id=f" {ACCESS_KEY_ID}\n"))
    assert config.access_key_id.get_secret_value() == ACCESS_KEY_ID


@pytest.mark.parametrize("field", ["session_token", "server_side_encryption", "kms_key_id", "endpoint_url"])
def test_empty_optional_values_mean_not_set(field: str) -> None:
    assert getattr(parse_config(with_(MINIMAL, **{field: ""})), field) is None


@pytest.mark.parametrize("value", ["", None])
def test_an_empty_partition_time_is_the_default(value: Any) -> None:
    assert parse_config(with_(MINIMAL, partition_time=value)).partition_time == "received_at"


def test_null_batch_limits_and_partition_bound_mean_their_defaults() -> None:
    """A settings form (or a PATCH) that clears a batch limit or the partition bound gets the default back."""
    config = parse_config(with_(MINIMAL, batch_max_events=None, batch_max_bytes=None, partition_time_bound_s=None))
    assert (config.batch_max_events, config.batch_max_bytes) == (100_000, 64 * 1024 * 1024)
    assert config.partition_time_bound_s == 7 * 24 * 3600


# -- derived values ---------------------------------------------------------------------------------------------


def test_effective_values_fall_back_to_settings() -> None:
    settings = Settings(flush_interval_s=45.0, buffer_max_bytes=1_000_000)
    config = parse_config(MINIMAL)
    assert config.effective_flush_interval_s(settings) == 45.0
    assert config.effective_buffer_max_bytes(settings) == 1_000_000


def test_effective_values_prefer_the_integration() -> None:
    settings = Settings(flush_interval_s=45.0, buffer_max_bytes=1_000_000)
    config = parse_config(with_(MINIMAL, flush_interval_s=10, buffer_max_bytes=2048))
    assert config.effective_flush_interval_s(settings) == 10.0
    assert config.effective_buffer_max_bytes(settings) == 2048


def test_is_custom_endpoint() -> None:
    assert parse_config(with_(MINIMAL, endpoint_url="http://127.0.0.1:9000")).is_custom_endpoint is True
