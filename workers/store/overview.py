"""The delivery overview's counters: per integration and UTC hour, what happened to its events.

Written by the scripts that change the state they count, in the same atomic step, so a count is never lost or made
twice by a crash or a retried call:

- ``append.lua``: events accepted into a buffer (``a``), removed by the blueprint (``f:<reason>``), rejected
  (``r:<reason>``), in the hour the worker appended them (one set of increments per message, not per event);
- ``ack.lua``: events delivered (``d``), objects (``o``), their bytes (``b``) and the event-to-object latency
  (``l<k>``: events whose batch took at most ``LATENCY_BUCKETS_S[k]``; ``l+`` beyond the last bound), in the hour
  the object was confirmed (the hour of its ledger record);
- ``hold.lua`` / ``release.lua``: events held in the dead letter (``h``), in the hour they were held, taken back
  out of that hour when a replay puts the batch back in line: ``h`` counts the events held then and still held.

So over a window in which every event arrived and settled, ``accepted + filtered + rejected`` (received) equals
``delivered + held + buffered now``.

Storage: one hash per integration and six UTC hours (``keys.overview``), fields prefixed by the hour of the day
(``05a``, ``05f:consent_denied``): a small hash Redis keeps as one compact listpack, a quarter of the memory of a
hash per hour. Each expires ``RETENTION_S`` after its first write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from workers.store.histograms import LATENCY_BUCKETS_S

RETENTION_S = 7 * 86400 + 6 * 3600  # the last hour of a block stays readable for seven days
HOURS_PER_BLOCK = 6
OVERFLOW = "+"  # latency field suffix beyond the last bound


def block_of(hour: str) -> str:
    """The block key suffix of an hour ``YYYYMMDDHH``: ``YYYYMMDD.<0-3>``."""
    return f"{hour[:8]}.{int(hour[8:10]) // HOURS_PER_BLOCK}"


def field_prefix(hour: str) -> str:
    """The field prefix of an hour within its block: the hour of the day, two digits."""
    return hour[8:10]


def lua_latency_bounds() -> list[object]:
    """The latency buckets as ARGV for ack.lua: n, then each bound in milliseconds."""
    return [len(LATENCY_BUCKETS_S), *(round(b * 1000) for b in LATENCY_BUCKETS_S)]


@dataclass
class Hour:
    """One integration's counts for one UTC hour (or a sum of them)."""

    hour: str  # YYYYMMDDHH, or "" for a sum
    accepted: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    held: int = 0
    objects: int = 0
    bytes: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))  # events per bucket

    @property
    def received(self) -> int:
        return self.accepted + sum(self.filtered.values()) + sum(self.rejected.values())

    def add(self, other: Hour) -> None:
        self.accepted += other.accepted
        self.delivered += other.delivered
        self.held += other.held
        self.objects += other.objects
        self.bytes += other.bytes
        for mine, theirs in ((self.filtered, other.filtered), (self.rejected, other.rejected)):
            for reason, n in theirs.items():
                mine[reason] = mine.get(reason, 0) + n
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]

    def latency_quantile(self, q: float) -> float | None:
        """The ``q`` quantile of the event-to-object latency in seconds, interpolated within its bucket as
        Prometheus's histogram_quantile does (None without deliveries; the last bound when beyond it)."""
        total = sum(self.latency)
        if total == 0:
            return None
        rank = q * total
        seen = 0
        lower = 0.0
        for k, n in enumerate(self.latency):
            if k == len(LATENCY_BUCKETS_S):
                return float(LATENCY_BUCKETS_S[-1])
            upper = float(LATENCY_BUCKETS_S[k])
            if n and seen + n >= rank:
                return lower + (upper - lower) * (rank - seen) / n
            seen += n
            lower = upper
        return float(LATENCY_BUCKETS_S[-1])


def parse_block(block: str, raw: dict[str, int]) -> dict[str, Hour]:
    """The hours of one block hash (``block`` as ``block_of`` names it; fields already decoded), by ``YYYYMMDDHH``."""
    day = block.split(".", 1)[0]
    hours: dict[str, Hour] = {}
    for name, value in raw.items():
        hh, kind = name[:2], name[2:]
        h = hours.get(hh)
        if h is None:
            h = hours[hh] = Hour(day + hh)
        _count(h, kind, value)
    return {h.hour: h for h in hours.values()}


def _count(h: Hour, kind: str, value: int) -> None:
    head = kind[:1]
    if kind == "a":
        h.accepted += value
    elif kind == "d":
        h.delivered += value
    elif kind == "o":
        h.objects += value
    elif kind == "b":
        h.bytes += value
    elif kind == "h":
        h.held += value
    elif head in ("f", "r") and kind[1:2] == ":":
        target = h.filtered if head == "f" else h.rejected
        target[kind[2:]] = target.get(kind[2:], 0) + value
    elif head == "l":
        k = len(LATENCY_BUCKETS_S) if kind[1:] == OVERFLOW else int(kind[1:])
        h.latency[k] += value


def blocks_of(hours: Sequence[str]) -> list[str]:
    """The blocks holding ``hours``, each once, in order."""
    return list(dict.fromkeys(block_of(h) for h in hours))


def total(hours: Iterable[Hour]) -> Hour:
    out = Hour("")
    for h in hours:
        out.add(h)
    return out
