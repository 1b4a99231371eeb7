"""One API process's state: its connections, caches and publishing threads, at ``app.state.signal``."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from fastapi import Request

from workers.integrations import sources
from workers.pipeline import ingest
from workers.queue.producer import Broker
from workers.settings import Settings
from workers.store import db, ratelimit
from workers.web.batcher import Batcher

log = logging.getLogger(__name__)

PUBLISH_THREADS = 8
REFUSALS_FLUSH_S = 1.0  # refused requests reach the source's counters in Redis within about this long


class State:
    """One API process's connections and caches."""

    def __init__(self, settings: Settings, broker: Broker | None) -> None:
        self.settings = settings
        self.r = db.connect(settings)
        self.broker = broker or Broker(settings)
        self.executor = ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="publish")
        self.write_keys = sources.TtlCache(sources.WRITE_KEY_CACHE_TTL_S)
        self.routes = sources.TtlCache(sources.ROUTES_CACHE_TTL_S)
        self.lookups: dict[tuple[str, str], asyncio.Future[Any]] = {}  # collection's cache misses being looked up
        self.limiter = ratelimit.Limiter(self.r)
        self.refusals = sources.Refusals()
        self._batchers: dict[int, tuple[asyncio.AbstractEventLoop, Batcher]] = {}

    def batcher(self) -> Batcher:
        """The batcher of the running event loop (one per loop: a batcher's futures and timers belong to it)."""
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(loop))
        if entry is None or entry[0] is not loop:
            batcher = Batcher(
                self.publish,
                max_events=self.settings.collect_batch_events,
                linger_s=self.settings.collect_batch_ms / 1000,
                executor=self.executor,
            )
            self._batchers = {k: v for k, v in self._batchers.items() if not v[0].is_closed()}
            self._batchers[id(loop)] = (loop, batcher)
            return batcher
        return entry[1]

    def publish(self, integration_id: str, events: list[Any]) -> str:
        """Prepare one request's events for an integration and put them on the broker (in a publish thread)."""
        return ingest.publish(self.r, self.broker, integration_id, events, settings=self.settings)

    def refuse(self, source_id: str, reason: str, events: int) -> None:
        """Count a refused request of a source; the counts go to Redis in one round trip about a second later."""
        if self.refusals.add(source_id, reason, events):
            loop = asyncio.get_running_loop()
            loop.call_later(REFUSALS_FLUSH_S, loop.run_in_executor, self.executor, self.flush_refusals)

    def flush_refusals(self) -> None:
        try:
            self.refusals.flush(self.r)
        except redis.RedisError as exc:
            log.warning(
                "could not count refused requests yet (%s); they are kept for the next flush", type(exc).__name__
            )

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(loop))
        if entry is not None and entry[0] is loop:
            await entry[1].drain()

    def close(self) -> None:
        self.flush_refusals()
        self.executor.shutdown(wait=True)
        self.broker.close()
        self.r.close()


def state(request: Request) -> State:
    return request.app.state.signal  # type: ignore[no-any-return]
