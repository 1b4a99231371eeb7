"""pytest plugin: the HTTP API as a real process (``signal-s3 api`` under uvicorn) for integration tests.

``api`` is one API process on the fleet's Redis with the admin token ``TOKEN``; ``start_api(**env)`` starts more
(another process of the same fleet, or one with other settings), each stopped after the test. Their logs are
attached to a failed test's report, and checked for the admin token and AWS secrets when they stop.
``start_api_process`` starts one with any environment and arguments; ``serve_in_thread`` serves an app object in a
thread of the test process.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.support.celery_fixtures import watch_process
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, venv_command, wait_until
from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY

TOKEN = "admin-" + uuid.uuid4().hex


class Api:
    def __init__(self, process: ManagedProcess, base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.admin = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        self.anon = httpx.Client(base_url=base_url, timeout=60)

    def collector(self, write_key: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, auth=(write_key, ""), timeout=60)

    def install(self, bucket: str, **body: Any) -> dict[str, Any]:
        config = {
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "prefix": "events/",
            **body.pop("config", {}),
        }
        response = self.admin.post(
            "/v1/admin/integration-catalog/amazon_s3/install", json={"name": "S3", "config": config, **body}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def source(self, name: str = "Website", **settings: Any) -> dict[str, Any]:
        response = self.admin.post("/v1/admin/sources", json={"name": name, **settings})
        assert response.status_code == 201, response.text
        return response.json()

    def source_view(self, source_id: str) -> dict[str, Any]:
        response = self.admin.get(f"/v1/admin/sources/{source_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def status(self, integration_id: str) -> dict[str, Any]:
        return self.admin.get(f"/v1/admin/integrations/{integration_id}/status").json()

    def close(self) -> None:
        self.admin.close()
        self.anon.close()


def start_api_process(
    request: pytest.FixtureRequest, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, *extra_args: str
) -> tuple[ManagedProcess, str]:
    """``signal-s3 api`` on a free loopback port with ``env`` (and ``extra_args``, e.g. ``--workers 2``); returns the
    process and its base URL once it answers."""
    port = free_port()
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    process = ManagedProcess(
        [*venv_command("signal-s3"), "api", "--host", "127.0.0.1", "--port", str(port), *extra_args],
        name=f"api-{port}",
        env=full_env,
        log_dir=tmp_path_factory.mktemp("api-logs"),
    )
    watch_process(request.node, process)
    process.start()
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not process.running():
            raise AssertionError(f"the API exited: {process.describe()}")
        try:
            httpx.get(f"{base_url}/signin", timeout=1)  # any answer: uvicorn listens once the app has started
        except httpx.HTTPError:
            return False
        return True

    wait_until(ready, 30, interval_s=0.1, message=lambda: f"the API did not answer: {process.describe()}")
    return process, base_url


def _stop(client: Api) -> None:
    client.close()
    client.process.stop(timeout=15)
    log = client.process.log_text()
    assert TOKEN not in log
    assert SECRET_ACCESS_KEY not in log


@pytest.fixture
def start_api(
    request: pytest.FixtureRequest, fleet: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Api]]:
    """Factory: ``start_api(SIGNAL_X="...")`` -> another API process of the fleet, with these settings on top."""
    started: list[Api] = []

    def start(**env: str) -> Api:
        process, base_url = start_api_process(
            request, {**fleet.env, "SIGNAL_ADMIN_TOKEN": TOKEN, **env}, tmp_path_factory
        )
        started.append(Api(process, base_url))
        return started[-1]

    yield start
    for client in started:
        _stop(client)


@pytest.fixture
def api(start_api: Callable[..., Api]) -> Api:
    # with the access log (off by default), so that the checks of what a log never holds see every request line
    return start_api(SIGNAL_API_ACCESS_LOG="true")


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread of this process; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, message="uvicorn did not start")
        assert server.started, "uvicorn exited at start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
