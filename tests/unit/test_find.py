"""Finding an event inside a buffer or batch of chunks: the line is cut out of its chunk, whatever its place."""

from __future__ import annotations

import gzip

import fakeredis
import orjson
import pytest

from workers.integrations import find


def line(event_id: str, **extra: object) -> bytes:
    return orjson.dumps({"event_id": event_id, "type": "track", **extra})


@pytest.mark.parametrize("stored", ["text", "compressed"])
def test_an_event_is_found_at_any_place_of_any_chunk_and_a_nested_id_is_not_it(stored):
    r = fakeredis.FakeRedis()
    decoy = line("a-2", properties={"event_id": "wanted"})  # the needle inside another event's properties
    chunks = [
        b"\n".join([line("a-1"), decoy, line("a-3")]),
        line("b-1"),
        b"\n".join([line("c-1"), line("wanted", event="Found"), line("c-3")]),
        b"\n".join([line("d-1"), line("last")]),
    ]
    if stored == "compressed":  # as the API's producer sends large messages (the one-line chunk stays text)
        chunks = [gzip.compress(c) if b"\n" in c else c for c in chunks]
    r.rpush("buf", *chunks)
    for event_id in ("a-1", "a-3", "b-1", "wanted", "last"):
        search = find._Search()
        found = find._scan(r, "buf", event_id, search)
        assert found is not None and orjson.loads(found)["event_id"] == event_id
    search = find._Search()
    assert find._scan(r, "buf", "missing", search) is None
    assert search.events_scanned == 9  # counted by line, not by element
