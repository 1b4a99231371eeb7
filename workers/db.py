"""The process's Redis connection, and the start-up check of the settings the buffers rely on."""

from __future__ import annotations

import logging
import os

import redis

from workers.settings import get_settings

log = logging.getLogger(__name__)
_clients: dict[tuple[int, str], redis.Redis] = {}


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients return bytes: buffered event lines must stay bytes)."""
    return value.decode() if isinstance(value, bytes) else value


def redis_client(url: str | None = None) -> redis.Redis:
    """One pooled client per process (never shared across a fork) and URL."""
    url = url or get_settings().redis_url
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = redis.Redis.from_url(url, health_check_interval=30)
    return client


def eviction_warning(r: redis.Redis) -> str | None:
    """A loud warning when Redis may evict buffered events; None when the policy is safe."""
    try:
        policy = r.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:  # CONFIG disabled (managed Redis): say so instead of guessing
        return ("cannot read Redis maxmemory-policy (CONFIG is disabled); make sure it is 'noeviction', "
                "or buffered events may be evicted and lost")
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy != "noeviction":
        return (f"Redis maxmemory-policy is '{policy}': buffered events can be EVICTED AND LOST under memory "
                "pressure. Set 'maxmemory-policy noeviction' (and 'appendonly yes', 'appendfsync everysec').")
    return None
