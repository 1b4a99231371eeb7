"""Sources, write keys and the routing of a source's events."""

from __future__ import annotations

import fakeredis
import pytest

from workers.errors import ConfigError
from workers.integrations import sources
from workers.settings import Settings
from workers.store import keys


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


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
    assert sources.get(r, a.id).public() == {
        "id": a.id,
        "name": "Website",
        "write_key": a.write_key,
        "created_at": a.public()["created_at"],
        "allowed_origins": [],
        "rate_limit_eps": None,
    }
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


def test_ttl_cache_forgets_after_its_ttl():
    cache = sources.TtlCache(0.0)
    cache.put("a", "b")
    assert cache.get("a") is None
    cache = sources.TtlCache(60.0)
    cache.put("a", "b")
    assert cache.get("a") == "b"


# -- settings: allowed origins and rate limit ---------------------------------------------------------------------


def test_settings_are_stored_normalised_and_shown(r):
    source = sources.create_from(
        r,
        {
            "name": "Shop",
            "allowed_origins": ["https://WWW.Example.com:443", "*.shop.io", "https://www.example.com"],
            "rate_limit_eps": 250,
        },
    )
    stored = sources.get(r, source.id)
    assert stored.allowed_origins == ("https://www.example.com", "*.shop.io")
    assert stored.rate_limit_eps == 250
    view = sources.view(r, stored, Settings(source_rate_limit_eps=1000))
    assert view["effective_rate_limit_eps"] == 250 and view["integrations"] == []
    assert view["refused"] == {
        "rate_limited": {"requests": 0, "events": 0},
        "origin_not_allowed": {"requests": 0, "events": 0},
    }
    assert (
        sources.view(r, sources.create(r, "Default limit"), Settings(source_rate_limit_eps=77))[
            "effective_rate_limit_eps"
        ]
        == 77
    )


def test_update_changes_only_the_given_fields(r):
    source = sources.create_from(r, {"name": "Shop", "allowed_origins": ["https://a.example"], "rate_limit_eps": 5})
    updated = sources.update(r, source.id, {"rate_limit_eps": None})
    assert updated.rate_limit_eps is None and updated.allowed_origins == ("https://a.example",)
    assert updated.write_key == source.write_key and updated.name == "Shop"
    updated = sources.update(r, source.id, {"allowed_origins": None, "name": "Renamed", "rate_limit_eps": 0})
    assert sources.get(r, source.id) == updated
    assert updated.allowed_origins == () and updated.name == "Renamed" and updated.rate_limit_eps == 0
    assert sources.source_for_write_key(r, source.write_key) == source.id
    with pytest.raises(sources.UnknownSource):
        sources.update(r, "nope", {"name": "x"})


def test_every_wrong_field_gets_one_message_and_nothing_changes(r):
    source = sources.create_from(r, {"name": "Shop", "rate_limit_eps": 5})
    before = r.get(keys.source(source.id))
    with pytest.raises(ConfigError) as info:
        sources.update(
            r,
            source.id,
            {
                "name": "",
                "allowed_origins": ["https://ok.example", "nope", "*"],
                "rate_limit_eps": -1,
                "write_key": "wk_mine",
            },
        )
    errors = info.value.errors
    assert [e["field"] for e in errors] == [
        "write_key",
        "name",
        "rate_limit_eps",
        "allowed_origins[1]",
        "allowed_origins[2]",
    ]
    assert all(e["message"] for e in errors)
    assert "scheme://host" in errors[3]["message"] and "empty" in errors[4]["message"]
    assert r.get(keys.source(source.id)) == before
    for bad in (True, 1.5, "10", 1_000_001):
        with pytest.raises(ConfigError) as info:
            sources.update(r, source.id, {"rate_limit_eps": bad})
        assert info.value.errors[0]["field"] == "rate_limit_eps"
    for body in ([], "x", None):
        with pytest.raises(ConfigError) as info:
            sources.update(r, source.id, body)
        assert info.value.errors[0]["field"] == "body"
    with pytest.raises(ConfigError) as info:
        sources.create_from(r, {"allowed_origins": "https://a.example"})
    assert [e["field"] for e in info.value.errors] == ["name", "allowed_origins"]


def test_route_carries_the_policy_the_effective_limit_and_the_enabled_integrations(r):
    from workers.integrations import registry

    source = sources.create_from(r, {"name": "Shop", "allowed_origins": ["*.example.com"]})
    on = registry.install(r, _install_body(source.id)).id
    off = registry.install(r, _install_body(source.id)).id
    registry.set_enabled(r, off, False)
    route = sources.route(r, source.id, Settings(source_rate_limit_eps=123))
    assert route.integration_ids == (on,) and route.rate_limit_eps == 123
    assert route.origins.allows("https://www.example.com") and not route.origins.allows("https://example.org")


def _install_body(source_id):
    return {
        "name": "S3",
        "source_id": source_id,
        "config": {
            "bucket": "b-1",
            "region": "us-east-1",
            "access_key_id": "AKIA0000000000000000",
            "secret_access_key": "x" * 40,
        },
    }


def test_refusals_are_counted_locally_and_added_in_one_flush(r):
    counter = sources.Refusals()
    assert counter.add("s1", sources.RATE_LIMITED, 3) is True  # the caller schedules a flush
    assert counter.add("s1", sources.RATE_LIMITED, 2) is False  # one is due already
    assert counter.add("s2", sources.ORIGIN_NOT_ALLOWED, 0) is False
    assert sources.refusals(r, ["s1"])["s1"]["rate_limited"] == {"requests": 0, "events": 0}
    counter.flush(r)
    found = sources.refusals(r, ["s1", "s2"])
    assert found["s1"]["rate_limited"] == {"requests": 2, "events": 5}
    assert found["s2"]["origin_not_allowed"] == {"requests": 1, "events": 0}
    assert counter.add("s1", sources.RATE_LIMITED, 1) is True  # after a flush, the next one schedules again
    counter.flush(r)
    assert sources.refusals(r, ["s1"])["s1"]["rate_limited"] == {"requests": 3, "events": 6}


def test_refusals_survive_a_failed_flush(r):
    import redis as redis_lib

    counter = sources.Refusals()
    counter.add("s1", sources.RATE_LIMITED, 4)
    server = fakeredis.FakeServer()
    server.connected = False
    broken = fakeredis.FakeRedis(server=server)
    with pytest.raises(redis_lib.ConnectionError):
        counter.flush(broken)
    assert counter.add("s1", sources.RATE_LIMITED, 1) is True
    counter.flush(r)
    assert sources.refusals(r, ["s1"])["s1"]["rate_limited"] == {"requests": 2, "events": 5}
