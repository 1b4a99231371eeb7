"""The per-source rate limit: a token bucket in Redis, spent by each API process in local slices."""

from __future__ import annotations

import fakeredis
import pytest

from workers.store import keys, ratelimit


class Clock:
    def __init__(self) -> None:
        self.s = 1000.0

    def monotonic(self) -> float:
        return self.s

    def now_ms(self) -> int:
        return int(self.s * 1000)

    def advance(self, seconds: float) -> None:
        self.s += seconds


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter(r, clock: Clock) -> ratelimit.Limiter:
    return ratelimit.Limiter(r, monotonic=clock.monotonic, now_ms=clock.now_ms)


class Counting:
    """Counts the Redis script calls a limiter makes."""

    def __init__(self, inner: ratelimit.Limiter) -> None:
        self.calls = 0
        original = inner._script

        def script(**kwargs):
            self.calls += 1
            return original(**kwargs)

        inner._script = script


def admit(lim: ratelimit.Limiter, events: int = 1, rate: int = 100, source: str = "s1") -> ratelimit.Decision:
    return lim.admit_local(source, events, rate) or lim.take(source, events, rate)


def test_a_source_gets_its_burst_then_its_rate(r, clock):
    lim = limiter(r, clock)
    accepted = sum(admit(lim).allowed for _ in range(500))
    assert accepted == ratelimit.burst_of(100) == 200  # 2 s of 100 events/s
    refused = admit(lim)
    assert not refused.allowed and 0 < refused.retry_after_s <= 1 and refused.retry_after_header == "1"
    clock.advance(1.0)
    assert sum(admit(lim).allowed for _ in range(500)) == 100


def test_most_requests_touch_no_redis(r, clock):
    lim = limiter(r, clock)
    counting = Counting(lim)
    for _ in range(100):
        assert admit(lim, rate=1000).allowed
    assert counting.calls == 1  # one slice of 0.1 s x 1000 events/s covers the next 99 requests
    assert lim.admit_local("s1", 1, 1000) is None  # spent: the next request asks for a new slice


def test_a_refused_process_refuses_locally_until_retry_after(r, clock):
    lim = limiter(r, clock)
    counting = Counting(lim)
    assert admit(lim, events=20, rate=10).allowed  # the whole burst
    calls = counting.calls
    for _ in range(50):
        assert not admit(lim, rate=10).allowed
    assert counting.calls == calls + 1  # asked once, then refused from memory
    clock.advance(0.11)
    assert admit(lim, rate=10).allowed


def test_processes_share_one_budget(r, clock):
    a, b = limiter(r, clock), limiter(r, clock)
    accepted = 0
    for n in range(600):
        accepted += admit(a if n % 3 else b, rate=100).allowed
    assert accepted == 200  # never more than the shared burst, whichever process asks
    clock.advance(0.5)
    accepted = sum(admit(a if n % 2 else b, rate=100).allowed for n in range(600))
    assert 30 <= accepted <= 50  # 50 refilled; at most a slice per process is stranded


def test_two_sources_have_separate_budgets(r, clock):
    lim = limiter(r, clock)
    assert admit(lim, events=20, rate=10, source="a").allowed
    assert not admit(lim, rate=10, source="a").allowed
    assert admit(lim, rate=10, source="b").allowed


def test_no_limit_asks_nothing(r, clock):
    lim = limiter(r, clock)
    counting = Counting(lim)
    assert all(admit(lim, events=10_000, rate=0).allowed for _ in range(10))
    assert counting.calls == 0 and r.keys("*") == []


def test_a_batch_larger_than_the_burst_is_accepted_once_and_the_source_waits_for_the_debt(r, clock):
    lim = limiter(r, clock)
    assert admit(lim, events=50, rate=10).allowed  # burst 20, bucket full: accepted, 30 in debt
    refused = admit(lim, rate=10)
    assert not refused.allowed and 3.0 < refused.retry_after_s <= 3.2
    clock.advance(3.2)
    assert admit(lim, rate=10).allowed


def test_a_stale_slice_is_dropped(r, clock):
    lim = limiter(r, clock)
    counting = Counting(lim)
    assert admit(lim, rate=1000).allowed
    clock.advance(ratelimit.SLICE_TTL_S + 0.01)
    assert lim.admit_local("s1", 1, 1000) is None  # must ask again
    assert admit(lim, rate=1000).allowed and counting.calls == 2


def test_a_refused_take_gives_back_what_the_process_held(r, clock):
    lim = limiter(r, clock)
    assert admit(lim, events=15, rate=10).allowed  # took a slice of 15: the bucket has 5 left
    assert admit(lim, events=5, rate=10).allowed
    assert not admit(lim, events=3, rate=10).allowed  # bucket empty
    clock.advance(0.5)  # 5 refilled
    assert admit(lim, events=5, rate=10).allowed


def test_the_bucket_expires_once_it_would_be_full(r, clock):
    lim = limiter(r, clock)
    admit(lim, events=20, rate=10)
    ttl_ms = r.pttl(keys.source_rate("s1"))
    assert 2000 < ttl_ms <= 3000  # refills 20 tokens in 2 s, plus a second


def test_the_script_refills_at_the_rate_and_never_backwards(r, clock):
    lim = limiter(r, clock)
    take = lim._script
    key = keys.source_rate("s9")
    assert take(keys=[key], args=[10_000, 10, 20, 20, 20]) == [20, 0]
    assert take(keys=[key], args=[10_500, 10, 20, 5, 5]) == [5, 0]
    assert take(keys=[key], args=[10_400, 10, 20, 1, 1]) == [0, 100]  # an earlier clock adds nothing
    assert take(keys=[key], args=[11_000, 10, 20, 2, 10]) == [5, 0]  # up to `want` of what is there


def test_a_blocked_process_still_spends_what_its_slice_covers(r, clock):
    lim = limiter(r, clock)
    assert admit(lim, events=195, rate=100).allowed  # the bucket (200) keeps 5
    assert admit(lim, events=1, rate=100).allowed  # takes those 5: holds 4
    assert not admit(lim, events=5, rate=100).allowed  # more than it holds, and Redis has none: blocked
    assert admit(lim, events=4, rate=100).allowed  # what it holds is still spent
    assert not admit(lim, events=1, rate=100).allowed
