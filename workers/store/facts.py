"""What the fleet learned of an integration's bucket, shared by every worker: whether it has Object Lock (every
upload then carries a checksum, whatever the integration's ``checksums`` says). Learned by the install's and the
connection check's GetBucketObjectLockConfiguration, or from the store's own refusal of an upload without one."""

from __future__ import annotations

import redis

from workers.store import keys
from workers.store.db import text


def object_lock(r: redis.Redis, integration_id: str) -> bool:
    return text(r.hget(keys.bucket_facts(integration_id), "object_lock") or b"0") == "1"


def set_object_lock(r: redis.Redis, integration_id: str, enabled: bool, *, now_ms: int) -> None:
    r.hset(keys.bucket_facts(integration_id), mapping={"object_lock": int(enabled), "checked_ms": now_ms})
