"""The collection micro-batcher: group commit per integration, answering only after publishing, failures, drain."""

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
        self.gate: threading.Event | None = None  # when set up, each publish waits until it is opened
        self.started = threading.Semaphore(0)

    def __call__(self, integration_id: str, events: list) -> None:
        self.started.release()
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        time.sleep(self.delay_s)
        if self.fail:
            raise ConnectionError("broker down")
        with self.lock:
            self.calls.append((integration_id, list(events)))


async def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_requests_are_coalesced_per_integration_and_answered_after_publishing():
    rec = Recorder(delay_s=0.05)

    async def main():
        b = Batcher(rec, max_events=500)
        await asyncio.gather(*(b.submit("i1", [f"e{n}"]) for n in range(10)), b.submit("i2", ["x"]))
        # every submit returned: its events were published
        return sorted(e for _, events in rec.calls for e in events)

    published = asyncio.run(main())
    assert published == sorted([f"e{n}" for n in range(10)] + ["x"])
    assert sorted(iid for iid, _ in rec.calls) == ["i1", "i2"]  # requests read together: one task per integration


def test_a_free_broker_gets_events_at_once_and_a_busy_one_gets_what_arrived_meanwhile_as_one_task():
    rec = Recorder()
    rec.gate = threading.Event()

    async def main():
        b = Batcher(rec, max_events=500, linger_s=0.0)
        first = asyncio.ensure_future(b.submit("i", ["a"]))
        await asyncio.to_thread(rec.started.acquire)  # published with nothing else: no window to wait out
        later = [asyncio.ensure_future(b.submit("i", [x])) for x in ("b", "c", "d")]
        await _until(lambda: b.pending_events() == 3)
        assert not first.done() and not any(w.done() for w in later)  # nobody is answered before publishing
        rec.gate.set()
        await asyncio.gather(first, *later)
        return [events for _, events in rec.calls]

    assert asyncio.run(main()) == [["a"], ["b", "c", "d"]]


def test_a_full_batch_is_published_without_waiting_and_large_requests_are_split():
    rec = Recorder()

    async def main():
        b = Batcher(rec, max_events=4, linger_s=60)
        await b.submit("i", list(range(8)))

    asyncio.run(asyncio.wait_for(main(), 30))
    assert [events for _, events in rec.calls] == [[0, 1, 2, 3], [4, 5, 6, 7]]


def test_a_request_waits_for_every_batch_it_joined():
    rec = Recorder()

    async def main():
        b = Batcher(rec, max_events=3)
        await b.submit("i", [1, 2, 3, 4, 5])
        return [events for _, events in rec.calls]

    assert asyncio.run(main()) == [[1, 2, 3], [4, 5]]


def test_a_publish_failure_reaches_every_request_of_the_batch():
    rec = Recorder(fail=True)
    rec.gate = threading.Event()

    async def main():
        b = Batcher(rec, max_events=10)
        first = asyncio.ensure_future(b.submit("i", [1]))
        await asyncio.to_thread(rec.started.acquire)
        joined = [asyncio.ensure_future(b.submit("i", [n])) for n in (2, 3)]  # these share the next batch
        await _until(lambda: b.pending_events() == 2)
        rec.gate.set()
        return await asyncio.gather(first, *joined, return_exceptions=True)

    results = asyncio.run(main())
    assert len(results) == 3 and all(isinstance(r, ConnectionError) for r in results)


def test_a_linger_holds_events_until_the_batch_fills_or_drain_publishes_them():
    rec = Recorder()

    async def main():
        b = Batcher(rec, max_events=10, linger_s=3600)
        waiter = asyncio.ensure_future(b.submit("i", [1, 2]))
        await asyncio.sleep(0)
        assert b.pending_events() == 2
        await b.drain()
        await waiter
        return b.pending_events()

    assert asyncio.run(main()) == 0
    assert rec.calls == [("i", [1, 2])]


def test_drain_waits_for_publishes_in_flight_and_what_queued_behind_them():
    rec = Recorder()
    rec.gate = threading.Event()

    async def main():
        b = Batcher(rec, max_events=10)
        first = asyncio.ensure_future(b.submit("i", [1]))
        await asyncio.to_thread(rec.started.acquire)
        second = asyncio.ensure_future(b.submit("i", [2]))
        await _until(lambda: b.pending_events() == 1)
        drained = asyncio.ensure_future(b.drain())
        await asyncio.sleep(0.01)
        assert not drained.done()
        rec.gate.set()
        await drained
        assert first.done() and second.done()
        return b.pending_events()

    assert asyncio.run(main()) == 0
    assert [events for _, events in rec.calls] == [[1], [2]]
