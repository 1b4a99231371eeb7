"""The servers a bench run starts: redis-server, moto_server, Celery workers and beat; all stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.support.processes import CeleryBeat, CeleryWorker, ManagedProcess, RedisServer, child_pids
from tests.support.s3_fixtures import MotoServer, s3_client

ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc; 0 where unreadable)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = [pid]
    for child in child_pids(pid):
        out.extend(process_tree(child))
    return out


class Stack:
    """One redis-server (no persistence) and one moto_server for the whole run; workers come and go per phase."""

    def __init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix="signal-bench-"))
        self.redis = RedisServer(log_dir=self.log_dir, extra_args=["--maxmemory-policy", "noeviction"])
        self.moto = MotoServer()
        self.processes: list[ManagedProcess] = []
        self.secret_key = Fernet.generate_key().decode()

    def start(self) -> Stack:
        self.redis.start()
        self.moto.start()
        return self

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of fleet processes (and of this process, for the in-process phases)."""
        return {
            "SIGNAL_REDIS_URL": self.redis.url,
            "SIGNAL_SECRET_KEY": self.secret_key,
            "SIGNAL_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "SIGNAL_ICEBERG_SQLITE_PATH": str(self.log_dir / "iceberg" / "catalog.db"),
            **extra,
        }

    def s3(self) -> Any:
        return s3_client(self.moto.endpoint, ACCESS_KEY_ID, SECRET_ACCESS_KEY)

    def worker(
        self,
        env: dict[str, str],
        *,
        queues: str,
        concurrency: int = 2,
        pool: str = "prefork",
        app: str = "workers.app",
        name: str | None = None,
    ) -> CeleryWorker:
        w = CeleryWorker(
            env,
            queues=queues,
            concurrency=1 if pool == "solo" else concurrency,
            pool=pool,
            log_dir=self.log_dir,
            app=app,
            name=name,
        )
        self.processes.append(w)
        return w.start()

    def fleet(
        self,
        env: dict[str, str],
        *,
        ingest_workers: int,
        app: str = "workers.app",
        queue: str = "ingest",
        flush_worker: bool = True,
    ) -> list[CeleryWorker]:
        """The deployed topology: ``ingest_workers`` single-process (``-P solo``) workers on ``queue``, plus one
        prefork ``-c 2`` worker on ``flush`` (idle unless something is sealed)."""
        tag = uuid.uuid4().hex[:6]
        workers = [
            self.worker(env, queues=queue, pool="solo", app=app, name=f"{queue}{i}-{tag}")
            for i in range(ingest_workers)
        ]
        if flush_worker:
            workers.append(self.worker(env, queues="flush", concurrency=2, app=app, name=f"flush-{tag}"))
        return workers

    def beat(self, env: dict[str, str]) -> CeleryBeat:
        b = CeleryBeat(env, schedule_dir=self.log_dir / "beat", log_dir=self.log_dir)
        self.processes.append(b)
        return b.start()

    def stop_process(self, p: ManagedProcess) -> None:
        p.stop(signal.SIGTERM, timeout=20)
        if p in self.processes:
            self.processes.remove(p)

    def stop(self) -> None:
        for p in reversed(self.processes):
            try:
                p.stop(signal.SIGTERM, timeout=20)
            except Exception:  # noqa: BLE001 - keep stopping the rest
                p.kill()
        self.processes.clear()
        self.moto.stop()
        self.redis.stop(timeout=10)
        if os.environ.get("BENCH_KEEP_LOGS") != "1":
            shutil.rmtree(self.log_dir, ignore_errors=True)
