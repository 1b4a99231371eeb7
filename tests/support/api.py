"""The HTTP API for tests: ``signal-s3 api`` as a real process, or an app served by uvicorn in a thread of the test."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.support.celery_fixtures import watch_process
from tests.support.processes import REPO_ROOT, ManagedProcess, free_port, venv_command, wait_until


def start_api(request: pytest.FixtureRequest, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory,
              *extra_args: str) -> tuple[ManagedProcess, str]:
    """``signal-s3 api`` on a free loopback port with ``env`` (and ``extra_args``, e.g. ``--workers 2``); returns the
    process and its base URL once it answers."""
    port = free_port()
    full_env = {**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}
    process = ManagedProcess([*venv_command("signal-s3"), "api", "--host", "127.0.0.1", "--port", str(port),
                              *extra_args],
                             name=f"api-{port}", env=full_env, log_dir=tmp_path_factory.mktemp("api-logs"))
    watch_process(request.node, process)
    process.start()
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not process.running():
            raise AssertionError(f"the API exited: {process.describe()}")
        try:
            return httpx.get(f"{base_url}/openapi.json", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30, interval_s=0.1, message=lambda: f"the API did not answer: {process.describe()}")
    return process, base_url


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread of this process; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, message="uvicorn did not start")
        assert server.started, "uvicorn exited at start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
