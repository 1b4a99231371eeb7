"""Sources, write keys and the routing of a source's events."""

from __future__ import annotations

import fakeredis
import pytest

from workers import keys, sources
from workers.config import ConfigError


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


def test_ttl_cache_forgets_after_its_ttl():
    cache = sources.TtlCache(0.0)
    cache.put("a", "b")
    assert cache.get("a") is None
    cache = sources.TtlCache(60.0)
    cache.put("a", "b")
    assert cache.get("a") == "b"
