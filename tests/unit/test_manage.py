"""The install path shared by the API, the console and the CLI: validation, the bucket check, the source."""

from __future__ import annotations

import fakeredis
import pytest

from workers.classify import HINTS
from workers.errors import ConfigError, Failure
from workers.integrations import manage, registry, sources
from workers.settings import get_settings
from workers.sink import bucket

BODY = {
    "name": "Amazon S3",
    "variant": "default",
    "config": {
        "bucket": "datafly-events-production",
        "region": "us-east-1",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
    "delivery_mode": "server_side",
}


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def bucket_ok(monkeypatch: pytest.MonkeyPatch) -> list:
    checked: list = []
    monkeypatch.setattr(bucket, "verify_bucket", lambda cfg, settings=None: checked.append(cfg.bucket))
    return checked


def test_install_without_source_goes_to_the_default_source_and_is_routed(r, bucket_ok):
    integ = manage.install_integration(r, dict(BODY), settings=get_settings())
    assert bucket_ok == ["datafly-events-production"]
    assert integ.source_id == sources.DEFAULT_SOURCE_ID
    assert sources.integration_ids(r, "default") == [integ.id]
    assert sources.enabled_integrations(r, "default") == [integ.id]
    registry.set_enabled(r, integ.id, False)
    assert sources.enabled_integrations(r, "default") == []
    registry.set_enabled(r, integ.id, True)
    registry.delete(r, integ.id)
    assert sources.integration_ids(r, "default") == []


def test_install_into_a_named_source(r, bucket_ok):
    src = sources.create(r, "Website")
    integ = manage.install_integration(r, {**BODY, "source_id": src.id}, settings=get_settings())
    assert sources.enabled_integrations(r, src.id) == [integ.id]
    assert sources.integration_ids(r, "default") == []


def test_install_into_an_unknown_source_is_a_field_error_and_stores_nothing(r, bucket_ok):
    with pytest.raises(ConfigError) as info:
        manage.install_integration(r, {**BODY, "source_id": "nope"}, settings=get_settings())
    assert info.value.errors == [{"field": "source_id", "message": "source nope does not exist; create it first"}]
    assert r.keys("*") == []


def test_a_failed_bucket_check_stores_nothing(r, monkeypatch):
    failure = Failure(
        "NoSuchBucket", "GetBucketLocation: The specified bucket does not exist", True, HINTS["NoSuchBucket"], 404
    )
    monkeypatch.setattr(bucket, "verify_bucket", lambda cfg, settings=None: failure)
    with pytest.raises(manage.BucketCheckFailed) as info:
        manage.install_integration(r, dict(BODY), settings=get_settings())
    assert info.value.failure.hint == HINTS["NoSuchBucket"]
    assert r.keys("*") == []


def test_verify_false_skips_the_bucket_check_and_is_not_stored(r, monkeypatch):
    monkeypatch.setattr(bucket, "verify_bucket", lambda cfg, settings=None: pytest.fail("bucket checked"))
    integ = manage.install_integration(r, {**BODY, "verify": False}, settings=get_settings())
    assert registry.get(r, integ.id).name == "Amazon S3"


def test_verify_must_be_a_boolean(r, bucket_ok):
    with pytest.raises(ConfigError) as info:
        manage.install_integration(r, {**BODY, "verify": "no"}, settings=get_settings())
    assert info.value.errors == [{"field": "verify", "message": "verify must be true or false"}]


def test_validation_errors_come_before_the_bucket_check(r, bucket_ok):
    with pytest.raises(ConfigError) as info:
        manage.install_integration(
            r, {**BODY, "config": {**BODY["config"], "region": "moon-1"}}, settings=get_settings()
        )
    assert [e["field"] for e in info.value.errors] == ["config.region"]
    assert bucket_ok == []


# -- update: config, name, blueprint --------------------------------------------------------------------------------

BLUEPRINT = {
    "consent": {"require": ["analytics"], "missing": "deny"},
    "events": None,
    "drop_fields": ["context.ip"],
    "hash_fields": ["traits.email"],
}


def test_view_shows_the_integration_s_own_blueprint(r, bucket_ok):
    plain = manage.install_integration(r, dict(BODY), settings=get_settings())
    assert manage.view(plain)["blueprint"] == {"consent": None, "events": None, "drop_fields": [], "hash_fields": []}
    shaped = manage.install_integration(r, {**BODY, "blueprint": BLUEPRINT}, settings=get_settings())
    shown = manage.view(registry.get(r, shaped.id))
    assert shown["blueprint"] == BLUEPRINT and shown["type"] == "amazon_s3"
    assert "hash_key" not in str(shown) and shaped.hash_key.get_secret_value() not in str(shown)


def test_patching_the_blueprint_replaces_it_without_a_bucket_check(r, bucket_ok):
    integ = manage.install_integration(r, dict(BODY), settings=get_settings())
    checked = list(bucket_ok)
    updated = manage.update_integration(r, integ.id, {"blueprint": BLUEPRINT}, settings=get_settings())
    assert updated.public()["blueprint"] == BLUEPRINT
    assert bucket_ok == checked  # the bucket did not change: not checked again
    assert updated.config == integ.config and updated.name == integ.name
    narrowed = manage.update_integration(
        r, integ.id, {"blueprint": {"events": {"include": ["track"]}}}, settings=get_settings()
    )
    assert narrowed.public()["blueprint"] == {
        "consent": None,
        "events": {"include": ["track"]},
        "drop_fields": [],
        "hash_fields": [],
    }  # replaced as a whole
    reset = manage.update_integration(r, integ.id, {"blueprint": {}}, settings=get_settings())
    assert reset.blueprint.is_default and reset.rules is None


def test_every_wrong_field_of_a_patch_is_reported_and_nothing_changes(r, bucket_ok):
    integ = manage.install_integration(r, {**BODY, "blueprint": BLUEPRINT}, settings=get_settings())
    with pytest.raises(ConfigError) as info:
        manage.update_integration(
            r,
            integ.id,
            {
                "name": "",
                "config": {"region": "moon-1"},
                "blueprint": {"hash_fields": ["event_id"]},
                "variant": "parquet",
            },
            settings=get_settings(),
        )
    assert [e["field"] for e in info.value.errors] == ["variant", "name", "config.region", "blueprint.hash_fields"]
    assert info.value.errors[0]["message"].startswith("variant cannot be changed after install")
    assert registry.get(r, integ.id) == integ
