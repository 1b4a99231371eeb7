"""A running fleet for integration tests: real redis-server, moto_server over HTTP, celery worker and beat."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from tests.support.fleet import Sender, install
from tests.support.processes import wait_until

# Short timeouts so failure paths run in seconds; the relations between them are the production ones.
FAST = {
    "SIGNAL_FLUSH_INTERVAL_S": "1",
    "SIGNAL_S3_CONNECT_TIMEOUT_S": "1",
    "SIGNAL_S3_READ_TIMEOUT_S": "3",
    "SIGNAL_S3_MAX_ATTEMPTS": "2",
    "SIGNAL_UPLOAD_TIMEOUT_S": "10",
    "SIGNAL_RETRY_BACKOFF_BASE_S": "0.2",
    "SIGNAL_RETRY_BACKOFF_MAX_S": "1",
    "SIGNAL_VISIBILITY_TIMEOUT_S": "10",
}


@dataclass
class Fleet:
    r: redis.Redis
    env: dict[str, str]
    sender: Sender
    s3: Any  # admin client straight to moto, for reading back
    endpoint: str  # what the fleet talks to (moto, or the fault proxy)

    def install(self, bucket: str, **config: Any) -> str:
        return install(self.r, bucket, **config)

    def stats(self, integration_id: str) -> dict[str, int]:
        from workers.store import keys

        return {k.decode(): int(v) for k, v in self.r.hgetall(keys.stats(integration_id)).items()}

    def wait_delivered(self, integration_id: str, events: int, timeout_s: float = 60.0) -> None:
        wait_until(
            lambda: self.stats(integration_id).get("delivered_events", 0) >= events,
            timeout_s,
            message=lambda: f"delivered {self.stats(integration_id)} of {events} events",
        )


@pytest.fixture
def fleet(
    fleet_env: dict[str, str],
    redis_client: redis.Redis,
    moto_server: Any,
    s3_admin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Fleet]:
    """Env for fleet processes pointed at the plain moto_server; start workers/beat with start_worker/start_beat."""
    fleet_env.update(FAST)
    fleet_env["AWS_ENDPOINT_URL_S3"] = moto_server.endpoint
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server.endpoint)
    from workers.settings import get_settings

    get_settings.cache_clear()
    sender = Sender(get_settings())
    yield Fleet(redis_client, fleet_env, sender, s3_admin, moto_server.endpoint)
    sender.close()


@pytest.fixture
def proxied(fleet: Fleet, fault_proxy: Any) -> Fleet:
    """The fleet talks to S3 through the fault proxy."""
    fleet.env["AWS_ENDPOINT_URL_S3"] = fault_proxy.endpoint_url
    fleet.endpoint = fault_proxy.endpoint_url
    return fleet


Waiter = Callable[..., None]


# -- the web console, served in this process (uvicorn in a thread) against the fleet's Redis and moto -----------------

CONSOLE_TOKEN = "console-token-0123456789abcdef"


@pytest.fixture
def console_settings(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The settings of a console app: the fleet's, with an admin token."""
    monkeypatch.setenv("SIGNAL_ADMIN_TOKEN", CONSOLE_TOKEN)
    from workers.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def console_url(console_settings: Any) -> Iterator[str]:
    from tests.support.api import serve_in_thread
    from workers.web.app import create_app

    with serve_in_thread(create_app(console_settings)) as base_url:
        yield base_url


@pytest.fixture
def console(console_url: str) -> Iterator[Any]:
    """A signed-in ``ConsoleClient``."""
    from tests.support.console import ConsoleClient

    client = ConsoleClient(console_url)
    assert client.sign_in(CONSOLE_TOKEN).status_code == 303
    yield client
    client.close()
