"""The bound on partition values: at most ``partition_max_values`` distinct values of one partition field per hour
per integration get their own folder; events with any other value go under ``__other__``.

``admit`` asks Redis once per new (hour, field, value) a process meets (``partition_values.lua``: a value joins its
set while the set has room; a set never shrinks) and remembers the answer. A set expires at a time fixed by its hour:
a day after the last moment an event of that hour can arrive (the hour's end, plus the ``partition_time_bound_s`` of
an integration partitioned by timestamp), and a process forgets its answers for that hour at the same time. So a
decision, once made, is the same for every producer for as long as events of that hour can come: no two processes put
one value in its folder and under ``__other__``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import redis

from workers import clock
from workers.store import keys
from workers.store.scripts import SCRIPTS

AFTER_LAST_EVENT_MS = 24 * 3_600_000  # how long a set outlives the last moment its hour can receive events
MIN_LIFE_MS = 3_600_000  # a set made for an hour long past (an event's own received_at) still lives this long
_KNOWN_MAX = 100_000  # decisions remembered per process before they are all forgotten (and asked again)
# (integration, hour, field, value) -> (True: admitted, or the bound it was refused under; when to forget it)
_known: dict[tuple[str, str, str, str], tuple[bool | int, int]] = {}


def expires_at_ms(hour: str, late_ms: int, now_ms: int) -> int:
    """When the set of ``hour`` expires: a day after its last event can arrive (``late_ms`` after the hour ends)."""
    end = int(datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC).timestamp() * 1000) + 3_600_000
    return max(end + late_ms + AFTER_LAST_EVENT_MS, now_ms + MIN_LIFE_MS)


def admit(
    r: redis.Redis, integration_id: str, asked: Iterable[tuple[str, str, str]], bound: int, *, late_ms: int = 0
) -> dict[tuple[str, str, str], bool]:
    """For each ``(hour, field name, value)``: whether the value has its own folder (True) or goes under
    ``__other__`` (False). ``late_ms``: how long after its hour an event of that hour can still arrive."""
    now_ms = clock.now_ms()
    out: dict[tuple[str, str, str], bool] = {}
    unknown: dict[tuple[str, str], list[str]] = {}
    for hour, name, value in dict.fromkeys(asked):
        decided, until = _known.get((integration_id, hour, name, value), (None, 0))
        if until > now_ms and (decided is True or decided == bound):
            out[(hour, name, value)] = decided is True
        else:
            unknown.setdefault((hour, name), []).append(value)
    if not unknown:
        return out
    expiry = {hour: expires_at_ms(hour, late_ms, now_ms) for hour, _ in unknown}
    args: list[str | int] = [bound]
    for (hour, _), values in unknown.items():
        args += [expiry[hour], len(values), *values]
    answers = SCRIPTS.partition_values(
        keys=[keys.partition_values(integration_id, hour, name) for hour, name in unknown], args=args, client=r
    )
    if len(_known) > _KNOWN_MAX:
        _known.clear()
    flat = iter(answers)
    for (hour, name), values in unknown.items():
        for value in values:
            admitted = next(flat) == 1
            _known[(integration_id, hour, name, value)] = (True if admitted else bound, expiry[hour])
            out[(hour, name, value)] = admitted
    return out


def forget() -> None:
    """Forget every remembered decision (tests; a process that must ask again)."""
    _known.clear()
