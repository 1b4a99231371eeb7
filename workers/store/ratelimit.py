"""Per-source rate limit of collection: events per second, shared by every API process through Redis.

Each source has one token bucket in Redis (``keys.source_rate``, ``lua/rate_take.lua``): it refills at the source's
rate (events per second) up to a burst of ``BURST_S`` seconds of that rate. An API process does not ask Redis for
every request: it takes a *slice* of the bucket (``SLICE_S`` seconds of the rate, or what one request needs if that
is more) and spends it locally on the following requests, for at most ``SLICE_TTL_S``. So a request normally touches
no Redis; a process asks again when its slice is spent or stale, which is about ``1 / SLICE_S`` times a second per
source while that source is busy.

Precision: the fleet never accepts more than the bucket grants (rate x time + burst, plus what the slices taken in the
last ``SLICE_TTL_S`` still hold). It may refuse a little early: tokens sitting in the slice of one process cannot be
spent by another, so with N busy processes up to N slices (N x ``SLICE_S`` seconds of the rate) may be held while
another process is refused; tokens of a slice that goes stale unspent are lost. A refused process refuses that
source locally until the bucket will have refilled enough (the ``Retry-After`` it answers), without asking Redis,
unless what it still holds covers the request.

Over the limit the whole request is refused (429): nothing is partly accepted, and nothing already accepted changes.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from workers import clock
from workers.store import keys
from workers.store.scripts import SCRIPTS

BURST_S = 2.0  # the bucket holds this many seconds of the rate
SLICE_S = 0.1  # a process takes this many seconds of the rate at a time
SLICE_TTL_S = 1.0  # a slice not spent within this long is dropped


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1 (the form every SDK parses)."""
        return str(max(1, math.ceil(self.retry_after_s)))


ALLOWED = Decision(True)


@dataclass
class _Slice:
    tokens: int = 0
    expires_at: float = 0.0
    blocked_until: float = 0.0


def burst_of(rate_eps: int) -> int:
    return max(1, math.ceil(rate_eps * BURST_S))


def slice_of(rate_eps: int) -> int:
    return max(1, math.ceil(rate_eps * SLICE_S))


class Limiter:
    """One API process's view of every source's bucket. ``rate_eps`` 0 means no limit (nothing is asked)."""

    def __init__(
        self,
        r: redis.Redis,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], int] = clock.now_ms,
    ) -> None:
        self._script = functools.partial(SCRIPTS.rate_take, client=r)
        self._monotonic = monotonic
        self._now_ms = now_ms
        self._slices: dict[str, _Slice] = {}
        self._lock = threading.Lock()

    def admit_local(self, source_id: str, events: int, rate_eps: int) -> Decision | None:
        """Decide from this process's slice alone; None when Redis must be asked (``take``)."""
        if rate_eps <= 0 or events <= 0:
            return ALLOWED
        now = self._monotonic()
        with self._lock:
            held = self._slices.get(source_id)
            if held is None:
                return None
            if held.expires_at > now and held.tokens >= events:
                held.tokens -= events
                return ALLOWED
            if held.blocked_until > now:
                return Decision(False, held.blocked_until - now)
        return None

    def take(self, source_id: str, events: int, rate_eps: int) -> Decision:
        """Ask the shared bucket for what this request needs plus a slice for the next ones (one Redis call)."""
        decision = self.admit_local(source_id, events, rate_eps)
        if decision is not None:
            return decision
        with self._lock:  # what this process still holds goes to this request first
            held = self._slices.setdefault(source_id, _Slice())
            usable = min(held.tokens, events) if held.expires_at > self._monotonic() else 0
            held.tokens -= usable
        need = events - usable
        granted, retry_after_ms = self._script(
            keys=[keys.source_rate(source_id)],
            args=[self._now_ms(), rate_eps, burst_of(rate_eps), need, max(need, slice_of(rate_eps))],
        )
        now = self._monotonic()
        with self._lock:
            held = self._slices.setdefault(source_id, _Slice())
            if not int(granted):
                held.tokens += usable
                held.blocked_until = now + int(retry_after_ms) / 1000
                return Decision(False, int(retry_after_ms) / 1000)
            held.tokens = (held.tokens if held.expires_at > now else 0) + int(granted) - need
            held.expires_at = now + SLICE_TTL_S
            held.blocked_until = 0.0  # the bucket had tokens after all (a concurrent take was refused earlier)
            return ALLOWED

    def forget(self, source_id: str) -> None:
        with self._lock:
            self._slices.pop(source_id, None)
