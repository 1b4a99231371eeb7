"""What the fleet learned of an integration's bucket and role, shared by every worker:

- whether the bucket has Object Lock (every upload then carries a checksum, whatever the integration's ``checksums``
  says), learned by the install's and the connection check's GetBucketObjectLockConfiguration, or from the store's own
  refusal of an upload without one;
- until when STS refused the role (``SIGNAL_STS_REFUSAL_HOLD_S`` after a refusal): no worker asks STS again before,
  so however many workers hold batches, the customer's CloudTrail sees one refused call, not one per process. A
  replay forgets it."""

from __future__ import annotations

import redis

from workers.store import keys
from workers.store.db import text


def object_lock(r: redis.Redis, integration_id: str) -> bool:
    return text(r.hget(keys.bucket_facts(integration_id), "object_lock") or b"0") == "1"


def set_object_lock(r: redis.Redis, integration_id: str, enabled: bool, *, now_ms: int) -> None:
    r.hset(keys.bucket_facts(integration_id), mapping={"object_lock": int(enabled), "checked_ms": now_ms})


def role_refused_until_ms(r: redis.Redis, integration_id: str) -> int:
    return int(r.hget(keys.bucket_facts(integration_id), "role_refused_until_ms") or 0)


def set_role_refused(r: redis.Redis, integration_id: str, *, until_ms: int) -> None:
    r.hset(keys.bucket_facts(integration_id), "role_refused_until_ms", until_ms)


def forget_role_refused(r: redis.Redis, integration_id: str) -> None:
    r.hdel(keys.bucket_facts(integration_id), "role_refused_until_ms")
