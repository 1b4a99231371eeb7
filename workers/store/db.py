"""The process's Redis connection (one Redis, or a Redis Cluster), and the start-up check of the settings the buffers
rely on.

With ``SIGNAL_REDIS_CLUSTER=true`` the client is redis-py's ``RedisCluster``: every key of one integration carries the
hash tag ``{integration_id}``, so each Lua script and each RENAME stays in one slot; pipelines that span integrations
are split per node by the client; a MOVED answer or a failover is followed by refreshing the slot map.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, OutOfMemoryError, SlotNotCoveredError, TryAgainError

from workers.errors import Unavailable
from workers.settings import Settings, get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")
_clients: dict[tuple[int, str, bool], Any] = {}

# Redis errors worth retrying a task for: the connection, a cluster between a master's loss and its replica's
# promotion, a full Redis (noeviction refuses writes until uploads free memory).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    ClusterDownError,
    TryAgainError,
    SlotNotCoveredError,
    OutOfMemoryError,
)


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients return bytes: buffered event lines must stay bytes)."""
    return value.decode() if isinstance(value, bytes) else value


WATCH_ATTEMPTS = 16


class Contended(Unavailable):
    """A value kept changing under an optimistic update (``rewrite``) for every attempt: try again."""


def rewrite(r: Any, key: str, change: Callable[[bytes | None], tuple[T, bytes]], *, what: str) -> T:
    """Replace the value at ``key`` atomically: ``change(current raw value or None)`` returns (result, new value),
    written only if nobody changed the key meanwhile (optimistic WATCH, retried). ``change`` raises to write nothing.
    Returns the result of the ``change`` that was written."""
    for _ in range(WATCH_ATTEMPTS):
        with r.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(key)
                result, value = change(pipe.get(key))
                pipe.multi()
                pipe.set(key, value)
                pipe.execute()
                return result
            except redis.WatchError:
                continue
    raise Contended(f"{what} kept changing while it was being updated; try again")


def connect(settings: Settings | None = None, url: str | None = None) -> redis.Redis:
    """A new client of SIGNAL_REDIS_URL (or ``url``): a ``RedisCluster`` when SIGNAL_REDIS_CLUSTER is set. Both speak
    the same commands; callers type it as ``redis.Redis``."""
    settings = settings or get_settings()
    url = url or settings.redis_url
    if settings.redis_cluster:
        return RedisCluster.from_url(url, health_check_interval=30)  # type: ignore[return-value]
    return redis.Redis.from_url(url, health_check_interval=30)


def redis_client(url: str | None = None) -> redis.Redis:
    """One pooled client per process (never shared across a fork) and URL."""
    settings = get_settings()
    url = url or settings.redis_url
    key = (os.getpid(), url, settings.redis_cluster)
    client = _clients.get(key)
    if client is None:
        client = _clients[key] = connect(settings, url)
    return client


def is_cluster(r: redis.Redis) -> bool:
    return isinstance(r, RedisCluster)


def node_of(r: redis.Redis, key: str) -> redis.Redis:
    """A client of the one server that holds ``key``: ``r`` itself on a single Redis, the key's master on a cluster
    (for commands that must share a connection with a write, such as WAIT)."""
    if isinstance(r, RedisCluster):
        return r.get_redis_connection(r.get_node_from_key(key))
    return r


def node_at(r: redis.Redis, host: str, port: int) -> redis.Redis:
    """A client of the cluster's server at ``host:port`` (an ASK redirection's target); ``r`` on a single Redis."""
    if isinstance(r, RedisCluster):
        node = r.get_node(host=host, port=port)
        if node is None:
            r.nodes_manager.initialize()
            node = r.get_node(host=host, port=port)
        if node is not None:
            return r.get_redis_connection(node)
    return r


def refresh_slots(r: redis.Redis) -> None:
    """Re-read the cluster's slot map (after a MOVED or a lost node); nothing to do on a single Redis."""
    if isinstance(r, RedisCluster):
        r.nodes_manager.initialize()


def servers(r: redis.Redis) -> list[tuple[str, redis.Redis]]:
    """(name, client) of every server holding data: the one Redis, or every master of a cluster."""
    if isinstance(r, RedisCluster):
        return [(node.name, r.get_redis_connection(node)) for node in r.get_primaries()]
    kwargs = r.connection_pool.connection_kwargs
    return [(f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}", r)]


def eviction_warning(r: redis.Redis) -> str | None:
    """A loud warning when one Redis server may evict buffered events; None when the policy is safe."""
    try:
        policy = r.config_get("maxmemory-policy").get("maxmemory-policy")
    except redis.ResponseError:  # CONFIG disabled (managed Redis): say so instead of guessing
        return (
            "cannot read Redis maxmemory-policy (CONFIG is disabled); make sure it is 'noeviction', "
            "or buffered events may be evicted and lost"
        )
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy != "noeviction":
        return (
            f"Redis maxmemory-policy is '{policy}': buffered events can be EVICTED AND LOST under memory "
            "pressure. Set 'maxmemory-policy noeviction' (and 'appendonly yes', 'appendfsync everysec')."
        )
    return None


def eviction_warnings(r: redis.Redis) -> list[str]:
    """``eviction_warning`` of every server holding data (each master of a cluster), named."""
    out = []
    for name, client in servers(r):
        warning = eviction_warning(client)
        if warning:
            out.append(f"{name}: {warning}" if is_cluster(r) else warning)
    return out
