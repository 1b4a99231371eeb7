"""The fleet-wide lock on commits to one Iceberg table, with a fencing token.

Commits to one table are serialised so that concurrent flushes rarely conflict (each conflict costs a reload and a
new manifest list). Every lock taken gets a fence one larger than any before it; the commit records it in its
snapshot, and a holder whose lease ran out finds a newer fence in the table and stops (``workers.sink.iceberg.commit``).
Exactly-once does not rest on the lock: the commit's own check does (the lock only makes it rare that it is needed).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from workers.errors import Failure, TransientError
from workers.store import keys
from workers.store.scripts import SCRIPTS

POLL_S = 0.05


@contextmanager
def held(r: redis.Redis, table: str, *, lease_s: float, wait_s: float, floor: int = 0) -> Iterator[int]:
    """Hold the lock of ``table`` (its uuid; waiting at most ``wait_s``); yields the fence, above ``floor`` (the
    table's last recorded fence). Raises ``TransientError`` (``IcebergTableBusy``) when another holder keeps it longer
    than ``wait_s``."""
    token = uuid.uuid4().hex
    lock, fence_key = keys.table_lock(table)
    deadline = time.monotonic() + wait_s
    while True:
        fence = int(
            SCRIPTS.table_lock(keys=[lock, fence_key], args=["take", token, int(lease_s * 1000), floor], client=r)
        )
        if fence:
            break
        if time.monotonic() >= deadline:
            raise TransientError(
                Failure(
                    "IcebergTableBusy",
                    f"another worker kept the table's commit lock for over {wait_s:g}s",
                    False,
                    None,
                    None,
                ),
                retry_in_s=wait_s,
            )
        time.sleep(POLL_S)
    try:
        yield fence
    finally:
        SCRIPTS.table_lock(keys=[lock, fence_key], args=["give", token], client=r)


CREATION_LEASE_S = 60.0


def creating(r: redis.Redis, location: str) -> Any:
    """The lock on creating a table at ``location`` (``s3://bucket/prefix``): two workers flushing the first batches
    of a new table at once would each write a first metadata file, and the loser's would stay at the location as
    another table's."""
    name = "create-" + hashlib.sha256(location.encode()).hexdigest()[:32]
    return held(r, name, lease_s=CREATION_LEASE_S, wait_s=CREATION_LEASE_S / 2)
