"""The process helpers the integration tests stand on: they start real processes and stop exactly what they start."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.support.processes import (
    CeleryBeat,
    CeleryWorker,
    ManagedProcess,
    RedisServer,
    free_port,
    pid_alive,
    wait_until,
)


def test_wait_until_returns_the_value_or_fails_with_the_message() -> None:
    assert wait_until(lambda: 42, timeout_s=1) == 42
    with pytest.raises(AssertionError, match="the bucket stayed empty"):
        wait_until(lambda: False, timeout_s=0.2, message="the bucket stayed empty")


def test_free_port_can_be_bound_on_loopback() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_session_redis_server_answers_on_loopback(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    assert redis_client.ping()
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_client.config_get("bind")["bind"] == "127.0.0.1"
    assert redis_client.config_get("save")["save"] == ""
    redis_client.set("greeting", "hello")
    assert redis_client.get("greeting") == b"hello"


def test_redis_client_starts_each_test_empty(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0


def test_redis_server_takes_extra_args_and_replays_its_aof_after_a_kill(tmp_path: Path) -> None:
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction"]
    server = RedisServer(data_dir=tmp_path, extra_args=aof)
    server.start()
    try:
        with server.client() as client:
            assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
            client.rpush("buffer", "a", "b")
        server.kill()
        assert not server.running()
        server.start()
        with server.client() as client:
            assert client.lrange("buffer", 0, -1) == [b"a", b"b"]
    finally:
        server.stop()


def test_stop_escalates_to_sigkill_for_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
    )
    process = ManagedProcess([sys.executable, "-c", script], name="stubborn", log_dir=tmp_path).start()
    process.wait_for_log("armed", timeout_s=10)
    assert process.stop(signal.SIGTERM, timeout=0.5) == -signal.SIGKILL
    assert "armed" in process.log_text()


def test_kill_takes_down_the_whole_process_group(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('child', child.pid, flush=True); time.sleep(60)"
    )
    process = ManagedProcess([sys.executable, "-c", script], name="parent", log_dir=tmp_path).start()
    child_pid = int(process.wait_for_log(r"child (\d+)", timeout_s=10).group(1))
    process.kill()
    assert not process.running()
    wait_until(lambda: not pid_alive(child_pid), timeout_s=5, message=f"child {child_pid} survived the group kill")


def test_worker_becomes_ready_and_stops_on_sigterm(start_worker: Callable[..., CeleryWorker]) -> None:
    worker = start_worker(concurrency=2)
    assert worker.running()
    assert f"{worker.node_name}@" in worker.log_text()
    children = wait_until(
        lambda: len(worker.child_pids()) == 2 and worker.child_pids(),
        timeout_s=10,
        message=lambda: f"expected 2 pool processes: {worker.describe()}",
    )
    assert worker.stop(signal.SIGTERM, timeout=30) == 0, worker.describe()
    wait_until(lambda: not any(pid_alive(pid) for pid in children), timeout_s=5, message="pool processes survived")


def test_killed_worker_leaves_no_pool_processes(start_worker: Callable[..., CeleryWorker]) -> None:
    worker = start_worker(concurrency=2)
    children = wait_until(lambda: worker.child_pids(), timeout_s=10, message="no pool processes")
    worker.kill()
    assert worker.returncode == -signal.SIGKILL
    wait_until(lambda: not any(pid_alive(pid) for pid in children), timeout_s=5, message="pool processes survived")


def test_beat_starts_with_its_own_schedule_file(start_beat: Callable[..., CeleryBeat]) -> None:
    beat = start_beat()
    assert beat.running()
    wait_until(
        lambda: any(beat.schedule_dir.glob("celerybeat-schedule*")),
        timeout_s=10,
        message=lambda: f"no schedule file in {beat.schedule_dir}: {beat.describe()}",
    )
    assert beat.stop(signal.SIGTERM, timeout=15) == 0, beat.describe()
