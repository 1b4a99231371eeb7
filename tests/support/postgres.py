"""A private PostgreSQL server for the tests (an Iceberg SQL catalog): Debian's initdb and postgres, a data directory
of the test session, a free 127.0.0.1 port, trust authentication. As root, the server runs as the ``postgres`` user
(PostgreSQL refuses root). Never the machine's own PostgreSQL service."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import ManagedProcess, free_port, wait_until

PASSWORD = "pg-catalog-secret-51f0"  # in the URL as a user would put it; trust authentication never asks for it


def postgres_bin() -> Path:
    given = os.environ.get("POSTGRES_BIN")
    candidates = (
        [given] if given else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[4]))
    )
    for candidate in reversed(candidates):
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise AssertionError("PostgreSQL's initdb is not installed: `make test` installs Debian's postgresql package")


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PostgresServer:
    def __init__(self, base: Path) -> None:
        self.bin = postgres_bin()
        self.dir = base
        self.data = base / "data"
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/signal"

    def start(self) -> PostgresServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o700)
        subprocess.run(
            _as_server_user(
                [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.process = ManagedProcess(
            _as_server_user(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.dir),
                    "-c",
                    "fsync=off",
                    "-c",
                    "max_connections=200",
                ]
            ),  # fmt: skip
            name=f"postgres-{self.port}",
            log_dir=self.dir,
        ).start()
        wait_until(self._ready, 60, message=lambda: f"postgres did not start:\n{self.process.log_tail()}")
        subprocess.run(
            [str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "signal"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self

    def _ready(self) -> bool:
        done = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True, timeout=10
        )
        return done.returncode == 0

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # not under pytest's own temporary directory: it is readable by root alone, and the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="signal-postgres-"))
    server = PostgresServer(base).start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
