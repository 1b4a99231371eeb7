"""pytest plugin: one private redis-server per test session, emptied before each test, and the fleet's environment.

On the scaled topologies (tests/support/scaled_fixtures.py) the store is a Redis Cluster and the broker RabbitMQ.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import kombu.pools
import pytest
import redis
from cryptography.fernet import Fernet

from tests.support.processes import RedisServer

MISSING_REDIS = (
    "redis-server is not on PATH. The integration tests start their own redis-server on a free loopback port. "
    "`make test` installs it (Debian's redis-server package, as root); otherwise install it yourself, "
    "e.g. `sudo apt-get install redis-server` or `brew install redis`."
)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the whole session on a free 127.0.0.1 port (no persistence)."""
    if shutil.which("redis-server") is None:
        pytest.exit(MISSING_REDIS, returncode=4)
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop(timeout=10.0)


@pytest.fixture
def redis_client(request: pytest.FixtureRequest, topology: str) -> Iterator[redis.Redis]:
    """A client of the session's redis-server (or of the topology's Redis Cluster), emptied before the test."""
    if topology == "redis":
        client = request.getfixturevalue("redis_server").client()
        client.flushall()
    else:
        cluster = request.getfixturevalue("cluster")
        cluster.flushall()
        client = cluster.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def fleet_secret_key() -> str:
    """A Fernet key generated once per test session (SIGNAL_SECRET_KEY)."""
    return Fernet.generate_key().decode()


def _clear_settings_cache() -> None:
    try:
        from workers.settings import get_settings
    except ImportError:
        return
    get_settings.cache_clear()


@pytest.fixture
def fleet_env(
    request: pytest.FixtureRequest,
    topology: str,
    redis_client: redis.Redis,
    fleet_secret_key: str,
) -> Iterator[dict[str, str]]:
    """Environment variables for fleet processes, also applied to this test process (settings cache cleared).

    The returned dict is read by ``start_worker`` / ``start_beat`` when they are called: a test or fixture may add
    entries to it first (e.g. ``AWS_ENDPOINT_URL_S3``). Depends on ``redis_client``, so Redis starts empty; on the
    scaled topologies the broker's queues start empty too.
    """
    if topology == "redis":
        env = {"SIGNAL_REDIS_URL": request.getfixturevalue("redis_server").url}
    else:
        rabbitmq = request.getfixturevalue("rabbitmq")
        rabbitmq.reset()
        # kombu's producer pools are per process and remember which queues they declared: forget the deleted ones
        kombu.pools.reset()
        env = {
            "SIGNAL_REDIS_URL": request.getfixturevalue("cluster").url,
            "SIGNAL_REDIS_CLUSTER": "true",
            "SIGNAL_BROKER_URL": rabbitmq.url,
        }
    env.update(
        {
            "SIGNAL_SECRET_KEY": fleet_secret_key,
            "SIGNAL_FLUSH_INTERVAL_S": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        _clear_settings_cache()
        yield env
    # The environment is restored by now: the next get_settings() reads it afresh.
    _clear_settings_cache()
