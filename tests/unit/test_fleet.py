"""The Fleet page's plain functions: beat's tick, fleet-wide totals (queue depths: test_topology)."""

from __future__ import annotations

import fakeredis
from celery import Celery

from tests.support.seed import install_body
from workers.integrations import registry
from workers.observe import fleet
from workers.settings import Settings
from workers.store import buffer, chunks, keys

T0 = 1_764_061_200_000


def test_beat_is_late_without_a_recent_tick():
    r = fakeredis.FakeRedis()
    settings = Settings(flush_interval_s=10)
    assert fleet.beat(r, settings, T0) == {"last_tick_at": None, "age_s": None, "late": True}
    r.set(keys.BEAT_LAST_TICK, T0)
    assert r.get(keys.BEAT_LAST_TICK) == str(T0).encode()
    assert fleet.beat(r, settings, T0 + 5_000) == {
        "last_tick_at": "2025-11-25T09:00:00.000Z",
        "age_s": 5.0,
        "late": False,
    }
    assert fleet.beat(r, settings, T0 + 31_000)["late"] is True


def test_totals_add_up_every_integrations_buffered_and_held_events():
    r = fakeredis.FakeRedis()
    first, second = (registry.install(r, install_body()).id for _ in range(2))
    for iid, n in ((first, 3), (second, 2)):
        chunks.append(
            r,
            iid,
            chunks.Append(
                message_id=f"m-{iid}",
                now_ms=T0,
                chunks_by_hour=chunks.chunks({"2025112509": [b'{"event_id":"e"}'] * n}),
            ),
            chunks.Limits(
                cap_bytes=10**6, batch_max_events=100, batch_max_bytes=10**6, seal_due_ms=T0, seen_ttl_ms=1000
            ),
        )
    batch_id = buffer.seal(r, second, "2025112509", now_ms=T0, seal_due_ms=T0)
    buffer.hold(r, second, batch_id, token="", now_ms=T0, code="AccessDenied", message="m", hint="h")
    totals = fleet.totals(r)
    assert totals["integrations"] == 2 and totals["buffered_events"] == 3  # held events are not buffered
    assert (totals["held_batches"], totals["held_events"]) == (1, 2)
    assert totals["buffered_bytes"] == 3 * len(b'{"event_id":"e"}')


def test_an_unreadable_broker_is_reported_on_the_page_not_raised():
    r = fakeredis.FakeRedis()
    app = Celery("down", broker="redis://127.0.0.1:1/0", set_as_current=False)
    app.conf.broker_connection_retry = False
    app.conf.broker_connection_max_retries = 0
    out = fleet.overview(r, app, Settings(redis_url="redis://127.0.0.1:1/0"), inspect_timeout_s=0.1)
    assert out["queues"] is None and out["workers"] is None
    assert out["broker_error"].startswith("the broker could not be read")
    assert out["totals"]["integrations"] == 0
    app.close()
