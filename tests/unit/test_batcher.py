"""The collection micro-batcher: coalescing per integration, answering only after publishing, failures, drain."""

from __future__ import annotations

import asyncio
import threading
import time

from workers.web.batcher import Batcher


class Recorder:
    def __init__(self, fail: bool = False, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, list]] = []
        self.fail = fail
        self.delay_s = delay_s
        self.lock = threading.Lock()

    def __call__(self, integration_id: str, events: list) -> None:
        time.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("broker down")
        with self.lock:
            self.calls.append((integration_id, list(events)))


def test_requests_are_coalesced_per_integration_and_answered_after_publishing():
    rec = Recorder(delay_s=0.05)

    async def main():
        b = Batcher(rec, max_events=500, max_delay_s=0.02)
        await asyncio.gather(*(b.submit("i1", [f"e{n}"]) for n in range(10)), b.submit("i2", ["x"]))
        # every submit returned: its events were published
        return sorted(e for _, events in rec.calls for e in events)

    published = asyncio.run(main())
    assert published == sorted([f"e{n}" for n in range(10)] + ["x"])
    assert sorted(iid for iid, _ in rec.calls) == ["i1", "i2"]  # one task per integration


def test_a_full_batch_is_published_without_waiting_and_large_requests_are_split():
    rec = Recorder()

    async def main():
        b = Batcher(rec, max_events=4, max_delay_s=60)
        started = time.monotonic()
        await b.submit("i", list(range(8)))
        return time.monotonic() - started

    assert asyncio.run(main()) < 5
    assert [events for _, events in rec.calls] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_request_waits_for_every_batch_it_joined():
    rec = Recorder()

    async def main():
        b = Batcher(rec, max_events=3, max_delay_s=0.05)
        await b.submit("i", [1, 2, 3, 4, 5])  # 3 published at once, 2 after the delay
        return [events for _, events in rec.calls]

    assert asyncio.run(main()) == [[1, 2, 3], [4, 5]]


def test_a_publish_failure_reaches_every_request_of_the_batch():
    rec = Recorder(fail=True)

    async def main():
        b = Batcher(rec, max_events=10, max_delay_s=0.01)
        return await asyncio.gather(b.submit("i", [1]), b.submit("i", [2]), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, ConnectionError) for r in results)


def test_drain_publishes_what_is_pending():
    rec = Recorder()

    async def main():
        b = Batcher(rec, max_events=10, max_delay_s=3600)
        waiter = asyncio.ensure_future(b.submit("i", [1, 2]))
        await asyncio.sleep(0)
        assert b.pending_events() == 2
        await b.drain()
        await waiter
        return b.pending_events()

    assert asyncio.run(main()) == 0
    assert rec.calls == [("i", [1, 2])]
