"""Pure parts of delivery: the retry backoff."""

from __future__ import annotations

from workers.delivery import compute_backoff_s


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    lo = [compute_backoff_s(a, base_s=2, max_s=120, rand=lambda: 0.0) for a in range(1, 10)]
    hi = [compute_backoff_s(a, base_s=2, max_s=120, rand=lambda: 1.0) for a in range(1, 10)]
    assert lo[:4] == [1, 2, 4, 8]
    assert hi[:4] == [2, 4, 8, 16]
    assert max(hi) == 120 and max(lo) == 60
    assert all(a <= b for a, b in zip(hi, hi[1:]))


def test_an_unexpected_ingest_failure_is_counted_for_the_integration():
    import fakeredis
    import orjson

    from workers import keys
    from workers.delivery import record_ingest_failure

    r = fakeredis.FakeRedis()
    assert record_ingest_failure(r, "i", [{}, {}, {}], TypeError("boom")) == 3
    assert record_ingest_failure(r, "i", "not a list", TypeError("events must be a list")) == 1
    assert r.hget(keys.stats("i"), "rejected:ingest_failed") == b"4"
    latest = orjson.loads(r.lindex(keys.rejections("i"), 0))
    assert latest["reason"] == "ingest_failed" and "events must be a list" in latest["detail"]


def test_live_records_are_the_last_accepted_events_in_the_order_they_are_appended():
    import orjson

    from workers.buffer import LIST_MAX
    from workers.delivery import _live_records

    def env(i: int) -> dict:
        return {"event_id": f"e{i}", "type": "track", "event": "x", "received_at": "2026-05-12T10:00:00.000Z",
                "context": {"big": "y" * 100}}

    groups = {"2026051209": [env(i) for i in range(30)], "2026051210": [env(i) for i in range(30, 150)]}
    records = _live_records(groups, 1234)
    assert sorted(records) == list(range(150 - LIST_MAX, 150))
    first = orjson.loads(records[150 - LIST_MAX] + b"0}")
    assert first == {"event_id": f"e{150 - LIST_MAX}", "type": "track", "event": "x",
                     "received_at": "2026-05-12T10:00:00.000Z", "at_ms": 1234, "hour": "2026051210", "gen": 0}
    small = _live_records({"2026051209": [env(0)], "2026051210": [env(1)]}, 1)
    assert [orjson.loads(small[p] + b"0}")["hour"] for p in (0, 1)] == ["2026051209", "2026051210"]
