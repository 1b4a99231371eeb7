"""pytest plugin: Celery worker and beat processes started on demand and always stopped.

``start_worker(**kw)`` and ``start_beat(**kw)`` take the keyword arguments of ``CeleryWorker`` / ``CeleryBeat`` plus
``env`` (overrides on top of ``fleet_env``). When a test fails, the tail of every process log it started is attached
to its report.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.processes import CeleryBeat, CeleryWorker, ManagedProcess

WATCHED: pytest.StashKey[list[ManagedProcess]] = pytest.StashKey()
STOP_TIMEOUT_S = 30.0


def watch_process(node: pytest.Item, process: ManagedProcess) -> None:
    """Attach ``process``'s log tail to ``node``'s report if the test fails."""
    node.stash.setdefault(WATCHED, []).append(process)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    for process in item.stash.get(WATCHED, []):
        report.sections.append((f"log of {process.name} ({report.when})", process.describe()))


def stop_all(processes: list[ManagedProcess], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM every running process at once, wait for each, SIGKILL the process group of any still running."""
    for process in processes:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        if process.wait(max(deadline - time.monotonic(), 0.1)) is None:
            process.kill()
        else:
            process.signal_group(signal.SIGKILL)  # pool children that outlived their parent


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest, fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., CeleryWorker]]:
    """Factory: ``start_worker(queues=..., concurrency=..., pool=..., extra_args=..., env={...})`` -> ready worker."""
    started: list[ManagedProcess] = []
    log_dir = tmp_path_factory.mktemp("celery-logs")

    def start(env: dict[str, str] | None = None, timeout_s: float = 60.0, **kwargs: Any) -> CeleryWorker:
        kwargs.setdefault("log_dir", log_dir)
        worker = CeleryWorker({**fleet_env, **(env or {})}, **kwargs)
        started.append(worker)
        watch_process(request.node, worker)
        return worker.start(timeout_s=timeout_s)

    yield start
    stop_all(started[::-1])


@pytest.fixture
def start_beat(
    request: pytest.FixtureRequest, fleet_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., CeleryBeat]]:
    """Factory: ``start_beat(schedule_dir=..., extra_args=..., env={...})`` -> started beat."""
    started: list[ManagedProcess] = []

    def start(env: dict[str, str] | None = None, timeout_s: float = 30.0, **kwargs: Any) -> CeleryBeat:
        kwargs.setdefault("schedule_dir", tmp_path_factory.mktemp("beat"))
        beat = CeleryBeat({**fleet_env, **(env or {})}, **kwargs)
        started.append(beat)
        watch_process(request.node, beat)
        return beat.start(timeout_s=timeout_s)

    yield start
    stop_all(started[::-1])
