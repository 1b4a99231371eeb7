"""pytest plugin: the topology a test runs on, and the servers of the scaled one.

``topology`` is ``redis`` (one Redis is broker and store, as ``make run``) unless a test is parametrised with
``@pytest.mark.parametrize("topology", [...], indirect=True)``:

* ``scaled``: RabbitMQ quorum queues as the broker (one private node per session, its queues deleted before each
  test) and a Redis Cluster of three masters for buffers, registry and counters (one per session, flushed before each
  test);
* ``scaled-replicated``: the same broker and a fresh cluster of three masters with one replica each, for tests that
  take a master down.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.scaled import MISSING_RABBITMQ, RABBITMQ_BIN, RabbitMQNode, RedisClusterServers

TOPOLOGIES = ("redis", "scaled", "scaled-replicated")


@pytest.fixture
def topology(request: pytest.FixtureRequest) -> str:
    value = getattr(request, "param", "redis")
    assert value in TOPOLOGIES, value
    return str(value)


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQNode]:
    """A private RabbitMQ node for the session (fails, never skips, when rabbitmq-server is not installed)."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        pytest.fail(MISSING_RABBITMQ, pytrace=False)
    node = RabbitMQNode(tmp_path_factory.mktemp("rabbitmq"))
    try:
        node.start()
        yield node
    finally:
        node.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of three masters for the session."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"), masters=3)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A fresh Redis Cluster of three masters with one replica each (its topology is changed by the test)."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster-replicated"), masters=3, replicas=1)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, topology: str) -> RedisClusterServers:
    """The Redis Cluster of the test's topology."""
    if topology == "scaled":
        return request.getfixturevalue("redis_cluster")  # type: ignore[no-any-return]
    if topology == "scaled-replicated":
        return request.getfixturevalue("redis_cluster_replicated")  # type: ignore[no-any-return]
    raise AssertionError(f"the {topology} topology has no Redis Cluster")
