"""The bound on partition values: at most ``partition_max_values`` distinct values of one partition field per hour
per integration get their own folder; events with any other value go under ``__other__``.

``admit`` asks Redis once per new (hour, field, value) a process meets (``partition_values.lua``: a value joins its
set while the set has room; sets never shrink within their life), and remembers the answer: a decision, once made,
is the same for every producer, so two API processes never split one value between its folder and ``__other__``.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from workers.store import keys
from workers.store.scripts import SCRIPTS

TTL_MS = 26 * 3_600_000  # an hour's sets outlive it by a day: late events of that hour meet the same decisions
_KNOWN_MAX = 100_000  # decisions remembered per process before they are all forgotten (and asked again)
# True: admitted (for good); an int: refused while the bound was that number
_known: dict[tuple[str, str, str, str], bool | int] = {}


def admit(
    r: redis.Redis, integration_id: str, asked: Iterable[tuple[str, str, str]], bound: int
) -> dict[tuple[str, str, str], bool]:
    """For each ``(hour, field name, value)``: whether the value has its own folder (True) or goes under
    ``__other__`` (False)."""
    out: dict[tuple[str, str, str], bool] = {}
    unknown: dict[tuple[str, str], list[str]] = {}
    for hour, name, value in dict.fromkeys(asked):
        known = _known.get((integration_id, hour, name, value))
        if known is True or (known is not None and known == bound):
            out[(hour, name, value)] = known is True
        else:
            unknown.setdefault((hour, name), []).append(value)
    if not unknown:
        return out
    args: list[str | int] = [bound, TTL_MS]
    for values in unknown.values():
        args += [len(values), *values]
    answers = SCRIPTS.partition_values(
        keys=[keys.partition_values(integration_id, hour, name) for hour, name in unknown], args=args, client=r
    )
    if len(_known) > _KNOWN_MAX:
        _known.clear()
    flat = iter(answers)
    for (hour, name), values in unknown.items():
        for value in values:
            admitted = next(flat) == 1
            _known[(integration_id, hour, name, value)] = True if admitted else bound
            out[(hour, name, value)] = admitted
    return out


def forget() -> None:
    """Forget every remembered decision (tests; a process that must ask again)."""
    _known.clear()
