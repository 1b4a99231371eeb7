"""Moving the store of a stopped fleet from one Redis to another (a Redis Cluster): ``signal-s3 copy-store``.

Every key of the fleet (``sig:*``: registry, sources, write keys, buffers, sealed and held batches, counters, traces,
the due index) is copied with DUMP / RESTORE and its time to live, so buffered and held events, their batch ids and
object keys, and every count move as they are. On a cluster each key lands in its own slot: every key of an
integration shares its hash tag, so its scripts keep working there.

It refuses to copy while the source still holds messages of a Redis broker (``ingest`` events not yet buffered, or
messages a worker took and did not acknowledge), or when the target already holds a fleet: the move is drain, stop,
copy, start (README, "Moving to RabbitMQ and a Redis Cluster").
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from workers.errors import Refused
from workers.store import keys

SCAN_COUNT = 1000
_CHUNK = 500
# kombu's Redis transport: the queue lists and the hash of messages taken but not acknowledged


class NotDrained(Refused):
    """The source still holds broker messages, or the target already holds a fleet."""


@dataclass(frozen=True)
class CopyReport:
    keys: int
    bytes: int
    integrations: int

    def summary(self) -> dict[str, int]:
        return {"keys": self.keys, "bytes": self.bytes, "integrations": self.integrations}


@dataclass(frozen=True)
class BrokerKeys:
    """Where a Redis broker keeps messages: the lists of its queues and the hash of messages taken, not
    acknowledged (``workers.queue.topology.redis_broker_keys``)."""

    queues: tuple[str, ...]
    unacked: str


def check_drained(source: redis.Redis, broker: BrokerKeys) -> None:
    pipe = source.pipeline(transaction=False)
    for name in broker.queues:
        pipe.llen(name)
    pipe.hlen(broker.unacked)
    *queued, unacked = pipe.execute()
    if sum(queued) or unacked:
        raise NotDrained(
            f"the source still holds {sum(queued)} queued and {unacked} unacknowledged broker messages: "
            "stop the producers, let the workers empty the queues, then stop them and copy"
        )


def copy_store(source: redis.Redis, target: redis.Redis, *, broker: BrokerKeys) -> CopyReport:
    """Copy every ``sig:*`` key of ``source`` to ``target``; raises NotDrained before copying anything when the move
    could lose or mix events."""
    check_drained(source, broker)
    if target.exists(keys.INTEGRATIONS) or target.exists(keys.SOURCES):
        raise NotDrained("the target already holds a fleet's registry: copy into an empty Redis only")
    copied = size = 0
    batch: list[bytes] = []
    for key in source.scan_iter(match=f"{keys.PREFIX}:*", count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= _CHUNK:
            n, b = _copy(source, target, batch)
            copied, size, batch = copied + n, size + b, []
    if batch:
        n, b = _copy(source, target, batch)
        copied, size = copied + n, size + b
    return CopyReport(copied, size, target.scard(keys.INTEGRATIONS))


def _copy(source: redis.Redis, target: redis.Redis, names: list[bytes]) -> tuple[int, int]:
    read = source.pipeline(transaction=False)
    for name in names:
        read.pttl(name)
        read.dump(name)
    replies = read.execute()
    write = target.pipeline(transaction=False)
    copied = size = 0
    for n, name in enumerate(names):
        ttl_ms, data = replies[2 * n], replies[2 * n + 1]
        if data is None or ttl_ms == -2:
            continue  # expired meanwhile
        write.restore(name, max(ttl_ms, 0), data)
        copied += 1
        size += len(data)
    write.execute()
    return copied, size
