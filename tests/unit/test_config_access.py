"""The settings of how an integration gets its credentials and how its objects are written: three credential modes,
each with the fields it needs and none it does not use; S3-compatible stores; tags; the bucket key."""

from __future__ import annotations

from typing import Any

import pytest

from workers.errors import ConfigError
from workers.integrations.checks import AWS_REGION_MESSAGE
from workers.integrations.config import parse_config

ROLE_ARN = "arn:aws:iam::123456789012:role/signal-writer"
KEYS = {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
BASE: dict[str, Any] = {"bucket": "my-bucket", "region": "eu-west-1"}


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return {e["field"]: e["message"] for e in caught.value.errors}


def test_a_key_pair_alone_is_the_default_as_in_the_setup_guide():
    cfg = parse_config({**BASE, **KEYS})
    assert cfg.credentials == "access_key" and cfg.role_arn is None
    assert cfg.public_dict()["credentials"] == "access_key"


def test_a_role_arn_alone_means_assume_role_with_the_fleets_identity():
    cfg = parse_config({**BASE, "role_arn": ROLE_ARN, "external_id": "ext-0123"})
    assert (cfg.credentials, cfg.access_key_id, cfg.role_session_name) == ("assume_role", None, None)
    with_keys = parse_config(
        {
            **BASE,
            **KEYS,
            "credentials": "assume_role",
            "role_arn": ROLE_ARN,
            "external_id": "ext-0123",
            "role_session_name": "signal-team-a",
        }
    )
    assert with_keys.access_key_id is not None  # the key pair assumes the role


def test_each_mode_asks_for_what_it_needs_and_refuses_what_it_does_not_use():
    assert set(errors_of({**BASE, "credentials": "access_key"})) == {"config.access_key_id", "config.secret_access_key"}
    role_errors = errors_of({**BASE, "credentials": "assume_role"})
    assert set(role_errors) == {"config.role_arn", "config.external_id"}
    assert "the ExternalId its trust policy requires" in role_errors["config.external_id"]
    assert errors_of(
        {
            **BASE,
            "credentials": "assume_role",
            "role_arn": ROLE_ARN,
            "external_id": "ext-0123",
            "access_key_id": KEYS["access_key_id"],
        }
    ) == {
        "config.secret_access_key": "give both access_key_id and secret_access_key (the identity that assumes the "
        "role), or neither (the fleet's own identity assumes it)"
    }
    fleet = errors_of({**BASE, **KEYS, "credentials": "fleet", "role_arn": ROLE_ARN})
    assert set(fleet) == {"config.access_key_id", "config.secret_access_key", "config.role_arn"}
    assert "the fleet's own AWS identity writes" in fleet["config.role_arn"]
    assert errors_of({**BASE, **KEYS, "role_arn": ROLE_ARN, "credentials": "access_key"}) == {
        "config.role_arn": "role_arn is only used with credentials assume_role"
    }
    assert parse_config({**BASE, "credentials": "fleet"}).credentials == "fleet"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("credentials", "instance_profile"),
        ("role_arn", "arn:aws:iam::123:role/too-short-account"),
        ("role_arn", "arn:aws:s3:::not-a-role"),
        ("external_id", "x"),  # 2 characters at least
        ("external_id", "has space"),
        ("external_id", "e" * 1225),
        ("role_session_name", "a" * 65),
        ("role_session_name", "bad/slash"),
        ("addressing_style", "dns"),
        ("checksums", "always"),
        ("object_tags", {"aws:reserved": "x"}),
        ("object_tags", {f"k{i}": "v" for i in range(11)}),
        ("object_tags", {"k": "a&b"}),
        ("object_tags", "no-equals-sign"),
        ("bucket_key_enabled", "yes"),
    ],
)
def test_a_wrong_value_names_its_field_and_what_is_allowed(field: str, value: Any):
    data = {**BASE, "role_arn": ROLE_ARN, "external_id": "ext-0123", field: value}
    errors = errors_of(data)
    assert list(errors) == [f"config.{field}"], errors
    assert field in errors[f"config.{field}"]


def test_an_external_id_of_the_widest_allowed_form_is_accepted():
    allowed = "Ab9_+=,.@:/-" + "x" * 1212
    assert parse_config({**BASE, "role_arn": ROLE_ARN, "external_id": allowed}).external_id == allowed
    assert parse_config(
        {**BASE, "role_arn": "arn:aws-cn:iam::123456789012:role/path/to/role", "external_id": "ab"}
    ).role_arn.startswith("arn:aws-cn:")


def test_checksums_default_to_when_required_for_an_s3_compatible_store_only():
    assert parse_config({**BASE, **KEYS}).effective_checksums == "auto"
    store = parse_config({**BASE, **KEYS, "endpoint_url": "https://minio.example.com"})
    assert (store.checksums, store.effective_checksums, store.addressing_style) == (None, "when_required", "auto")
    assert (
        parse_config(
            {**BASE, **KEYS, "endpoint_url": "https://x.example.com", "checksums": "auto", "addressing_style": "path"}
        ).effective_checksums
        == "auto"
    )


def test_tags_come_as_an_object_or_as_the_text_a_form_writes():
    tags = {"team": "analytics", "cost center": "a+b=c:d/e@f.g_h-i"}
    assert parse_config({**BASE, **KEYS, "object_tags": tags}).object_tags == tags
    text = parse_config({**BASE, **KEYS, "object_tags": "team=analytics, cost center=a+b=c:d/e@f.g_h-i"})
    assert text.object_tags == tags
    assert parse_config({**BASE, **KEYS, "object_tags": ""}).object_tags == {}


def test_the_bucket_key_goes_with_sse_kms_only():
    kms = {"server_side_encryption": "aws:kms", "kms_key_id": "arn:aws:kms:eu-west-1:123456789012:key/k"}
    assert parse_config({**BASE, **KEYS, **kms, "bucket_key_enabled": True}).bucket_key_enabled
    assert parse_config({**BASE, **KEYS, **kms, "bucket_key_enabled": "true"}).bucket_key_enabled  # a form's select
    assert errors_of({**BASE, **KEYS, "bucket_key_enabled": True}) == {
        "config.bucket_key_enabled": "bucket_key_enabled is only used with server_side_encryption aws:kms (S3 "
        "Bucket Keys are for SSE-KMS)"
    }


def test_problems_of_fields_and_between_fields_are_reported_together():
    errors = errors_of({**BASE, "region": "mars-1", "credentials": "assume_role", "external_id": "ok-id"})
    assert set(errors) == {"config.region", "config.role_arn"}


@pytest.mark.parametrize("region", ["auto", "us-west-004", "garage"])
def test_a_compatible_store_signs_with_a_region_of_its_own(region: str) -> None:
    cfg = parse_config({**BASE, **KEYS, "region": region, "endpoint_url": "https://abc.r2.cloudflarestorage.com"})
    assert cfg.region == region
    with pytest.raises(ConfigError) as raised:
        parse_config({**BASE, **KEYS, "region": region})  # on Amazon S3 only AWS's regions
    assert raised.value.errors == [{"field": "config.region", "message": AWS_REGION_MESSAGE}]
