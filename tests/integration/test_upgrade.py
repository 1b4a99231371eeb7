"""An upgrade loses nothing: a store written one event per element (before buffers held chunks) is delivered, each
event exactly once, by today's fleet, on one Redis and on RabbitMQ + Redis Cluster."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import legacy
from tests.support.fleet import Bucket, assert_exactly_once, lines_of, make_events, run_id
from workers import clock
from workers.integrations import registry
from workers.pipeline import ingest, replay
from workers.sink.object_keys import object_key
from workers.store import buffer, keys

BOTH = pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)


def settings_now() -> Any:
    from workers.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


@BOTH
def test_events_buffered_sealed_and_held_before_an_upgrade_are_delivered_exactly_once_after_it(
    fleet, topology, make_bucket, start_worker, start_beat
):
    settings = settings_now()
    r = fleet.r
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    cfg = registry.get(r, iid).config
    events = make_events(400, run=run_id("upgrade"))
    parts = [events[k : k + 100] for k in range(0, 400, 100)]

    def prepared_lines(part: list[dict]) -> dict[str, list[bytes]]:
        return ingest.prepare(r, iid, part, settings=settings).lines_by_hour

    # -- written by the fleet before chunks: a sealed batch, a held batch, an open buffer ---------------------------
    now = clock.now_ms()
    sealed_lines = prepared_lines(parts[0])
    assert legacy.append(r, iid, "old-1", sealed_lines, now_ms=now) == 100
    pending = [legacy.seal(r, iid, hour, now_ms=now) for hour in sealed_lines]
    held_lines = prepared_lines(parts[1])
    assert legacy.append(r, iid, "old-2", held_lines, now_ms=now) == 100
    for hour in held_lines:
        batch = legacy.seal(r, iid, hour, now_ms=now)
        key = object_key(cfg.prefix, hour, batch, "default")
        assert buffer.claim(r, iid, batch, token="t", now_ms=now, lease_ms=60_000, key=key).state == "ok"
        buffer.hold(r, iid, batch, token="t", now_ms=now, code="AccessDenied", message="Access Denied", hint="")
    open_lines = prepared_lines(parts[2])
    assert legacy.append(r, iid, "old-3", open_lines, now_ms=now) == 100
    open_hours = list(open_lines)
    assert [r.llen(keys.batch(iid, b)) for b in pending] == [len(v) for v in sealed_lines.values()]
    assert sum(r.llen(keys.buffer(iid, h)) for h in open_hours) == 100  # one element per event
    assert not r.exists(keys.open_count(iid))

    # -- today's fleet: appends chunks onto the old open buffer, flushes everything, replays the held batch ----------
    result = ingest.ingest(r, iid, parts[3], message_id="new-1", settings=settings)
    assert result.accepted == 100
    new_hours = list(prepared_lines(parts[3]))
    for hour in set(open_hours) & set(new_hours):
        elements = r.lrange(keys.buffer(iid, hour), 0, -1)
        assert len(lines_of(elements)) == int(r.hget(keys.open_count(iid), hour))
        assert len(elements) < len(lines_of(elements))  # one-line elements and a chunk, side by side
    start_worker(queues="ingest,flush", concurrency=2)
    start_beat()
    report = replay.replay(r, iid, settings=settings)
    assert report.summary()["delivered"], report.summary()
    objects = assert_exactly_once(fleet, iid, bucket, {e["event_id"] for e in events})
    assert sum(map(len, objects.values())) == 400
