"""Real processes for integration tests: redis-server, Celery worker and beat.

Every process runs in its own process group, writes its output to a log file, binds 127.0.0.1 only and is stopped by
its own PID / process group, never by name.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import redis

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    interval_s: float = 0.05,
    message: str | Callable[[], str] = "condition not met",
) -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout_s`` passes (AssertionError).

    ``message`` may be a callable so that a costly description (a log tail, a listing) is built only on failure.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (waited {timeout_s:g}s)")
        time.sleep(interval_s)


def venv_command(name: str) -> list[str]:
    """The console script ``name`` of the running interpreter's environment (the project venv under pytest)."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed in {Path(sys.executable).parent} nor on PATH")
    return [found]


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc."""
    children: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except FileNotFoundError:
        return []
    listed = False
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        listed = True
        children.extend(int(p) for p in text.split())
    if listed:
        return sorted(set(children))
    # Kernels without CONFIG_PROC_CHILDREN: scan every process's parent.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the command name, which is parenthesised and may contain spaces.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class ManagedProcess:
    """A subprocess in its own process group with its output in ``<log_dir>/<name>.log``."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        name: str,
        log_dir: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        self.args = [str(a) for a in args]
        self.name = name
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="signal-proc-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / f"{name}.log"
        self.env = dict(env) if env is not None else dict(os.environ)
        self.cwd = Path(cwd) if cwd is not None else REPO_ROOT
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def describe(self) -> str:
        state = "running" if self.running() else f"exited with {self.returncode}"
        return f"{self.name} (pid {self.popen.pid if self.popen else '-'}, {state}); log tail:\n{self.log_tail()}"

    def wait_for_log(self, pattern: str, timeout_s: float, *, start_offset: int = 0) -> re.Match[str]:
        """Wait until the log (from ``start_offset`` characters on) matches the regex ``pattern``.

        Fails at once, with the log tail, if the process exits first.
        """
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            match = regex.search(self.log_text(), start_offset)
            if match is None and not self.running():
                raise AssertionError(f"{self.name} exited before logging {pattern!r}: {self.describe()}")
            return match

        return wait_until(
            found,
            timeout_s,
            interval_s=0.1,
            message=lambda: f"{self.name} did not log {pattern!r}: {self.describe()}",
        )

    def signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass

    def send_signal(self, sig: int) -> None:
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(sig)

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the main process to exit; its exit code, or None on timeout."""
        if self.popen is None:
            return None
        try:
            return self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send ``sig`` to the main process, wait up to ``timeout`` seconds, then SIGKILL the whole group.

        Returns the main process's exit code (negative: killed by that signal).
        """
        if self.popen is None:
            return None
        self.send_signal(sig)
        code = self.wait(timeout)
        if code is None:
            self.kill()
            code = self.popen.returncode
        else:
            # Leftovers of the group (a pool child that outlived its parent) must not leak into the next test.
            self.signal_group(signal.SIGKILL)
        return code

    def kill(self) -> int | None:
        """SIGKILL the whole process group at once (a crash, as far as the process can tell)."""
        if self.popen is None:
            return None
        self.signal_group(signal.SIGKILL)
        return self.wait(10.0)

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(ManagedProcess):
    """A private redis-server on a free loopback port; ``extra_args`` like ``["--appendonly", "yes"]``."""

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | str | None = None,
        extra_args: Sequence[str] = (),
        log_dir: Path | str | None = None,
        binary: str = "redis-server",
    ) -> None:
        self.port = port if port is not None else free_port()
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="signal-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = list(extra_args)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip
        super().__init__(args, name=f"redis-{self.port}", log_dir=log_dir or self.data_dir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    def ping(self) -> bool:
        try:
            with self.client(socket_connect_timeout=0.5, socket_timeout=0.5) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self, timeout_s: float = 10.0) -> RedisServer:  # type: ignore[override]
        """Start (or restart, same port and data dir: an AOF is replayed) and wait until it answers PING."""
        super().start()

        def ready() -> bool:
            if not self.running():
                raise AssertionError(f"redis-server exited at start: {self.describe()}")
            return self.ping()

        wait_until(ready, timeout_s, message=lambda: f"redis-server did not answer PING: {self.describe()}")
        return self


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _merged_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """os.environ plus ``env``, with this checkout first on PYTHONPATH (children import the code under test)."""
    merged = dict(os.environ)
    merged.update(env or {})
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), merged.get("PYTHONPATH", "")) if p)
    return merged


class CeleryWorker(ManagedProcess):
    """``celery -A workers.app worker`` with its own node name, ready once its log says so."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        queues: str = "ingest,flush",
        concurrency: int = 2,
        pool: str = "prefork",
        extra_args: Sequence[str] = (),
        name: str | None = None,
        log_dir: Path | str | None = None,
        app: str = "workers.app",
    ) -> None:
        self.node_name = name or _unique("worker")
        self.queues = queues
        self.concurrency = concurrency
        self.pool = pool
        args = [
            *venv_command("celery"),
            "-A", app,
            "worker",
            "-Q", queues,
            "-c", str(concurrency),
            "-P", pool,
            "--without-mingle",
            "--without-gossip",
            "-n", f"{self.node_name}@%h",
            "--loglevel", "INFO",
            *extra_args,
        ]  # fmt: skip
        super().__init__(args, name=self.node_name, log_dir=log_dir, env=_merged_env(env))

    def start(self, timeout_s: float = 60.0) -> CeleryWorker:  # type: ignore[override]
        offset = len(self.log_text())
        super().start()
        self.wait_for_log(rf"{re.escape(self.node_name)}@\S+ ready\.", timeout_s, start_offset=offset)
        return self

    def child_pids(self) -> list[int]:
        """The pool processes (prefork) of this worker."""
        return child_pids(self.pid)

    def kill(self) -> int | None:
        """SIGKILL the main process and its pool children, as a machine crash or an OOM kill would."""
        if self.popen is None:
            return None
        for pid in [self.pid, *self.child_pids()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return super().kill()


class CeleryBeat(ManagedProcess):
    """``celery -A workers.app beat`` with its schedule file under ``schedule_dir``."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        schedule_dir: Path | str | None = None,
        *,
        extra_args: Sequence[str] = (),
        log_dir: Path | str | None = None,
        app: str = "workers.app",
    ) -> None:
        self.schedule_dir = (
            Path(schedule_dir) if schedule_dir is not None else Path(tempfile.mkdtemp(prefix="signal-beat-"))
        )
        self.schedule_dir.mkdir(parents=True, exist_ok=True)
        args = [
            *venv_command("celery"),
            "-A", app,
            "beat",
            "-s", str(self.schedule_dir / "celerybeat-schedule"),
            "--loglevel", "INFO",
            *extra_args,
        ]  # fmt: skip
        super().__init__(args, name=_unique("beat"), log_dir=log_dir or self.schedule_dir, env=_merged_env(env))

    def start(self, timeout_s: float = 30.0) -> CeleryBeat:  # type: ignore[override]
        offset = len(self.log_text())
        super().start()
        self.wait_for_log(r"beat: Starting\.\.\.", timeout_s, start_offset=offset)
        return self
