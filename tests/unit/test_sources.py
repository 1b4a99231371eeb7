"""Sources, write keys, routing of a source's events, and the install path shared by the API and the CLI."""

from __future__ import annotations

import fakeredis
import pytest

from workers import keys, registry, s3, sources
from workers.config import ConfigError
from workers.errors import HINTS, Failure
from workers.settings import get_settings

BODY = {
    "name": "Amazon S3",
    "variant": "default",
    "config": {"bucket": "datafly-events-production", "region": "us-east-1",
               "access_key_id": "AKIAIOSFODNN7EXAMPLE",
               "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
    "delivery_mode": "server_side",
}


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def bucket_ok(monkeypatch: pytest.MonkeyPatch) -> list:
    checked: list = []
    monkeypatch.setattr(s3, "verify_bucket", lambda cfg, settings=None: checked.append(cfg.bucket))
    return checked


def test_create_gives_a_random_write_key_found_by_its_digest_only(r):
    a = sources.create(r, " Website ")
    b = sources.create(r, "App")
    assert a.name == "Website" and a.write_key != b.write_key
    assert a.write_key.startswith("wk_") and len(a.write_key) >= 32
    assert sources.source_for_write_key(r, a.write_key) == a.id
    assert sources.source_for_write_key(r, b.write_key) == b.id
    assert sources.source_for_write_key(r, "wk_wrong") is None
    assert sources.source_for_write_key(r, "") is None
    dump = b"".join(r.get(k) or b"" for k in (keys.source(a.id), keys.source(b.id)))
    assert a.write_key.encode() not in dump  # encrypted at rest
    assert all(a.write_key not in k.decode() for k in r.keys("*"))  # never a key name
    assert a.write_key not in repr(a)


def test_get_list_and_public_view(r):
    a = sources.create(r, "Website")
    assert sources.get(r, a.id).write_key == a.write_key
    assert [s.id for s in sources.list_all(r)] == [a.id]
    assert sources.get(r, a.id).public() == {"id": a.id, "name": "Website", "write_key": a.write_key,
                                             "created_at": a.public()["created_at"]}
    with pytest.raises(sources.UnknownSource):
        sources.get(r, "nope")


@pytest.mark.parametrize("name", ["", "   ", 3, None, "a\nb", "x" * 201])
def test_bad_names_are_refused(r, name):
    with pytest.raises(ConfigError) as info:
        sources.create(r, name)
    assert info.value.errors[0]["field"] == "name"
    assert r.keys("*") == []


def test_the_default_source_is_created_once(r):
    first = sources.ensure_default(r)
    again = sources.ensure_default(r)
    assert first.id == again.id == sources.DEFAULT_SOURCE_ID
    assert first.write_key == again.write_key
    assert len(sources.list_all(r)) == 1


def test_install_without_source_goes_to_the_default_source_and_is_routed(r, bucket_ok):
    integ = sources.install_integration(r, dict(BODY), settings=get_settings())
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
    integ = sources.install_integration(r, {**BODY, "source_id": src.id}, settings=get_settings())
    assert sources.enabled_integrations(r, src.id) == [integ.id]
    assert sources.integration_ids(r, "default") == []


def test_install_into_an_unknown_source_is_a_field_error_and_stores_nothing(r, bucket_ok):
    with pytest.raises(ConfigError) as info:
        sources.install_integration(r, {**BODY, "source_id": "nope"}, settings=get_settings())
    assert info.value.errors == [{"field": "source_id", "message": "source nope does not exist; create it first"}]
    assert r.keys("*") == []


def test_a_failed_bucket_check_stores_nothing(r, monkeypatch):
    failure = Failure("NoSuchBucket", "GetBucketLocation: The specified bucket does not exist", True,
                      HINTS["NoSuchBucket"], 404)
    monkeypatch.setattr(s3, "verify_bucket", lambda cfg, settings=None: failure)
    with pytest.raises(sources.BucketCheckFailed) as info:
        sources.install_integration(r, dict(BODY), settings=get_settings())
    assert info.value.failure.hint == HINTS["NoSuchBucket"]
    assert r.keys("*") == []


def test_verify_false_skips_the_bucket_check_and_is_not_stored(r, monkeypatch):
    monkeypatch.setattr(s3, "verify_bucket", lambda cfg, settings=None: pytest.fail("bucket checked"))
    integ = sources.install_integration(r, {**BODY, "verify": False}, settings=get_settings())
    assert registry.get(r, integ.id).name == "Amazon S3"


def test_verify_must_be_a_boolean(r, bucket_ok):
    with pytest.raises(ConfigError) as info:
        sources.install_integration(r, {**BODY, "verify": "no"}, settings=get_settings())
    assert info.value.errors == [{"field": "verify", "message": "verify must be true or false"}]


def test_validation_errors_come_before_the_bucket_check(r, bucket_ok):
    with pytest.raises(ConfigError) as info:
        sources.install_integration(r, {**BODY, "config": {**BODY["config"], "region": "moon-1"}},
                                    settings=get_settings())
    assert [e["field"] for e in info.value.errors] == ["config.region"]
    assert bucket_ok == []


def test_ttl_cache_forgets_after_its_ttl():
    cache = sources.TtlCache(0.0)
    cache.put("a", "b")
    assert cache.get("a") is None
    cache = sources.TtlCache(60.0)
    cache.put("a", "b")
    assert cache.get("a") == "b"
