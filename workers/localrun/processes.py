"""The servers ``make run`` starts: each in its own process group, its output in a log file, stopped together."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


class Processes:
    """The servers this program started, each in its own process group, output in ``<log_dir>/<name>.log``."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def log_has(self, name: str, text: str) -> bool:
        return text in (self.log_dir / f"{name}.log").read_text(errors="replace")

    def start(self, name: str, args: list[str], ready: Callable[[], bool], timeout_s: float) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.running[name] = popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not ready():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.log_dir / name}.log")
            time.sleep(0.1)

    def exited(self) -> list[str]:
        return [name for name, popen in self.running.items() if popen.poll() is not None]

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """SIGTERM each (last started first), wait, then SIGKILL whatever is left of its process group."""
        for popen in reversed(self.running.values()):
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tool(name: str) -> list[str]:
    """A console script of this environment (``celery``, ``moto_server``), else the one on PATH."""
    local = Path(sys.executable).parent / name
    found = local if local.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed: run `make install`")
    return [str(found)]
