"""The micro-batcher of the collection routes: coalesces accepted events per integration into one publish (the API
prepares them and sends ``signal.append``, ``workers.pipeline.ingest.publish``), and answers each request only once
its events are on the broker.

Group commit, per integration: when no publish of that integration is in flight, the events go out at once (a lone
client is answered in about one broker round trip); while one is in flight, whatever arrives meanwhile waits and goes
out as the next task the moment it completes. Under load, tasks grow by themselves (up to ``max_events``) and no
request waits for a fixed window.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

Publish = Callable[[str, list[Any]], object]


@dataclass(eq=False)
class _Batch:
    """Events of one future task; every request with events in it waits on ``future``."""

    events: list[Any]
    future: asyncio.Future[None]


@dataclass(eq=False)
class _Lane:
    """One integration: its batches waiting to be published, oldest first, and whether one is in flight."""

    batches: deque[_Batch] = field(default_factory=deque)
    busy: bool = False
    scheduled: bool = False
    linger: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Batcher:
    """Coalesces events per integration into ``publish(integration_id, events)`` calls of at most ``max_events``
    events, one call in flight per integration. ``submit`` returns only once every one of its events was published
    (raises the publish error otherwise), so no accepted event lives only in memory.

    ``linger_s`` (0 by default) lets the first events that find the broker free wait up to that long for more, as a
    fixed window did; a full batch never waits. Belongs to one event loop; ``publish`` runs in ``executor`` (the
    loop's default executor when None).
    """

    publish: Publish
    max_events: int
    linger_s: float = 0.0
    executor: Executor | None = None
    _lanes: dict[str, _Lane] = field(default_factory=dict)
    _inflight: set[asyncio.Future[Any]] = field(default_factory=set)

    async def submit(self, integration_id: str, events: list[Any]) -> None:
        if not events:
            return
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(integration_id)
        if lane is None:
            lane = self._lanes[integration_id] = _Lane()
        waits: list[asyncio.Future[None]] = []
        start = 0
        while start < len(events):
            batch = lane.batches[-1] if lane.batches else None
            if batch is None or len(batch.events) >= self.max_events:
                batch = _Batch([], loop.create_future())
                batch.future.add_done_callback(_retrieve)
                lane.batches.append(batch)
            room = self.max_events - len(batch.events)
            batch.events.extend(events[start : start + room])
            start += room
            waits.append(batch.future)
        self._schedule(integration_id, lane)
        # shielded: a request that goes away must not cancel a batch other requests wait on
        if len(waits) == 1:  # nearly always: the request's events fit in one batch
            await asyncio.shield(waits[0])
        else:
            await asyncio.gather(*(asyncio.shield(w) for w in waits))

    def _schedule(self, integration_id: str, lane: _Lane) -> None:
        """Publish the lane's oldest batch soon, unless one is in flight (its completion does it)."""
        if lane.busy or lane.scheduled or not lane.batches:
            return
        loop = asyncio.get_running_loop()
        full = len(lane.batches[0].events) >= self.max_events
        if self.linger_s > 0 and not full:
            if lane.linger is None:
                lane.linger = loop.call_later(self.linger_s, self._linger_over, integration_id, lane)
            return
        # at the end of this loop iteration: requests read in the same iteration join the batch
        lane.scheduled = True
        loop.call_soon(self._publish_next, integration_id, lane)

    def _linger_over(self, integration_id: str, lane: _Lane) -> None:
        lane.linger = None
        if not lane.busy and not lane.scheduled and lane.batches:
            lane.scheduled = True
            self._publish_next(integration_id, lane)

    def _publish_next(self, integration_id: str, lane: _Lane) -> None:
        lane.scheduled = False
        if lane.busy or not lane.batches:
            return
        if lane.linger is not None:
            lane.linger.cancel()
            lane.linger = None
        batch = lane.batches.popleft()
        lane.busy = True
        loop = asyncio.get_running_loop()
        sent = loop.run_in_executor(self.executor, self.publish, integration_id, batch.events)
        self._inflight.add(sent)

        def done(task: asyncio.Future[Any]) -> None:
            self._inflight.discard(task)
            lane.busy = False
            if not batch.future.done():
                if task.cancelled():
                    batch.future.set_exception(RuntimeError("publishing was cancelled"))
                elif task.exception() is not None:
                    batch.future.set_exception(task.exception())  # type: ignore[arg-type]
                else:
                    batch.future.set_result(None)
            if lane.batches:
                # what arrived during this publish goes now, without lingering: it has waited already
                lane.scheduled = True
                loop.call_soon(self._publish_next, integration_id, lane)
            elif self._lanes.get(integration_id) is lane:
                del self._lanes[integration_id]

        sent.add_done_callback(done)

    def pending_events(self) -> int:
        """Events accepted but not yet handed to ``publish``."""
        return sum(len(b.events) for lane in self._lanes.values() for b in lane.batches)

    async def drain(self) -> None:
        """Publish everything pending now and wait until it is all on the broker (at shutdown)."""
        while True:
            waits = [b.future for lane in self._lanes.values() for b in lane.batches]
            waits += list(self._inflight)
            if not waits:
                return
            for integration_id, lane in list(self._lanes.items()):
                if not lane.busy and not lane.scheduled and lane.batches:
                    lane.scheduled = True
                    self._publish_next(integration_id, lane)
            await asyncio.gather(*waits, return_exceptions=True)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark the outcome as seen even when every waiting request went away."""
    if not future.cancelled():
        future.exception()
