"""Pure parts of delivery: the retry backoff."""

from __future__ import annotations

import itertools

from workers.pipeline.upload import compute_backoff_s


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    lo = [compute_backoff_s(a, base_s=2, max_s=120, rand=lambda: 0.0) for a in range(1, 10)]
    hi = [compute_backoff_s(a, base_s=2, max_s=120, rand=lambda: 1.0) for a in range(1, 10)]
    assert lo[:4] == [1, 2, 4, 8]
    assert hi[:4] == [2, 4, 8, 16]
    assert max(hi) == 120 and max(lo) == 60
    assert all(a <= b for a, b in itertools.pairwise(hi))


def test_an_unexpected_ingest_failure_is_counted_for_the_integration():
    import fakeredis
    import orjson

    from workers.pipeline.ingest import record_ingest_failure
    from workers.store import keys

    r = fakeredis.FakeRedis()
    assert record_ingest_failure(r, "i", [{}, {}, {}], TypeError("boom")) == 3
    assert record_ingest_failure(r, "i", "not a list", TypeError("events must be a list")) == 1
    assert r.hget(keys.stats("i"), "rejected:ingest_failed") == b"4"
    latest = orjson.loads(r.lindex(keys.rejections("i"), 0))
    assert latest["reason"] == "ingest_failed" and "events must be a list" in latest["detail"]
