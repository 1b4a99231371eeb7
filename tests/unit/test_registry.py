from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import fakeredis
import orjson
import pytest

from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN, install_body
from workers import clock, crypto
from workers.errors import ConfigError
from workers.events import blueprint
from workers.integrations import bodies, registry
from workers.integrations.config import parse_config
from workers.settings import Settings, get_settings
from workers.store import keys

# The documented install request body.
SEED_BODY: dict[str, Any] = install_body()


def body(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(SEED_BODY)
    data.update(changes)
    return data


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def stored_keys(r: fakeredis.FakeRedis) -> list[bytes]:
    return sorted(r.keys("*"))


# -- install ----------------------------------------------------------------------------------------------------


def test_install_seed_body(r: fakeredis.FakeRedis) -> None:
    before = clock.now()
    integration = registry.install(r, SEED_BODY)
    assert integration.name == "Amazon S3"
    assert integration.variant == "default"
    assert integration.delivery_mode == "server_side"
    assert integration.enabled is True
    assert integration.source_id is None
    assert integration.config.bucket == "datafly-events-production"
    assert integration.config.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY
    assert integration.created_at == integration.updated_at
    assert integration.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= integration.created_at <= clock.now()
    assert registry.ids(r) == [integration.id]
    assert r.exists(keys.integration(integration.id))


def test_install_defaults_and_options(r: fakeredis.FakeRedis) -> None:
    integration = registry.install(
        r, {"name": "  Lake  ", "config": SEED_BODY["config"], "enabled": False, "source_id": "web-1"}
    )
    assert integration.name == "Lake"
    assert integration.variant == "default"
    assert integration.delivery_mode == "server_side"
    assert integration.enabled is False
    assert integration.source_id == "web-1"


def test_ids_are_uuid4(r: fakeredis.FakeRedis) -> None:
    import uuid

    a = registry.install(r, SEED_BODY)
    b = registry.install(r, SEED_BODY)
    assert a.id != b.id
    assert uuid.UUID(a.id).version == 4


def test_secrets_are_encrypted_in_redis(r: fakeredis.FakeRedis) -> None:
    config = dict(SEED_BODY["config"], session_token=SESSION_TOKEN)
    integration = registry.install(r, body(config=config))
    raw = r.get(keys.integration(integration.id))
    assert raw is not None
    for secret in (ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN):
        assert secret.encode() not in raw
    record = orjson.loads(raw)
    assert crypto.decrypt(record["secrets"]["secret_access_key"]) == SECRET_ACCESS_KEY
    assert record["config"]["bucket"] == "datafly-events-production"
    loaded = registry.get(r, integration.id)
    assert loaded.config.session_token is not None
    assert loaded.config.session_token.get_secret_value() == SESSION_TOKEN


@pytest.mark.parametrize(
    ("bad_body", "expected"),
    [
        (body(name=""), [{"field": "name", "message": "name must be 1 to 200 characters long (got 0)"}]),
        (body(name="x" * 201), [{"field": "name", "message": "name must be 1 to 200 characters long (got 201)"}]),
        (body(name=5), [{"field": "name", "message": "name must be a string of 1 to 200 characters"}]),
        (
            {k: v for k, v in SEED_BODY.items() if k != "name"},
            [{"field": "name", "message": "name is required"}],
        ),
        (
            {k: v for k, v in SEED_BODY.items() if k != "config"},
            [{"field": "config", "message": "config is required"}],
        ),
        (body(variant="eu"), [{"field": "variant", "message": "variant must be one of default, parquet, iceberg"}]),
        (
            body(delivery_mode="client_side"),
            [{"field": "delivery_mode", "message": "delivery_mode must be one of server_side"}],
        ),
        (body(enabled="yes"), [{"field": "enabled", "message": "enabled must be true or false"}]),
        (
            body(source_id=""),
            [{"field": "source_id", "message": "source_id must be a string of 1 to 200 characters, or omitted"}],
        ),
        (
            body(token="abc"),
            [
                {
                    "field": "token",
                    "message": "token is not a known install field; allowed fields are name, variant, config, "
                    "blueprint, delivery_mode, enabled, source_id",
                }
            ],
        ),
        (body(config=[]), [{"field": "config", "message": "config must be an object of settings"}]),
        ([SEED_BODY], [{"field": "body", "message": "the install body must be a JSON object"}]),
    ],
)
def test_invalid_body_stores_nothing(r: fakeredis.FakeRedis, bad_body: Any, expected: list[dict[str, str]]) -> None:
    with pytest.raises(ConfigError) as caught:
        registry.install(r, bad_body)
    assert caught.value.errors == expected
    assert stored_keys(r) == []


def test_all_body_errors_are_collected_with_field_paths(r: fakeredis.FakeRedis) -> None:
    bad = body(
        name="",
        variant="x",
        config=dict(SEED_BODY["config"], region="moon-1", prefix="/p/"),
        blueprint={"consent": {"require": []}, "drop_fields": "context.ip"},
    )
    with pytest.raises(ConfigError) as caught:
        registry.install(r, bad)
    assert [e["field"] for e in caught.value.errors] == [
        "name",
        "variant",
        "config.region",
        "config.prefix",
        "blueprint.consent.require",
        "blueprint.drop_fields",
    ]
    assert stored_keys(r) == []
    assert SECRET_ACCESS_KEY not in str(caught.value)


# -- variants and blueprints -------------------------------------------------------------------------------------

BLUEPRINT = {
    "consent": {"require": ["analytics"], "missing": "allow"},
    "events": {"exclude": ["identify"]},
    "drop_fields": ["context.ip"],
    "hash_fields": ["user_id", "traits.email"],
}


def test_the_variants_follow_the_catalog(r: fakeredis.FakeRedis) -> None:
    from workers.integrations import catalog
    from workers.sink import object_keys

    assert bodies.VARIANTS == catalog.variant_ids() == ("default", "parquet", "iceberg")
    assert set(bodies.VARIANTS) == set(object_keys.SUFFIXES)
    assert registry.install(r, body(variant="parquet")).variant == "parquet"
    registry.clear_cache()
    assert [i.variant for i in registry.list_all(r)] == ["parquet"]


def test_an_install_without_blueprint_gets_the_default(r: fakeredis.FakeRedis) -> None:
    for installed in (
        registry.install(r, SEED_BODY),
        registry.install(r, body(blueprint=None)),
        registry.install(r, body(blueprint={})),
    ):
        assert installed.blueprint == blueprint.DEFAULT
        assert installed.rules is None  # forwarding all events: nothing to apply
        assert installed.public()["blueprint"] == {
            "consent": None,
            "events": None,
            "drop_fields": [],
            "hash_fields": [],
        }
        assert installed.hash_key is not None  # ready for a later blueprint with hash_fields


def test_the_blueprint_is_stored_and_loaded(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, body(blueprint=BLUEPRINT))
    registry.clear_cache()
    loaded = registry.get(r, installed.id)
    assert loaded == installed
    assert loaded.public()["blueprint"] == BLUEPRINT
    assert orjson.loads(r.get(keys.integration(installed.id)))["blueprint"] == BLUEPRINT
    rules = loaded.rules
    assert rules is not None and loaded.rules is rules  # compiled once per loaded record
    event = {"type": "track", "event": "x", "user_id": "u-1", "context": {"ip": "203.0.113.7"}}
    out = rules.apply(event)
    assert isinstance(out, dict) and "ip" not in out["context"] and out["user_id"] != "u-1"
    assert rules.apply({"type": "identify", "user_id": "u"}) == "filtered_out"


def test_the_hash_key_is_per_integration_encrypted_and_never_shown(r: fakeredis.FakeRedis) -> None:
    a = registry.install(r, body(blueprint=BLUEPRINT))
    b = registry.install(r, body(blueprint=BLUEPRINT))
    assert a.hash_key is not None and b.hash_key is not None
    key_a = a.hash_key.get_secret_value()
    assert len(bytes.fromhex(key_a)) == 32 and key_a != b.hash_key.get_secret_value()
    raw = r.get(keys.integration(a.id))
    assert key_a.encode() not in raw
    record = orjson.loads(raw)
    assert crypto.decrypt(record["secrets"]["hash_key"]) == key_a
    for text in (repr(a), str(a), orjson.dumps(a.public()).decode(), repr(a.rules), repr(a.hash_key)):
        assert key_a not in text
    event = {"type": "track", "event": "x", "user_id": "u-1"}
    assert a.rules.apply(event)["user_id"] != b.rules.apply(event)["user_id"]  # type: ignore[union-attr,index]


def test_changing_the_blueprint_keeps_the_hash_key(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    updated = registry.update(r, installed.id, blueprint=blueprint.parse_blueprint(BLUEPRINT))
    assert updated.blueprint.hash_fields == ("user_id", "traits.email")
    assert updated.hash_key == installed.hash_key
    registry.clear_cache()
    assert registry.get(r, installed.id).hash_key == installed.hash_key
    reset = registry.update(r, installed.id, blueprint=blueprint.DEFAULT)
    assert reset.blueprint.is_default and reset.hash_key == installed.hash_key


def test_a_record_from_before_blueprints_loads_with_the_default_and_gets_a_key_when_written(
    r: fakeredis.FakeRedis,
) -> None:
    installed = registry.install(r, SEED_BODY)
    record = orjson.loads(r.get(keys.integration(installed.id)))
    del record["blueprint"], record["secrets"]["hash_key"]
    r.set(keys.integration(installed.id), orjson.dumps(record))
    registry.clear_cache()
    old = registry.get(r, installed.id)
    assert old.blueprint == blueprint.DEFAULT and old.hash_key is None and old.rules is None
    assert registry.reencrypt(r) == 1
    registry.clear_cache()
    assert registry.get(r, installed.id).hash_key is not None


def test_install_without_secret_key_stores_nothing(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNAL_SECRET_KEY")
    get_settings.cache_clear()
    with pytest.raises(crypto.SecretKeyMissing):
        registry.install(r, SEED_BODY)
    assert stored_keys(r) == []


# -- get / list / ids ------------------------------------------------------------------------------------------


def test_get_returns_what_was_installed(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, body(source_id="src-1"))
    registry.clear_cache()
    loaded = registry.get(r, installed.id)
    assert loaded.id == installed.id
    assert loaded.public() == installed.public()
    assert loaded.config == installed.config
    assert loaded.created_at == installed.created_at
    assert loaded.updated_at == installed.updated_at


def test_get_unknown(r: fakeredis.FakeRedis) -> None:
    with pytest.raises(registry.UnknownIntegration) as caught:
        registry.get(r, "nope")
    assert isinstance(caught.value, LookupError)
    assert str(caught.value) == "integration nope is not installed"
    assert caught.value.integration_id == "nope"


def test_get_with_a_different_key_is_a_clear_mismatch(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = registry.install(r, SEED_BODY)
    registry.clear_cache()
    monkeypatch.setenv("SIGNAL_SECRET_KEY", crypto.generate_key())
    get_settings.cache_clear()
    with pytest.raises(crypto.SecretKeyMismatch):
        registry.get(r, installed.id)


def test_list_all_sorted_by_created_at(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    times = iter(
        [
            datetime(2026, 5, 12, 10, 0, 2, tzinfo=UTC),
            datetime(2026, 5, 12, 10, 0, 0, tzinfo=UTC),
            datetime(2026, 5, 12, 10, 0, 1, tzinfo=UTC),
        ]
    )
    monkeypatch.setattr(registry.clock, "now_ms", lambda: clock.to_ms(next(times)))
    c = registry.install(r, body(name="c"))
    a = registry.install(r, body(name="a"))
    b = registry.install(r, body(name="b"))
    assert [i.name for i in registry.list_all(r)] == ["a", "b", "c"]
    assert registry.ids(r) == sorted([a.id, b.id, c.id])


def test_list_all_empty(r: fakeredis.FakeRedis) -> None:
    assert registry.list_all(r) == []
    assert registry.ids(r) == []


def test_list_all_skips_an_index_entry_without_record(r: fakeredis.FakeRedis) -> None:
    kept = registry.install(r, SEED_BODY)
    r.sadd(keys.INTEGRATIONS, "ghost")
    assert [i.id for i in registry.list_all(r)] == [kept.id]


def test_ids_with_decoded_responses() -> None:
    r = fakeredis.FakeRedis(decode_responses=True)
    installed = registry.install(r, SEED_BODY)
    assert registry.ids(r) == [installed.id]
    registry.clear_cache()
    assert registry.get(r, installed.id).name == "Amazon S3"
    assert [i.id for i in registry.list_all(r)] == [installed.id]


# -- public view and repr --------------------------------------------------------------------------------------


def test_public_view(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    public = installed.public()
    assert public["id"] == installed.id
    assert public["name"] == "Amazon S3"
    assert public["enabled"] is True
    assert public["created_at"].endswith("Z")
    assert public["config"]["access_key_id"] == "****MPLE"
    assert public["config"]["secret_access_key"] == "****EKEY"
    text = orjson.dumps(public).decode()
    assert ACCESS_KEY_ID not in text
    assert SECRET_ACCESS_KEY not in text


def test_repr_never_shows_secrets(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, body(config=dict(SEED_BODY["config"], session_token=SESSION_TOKEN)))
    for text in (repr(installed), str(installed), repr([installed])):
        assert ACCESS_KEY_ID not in text
        assert SECRET_ACCESS_KEY not in text
        assert SESSION_TOKEN not in text
        assert installed.id in text


def test_integration_is_frozen(r: fakeredis.FakeRedis) -> None:
    import dataclasses

    installed = registry.install(r, SEED_BODY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        installed.enabled = False  # type: ignore[misc]


# -- update / enable / delete ----------------------------------------------------------------------------------


def test_update_config_replaces_config_and_keeps_identity(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    new_config = {
        "bucket_name": "other-bucket",
        "region": "eu-central-1",
        "access_key_id": "AKIANEWKEY000000ABCD",
        "secret_access_key": "newsecret/abcdefghijklmnopqrstuvwxyz0123",
    }
    updated = registry.update(r, installed.id, config=parse_config(new_config))
    assert updated.id == installed.id
    assert updated.name == installed.name
    assert updated.created_at == installed.created_at
    assert updated.updated_at >= installed.updated_at
    assert updated.config.bucket == "other-bucket"
    assert updated.config.prefix == ""  # replaced, not merged
    assert updated.config.server_side_encryption is None
    loaded = registry.get(r, installed.id)
    assert loaded.config.bucket == "other-bucket"
    assert loaded.config.secret_access_key.get_secret_value() == "newsecret/abcdefghijklmnopqrstuvwxyz0123"
    raw = r.get(keys.integration(installed.id))
    assert b"newsecret/abcdefghijklmnopqrstuvwxyz0123" not in raw
    assert registry.ids(r) == [installed.id]


def test_update_config_invalid_changes_nothing(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    raw_before = r.get(keys.integration(installed.id))
    with pytest.raises(ConfigError) as caught:
        registry.update(r, installed.id, config=parse_config(dict(SEED_BODY["config"], storage_class="COLD")))
    assert [e["field"] for e in caught.value.errors] == ["config.storage_class"]
    assert r.get(keys.integration(installed.id)) == raw_before


def test_update_unknown(r: fakeredis.FakeRedis) -> None:
    with pytest.raises(registry.UnknownIntegration):
        registry.update(r, "nope", config=parse_config(SEED_BODY["config"]))
    assert stored_keys(r) == []


def test_set_enabled(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    assert registry.get(r, installed.id).enabled is True
    disabled = registry.set_enabled(r, installed.id, False)
    assert disabled.enabled is False
    assert registry.get(r, installed.id).enabled is False
    assert registry.set_enabled(r, installed.id, True).enabled is True
    assert registry.get(r, installed.id).enabled is True
    assert registry.get(r, installed.id).config == installed.config


def test_set_enabled_unknown(r: fakeredis.FakeRedis) -> None:
    with pytest.raises(registry.UnknownIntegration):
        registry.set_enabled(r, "nope", True)


def test_delete_removes_only_record_and_index(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    other = registry.install(r, SEED_BODY)
    r.rpush(keys.buffer(installed.id, "2026051210"), b"{}")
    registry.get(r, installed.id)
    registry.delete(r, installed.id)
    assert registry.ids(r) == [other.id]
    assert not r.exists(keys.integration(installed.id))
    assert r.exists(keys.buffer(installed.id, "2026051210"))
    with pytest.raises(registry.UnknownIntegration):
        registry.get(r, installed.id)
    with pytest.raises(registry.UnknownIntegration):
        registry.delete(r, installed.id)


# -- the per-process cache of get -------------------------------------------------------------------------------


def test_get_is_cached_for_the_ttl(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = registry.install(r, SEED_BODY)
    now = [1000.0]
    monkeypatch.setattr(registry.time, "monotonic", lambda: now[0])
    first = registry.get(r, installed.id)
    # Another process changes the record: this process keeps its copy until the TTL ends.
    record = orjson.loads(r.get(keys.integration(installed.id)))
    record["name"] = "renamed elsewhere"
    r.set(keys.integration(installed.id), orjson.dumps(record))
    now[0] += registry.GET_CACHE_TTL_S / 2
    assert registry.get(r, installed.id) is first
    now[0] += registry.GET_CACHE_TTL_S
    assert registry.get(r, installed.id).name == "renamed elsewhere"


def test_cache_ttl_is_one_second_and_follows_the_setting() -> None:
    assert registry.GET_CACHE_TTL_S == 1.0 == Settings().integration_cache_ttl_s


def test_a_max_age_of_zero_reads_the_record_every_time(r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    installed = registry.install(r, SEED_BODY)
    monkeypatch.setattr(registry.time, "monotonic", lambda: 1000.0)  # no time passes at all
    assert registry.get(r, installed.id, max_age_s=0).name == installed.name
    record = orjson.loads(r.get(keys.integration(installed.id)))
    record["name"] = "renamed elsewhere"
    r.set(keys.integration(installed.id), orjson.dumps(record))
    assert registry.get(r, installed.id).name == installed.name  # the default keeps this process's copy ...
    assert registry.get(r, installed.id, max_age_s=0).name == "renamed elsewhere"  # ... zero reads it again


def test_changes_in_this_process_invalidate_the_cache(r: fakeredis.FakeRedis) -> None:
    installed = registry.install(r, SEED_BODY)
    registry.get(r, installed.id)
    registry.set_enabled(r, installed.id, False)
    assert registry.get(r, installed.id).enabled is False
    registry.update(r, installed.id, config=parse_config(dict(SEED_BODY["config"], prefix="other/")))
    assert registry.get(r, installed.id).config.prefix == "other/"
    registry.delete(r, installed.id)
    with pytest.raises(registry.UnknownIntegration):
        registry.get(r, installed.id)


# -- key rotation -----------------------------------------------------------------------------------------------


def test_reencrypt_moves_secrets_to_the_new_key(
    r: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch, secret_key: str
) -> None:
    installed = registry.install(r, SEED_BODY)
    new_key = crypto.generate_key()
    monkeypatch.setenv("SIGNAL_SECRET_KEY", f"{new_key},{secret_key}")
    get_settings.cache_clear()
    assert registry.reencrypt(r) == 1
    monkeypatch.setenv("SIGNAL_SECRET_KEY", new_key)
    get_settings.cache_clear()
    registry.clear_cache()
    assert registry.get(r, installed.id).config.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY
