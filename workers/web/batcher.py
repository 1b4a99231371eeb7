"""The micro-batcher of the collection routes: coalesces accepted events per integration into ``signal.ingest``
tasks, and answers each request only once its events are on the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

Publish = Callable[[str, list[Any]], object]


@dataclass(eq=False)
class _Pending:
    events: list[Any]
    future: asyncio.Future[None]
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Batcher:
    """Coalesces events per integration into ``publish(integration_id, events)`` calls of at most ``max_events``
    events, each made at most ``max_delay_s`` after its first event arrived. ``submit`` returns only once every one
    of its events was published (raises the publish error otherwise), so no accepted event lives only in memory.

    Belongs to one event loop; ``publish`` runs in ``executor`` (the loop's default executor when None).
    """

    publish: Publish
    max_events: int
    max_delay_s: float
    executor: Executor | None = None
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _inflight: set[asyncio.Future[Any]] = field(default_factory=set)

    async def submit(self, integration_id: str, events: list[Any]) -> None:
        if not events:
            return
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        start = 0
        while start < len(events):
            pending = self._pending.get(integration_id)
            if pending is None:
                pending = _Pending([], loop.create_future())
                pending.future.add_done_callback(_retrieve)
                self._pending[integration_id] = pending
                pending.timer = loop.call_later(self.max_delay_s, self._flush, integration_id, pending)
            room = self.max_events - len(pending.events)
            pending.events.extend(events[start:start + room])
            start += room
            if not waits or waits[-1] is not pending.future:
                waits.append(pending.future)
            if len(pending.events) >= self.max_events:
                self._flush(integration_id, pending)
        # shielded: a request that goes away must not cancel a batch other requests wait on
        await asyncio.gather(*(asyncio.shield(w) for w in waits))

    def _flush(self, integration_id: str, pending: _Pending) -> None:
        if self._pending.get(integration_id) is not pending:
            return
        del self._pending[integration_id]
        if pending.timer is not None:
            pending.timer.cancel()
        loop = asyncio.get_running_loop()
        sent = loop.run_in_executor(self.executor, self.publish, integration_id, pending.events)
        self._inflight.add(sent)

        def done(task: asyncio.Future[Any]) -> None:
            self._inflight.discard(task)
            if pending.future.done():
                return
            if task.cancelled():
                pending.future.set_exception(RuntimeError("publishing was cancelled"))
            elif task.exception() is not None:
                pending.future.set_exception(task.exception())  # type: ignore[arg-type]
            else:
                pending.future.set_result(None)

        sent.add_done_callback(done)

    def pending_events(self) -> int:
        return sum(len(p.events) for p in self._pending.values())

    async def drain(self) -> None:
        """Publish everything pending now and wait for every publish in flight (at shutdown)."""
        for integration_id, pending in list(self._pending.items()):
            self._flush(integration_id, pending)
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark the outcome as seen even when every waiting request went away."""
    if not future.cancelled():
        future.exception()
