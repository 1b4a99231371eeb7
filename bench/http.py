"""The front door: the collection API next to a bare ASGI app on the same server stack, loaded by ``wrk`` on loopback.

Every run is bounded (``wrk -d``), binds 127.0.0.1 only and stops its servers by PID. Each measured run of the API
gets its own source and integration, so what it accepted can be checked in the buffers afterwards (no ingest worker
competes for the CPUs while the API is measured; the queue holds the tasks until ``check_buffers``).
"""

from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.events import segment_calls
from bench.procs import Stack, cpu_s, process_tree
from tests.support.processes import ManagedProcess, free_port, venv_command, wait_until
from workers.integrations import registry, sources
from workers.store import keys
from workers.web.app import SERVER_OPTIONS

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
BATCH_EVENTS = 20
CONNECTIONS = 64


def ensure_wrk() -> str:
    """The ``wrk`` binary (``make bench`` installs Debian's package when it is missing and runs as root)."""
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError(
            "wrk is not installed: the HTTP phases load the API with it. Install it "
            "('apt-get install wrk' on Debian/Ubuntu, 'brew install wrk' on macOS), or run make bench "
            "as root on Debian/Ubuntu to have it installed."
        )
    return found


class Bodies:
    """Request bodies on disk for wrk: one track call, and a batch of 20 realistic calls."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="signal-bench-bodies-"))
        calls = segment_calls(BATCH_EVENTS, seed=31)
        track = next(c for c in calls if c["type"] == "track")
        self.track = self.dir / "track.json"
        self.track.write_text(json.dumps({k: v for k, v in track.items() if k != "type"}))
        self.batch = self.dir / "batch.json"
        self.batch.write_text(json.dumps({"batch": calls, "context": {"library": {"name": "bench"}}}))

    def for_path(self, path: str) -> tuple[Path, int]:
        """(body file, events per request)."""
        return (self.batch, BATCH_EVENTS) if path == "/v1/batch" else (self.track, 1)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    """``signal-s3 api [--workers N]`` or the bare app, on a free loopback port."""

    def __init__(self, stack: Stack, env: dict[str, str], *, bare: bool, workers: int = 1) -> None:
        self.port = free_port()
        self.bare = bare
        if bare:
            # the same server stack as `signal-s3 api` (SERVER_OPTIONS: event loop, HTTP parser)
            args = [
                *venv_command("python"),
                "-m",
                "uvicorn",
                "bench.bare:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-server-header",
                "--no-proxy-headers",
                "--loop",
                SERVER_OPTIONS["loop"],
                "--http",
                SERVER_OPTIONS["http"],
            ]
        else:
            args = [
                *venv_command("signal-s3"),
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ]
        name = f"{'bare' if bare else 'api'}-{self.port}"
        full_env = {**os.environ, **env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        self.process = ManagedProcess(args, name=name, env=full_env, log_dir=stack.log_dir)
        self.workers = workers
        self.stack = stack

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        self.process.start()
        self.stack.processes.append(self.process)

        def ready() -> bool:
            if not self.process.running():
                raise RuntimeError(f"server exited: {self.process.describe()}")
            try:
                return httpx.get(f"{self.url}/signin", timeout=1).status_code > 0  # any answer: it serves
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, interval_s=0.1, message=lambda: f"server did not answer: {self.process.describe()}")
        if self.workers > 1:
            wait_until(lambda: len(self.pids()) > self.workers, 30, message=lambda: "API processes did not start")
        return self

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def stop(self) -> None:
        self.stack.stop_process(self.process)


def write_source(r: redis.Redis, bucket: str, endpoint_url: str, name: str, **config: Any) -> tuple[str, str]:
    """A new source with one integration: (authorization header value, integration id). Its rate limit is the
    highest a source can have, so the limiter runs on every request and never refuses one (the fleet's default,
    1,000 events/s, would turn most batch requests into 429s)."""
    source = sources.create(r, name, rate_limit_eps=sources.RATE_LIMIT_MAX_EPS)
    body = {
        "name": "Amazon S3",
        "variant": "default",
        "delivery_mode": "server_side",
        "source_id": source.id,
        "config": {
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "prefix": "events/",
            "endpoint_url": endpoint_url,
            **config,
        },
    }
    iid = registry.install(r, body).id
    auth = "Basic " + base64.b64encode(f"{source.write_key}:".encode()).decode()
    return auth, iid


def run_wrk(
    url: str,
    path: str,
    bodies: Bodies,
    auth: str,
    *,
    connections: int,
    duration_s: float,
    delay_ms: float = 0.0,
    threads: int = 2,
    fixed: bool = True,
) -> dict[str, Any]:
    """One bounded ``wrk`` run; the script's JSON summary plus rates. ``fixed``: one body per wrk thread, sent again
    and again, so the load generator spends nothing per request on its bodies (the ratios); else a unique id in every
    request (the soak, which checks every event lands once)."""
    body, per_request = bodies.for_path(path)
    env = {
        **os.environ,
        "BENCH_PATH": path,
        "BENCH_BODY": str(body),
        "BENCH_AUTH": auth,
        "BENCH_TAG": uuid.uuid4().hex[:10],
        "BENCH_DELAY_MS": f"{delay_ms:.3f}",
        "BENCH_FIXED": "1" if fixed else "0",
    }
    threads = max(1, min(threads, connections))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            ensure_wrk(),
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{duration_s:g}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            url + path,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {out.returncode}): {out.stdout[-800:]} {out.stderr[-800:]}")
    res: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    seconds = res["duration_us"] / 1e6
    res.update(
        path=path,
        connections=connections,
        delay_ms=delay_ms,
        seconds=seconds,
        req_per_s=res["requests"] / seconds,
        events_per_request=per_request,
        events_per_s=res["requests"] * per_request / seconds,
        errors=res["connect"] + res["read"] + res["write"] + res["status"] + res["timeout"],
        wrk_cpu_s=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
    )
    return res


def measure(stack: Stack, r: redis.Redis, bucket: str, duration_s: float) -> dict[str, Any]:
    """Bare ASGI vs the API at 64 connections (track, batch; two runs of each, taking turns), p99 at half the API's
    max rate, a lone client, and 1 vs 2 API processes. Returns every run; ``check_buffers`` completes them."""
    ensure_wrk()
    bodies = Bodies()
    out: dict[str, Any] = {
        "connections": CONNECTIONS,
        "duration_s": duration_s,
        "batch_events": BATCH_EVENTS,
        "runs": {},
    }
    runs = out["runs"]
    env = stack.env()
    try:
        bare = Server(stack, env, bare=True).start()
        api = Server(stack, env, bare=False).start()
        for path in ("/v1/track", "/v1/batch"):
            run_wrk(bare.url, path, bodies, "Basic eDo=", connections=CONNECTIONS, duration_s=1)  # warm-up
            warm_up, _ = write_source(r, bucket, stack.moto.endpoint, f"warm-up 1 {path}")
            run_wrk(api.url, path, bodies, warm_up, connections=CONNECTIONS, duration_s=1)
            auth, iid = write_source(r, bucket, stack.moto.endpoint, f"bench 1 {path}")
            # the limit and the product take turns (bare, API, API, bare): a change of the machine's load during
            # the runs weighs on both alike
            turns: dict[str, list[dict[str, Any]]] = {"bare": [], "api": []}
            for which in ("bare", "api", "api", "bare"):
                if which == "bare":
                    turns["bare"].append(
                        run_wrk(bare.url, path, bodies, "Basic eDo=", connections=CONNECTIONS, duration_s=duration_s)
                    )
                else:
                    turns["api"].append(api_run(stack, api, path, bodies, auth, duration_s))
            res = runs[f"bare {path}"] = combined(turns["bare"])
            # the limit's own tail at half its maximum rate: what the machine's scheduling costs everybody
            runs[f"bare {path} half rate"] = run_wrk(
                bare.url,
                path,
                bodies,
                "Basic eDo=",
                connections=CONNECTIONS,
                duration_s=duration_s,
                delay_ms=CONNECTIONS / (res["req_per_s"] / 2) * 1000,
            )
            res = runs[f"api1 {path}"] = combined(turns["api"])
            res["integration_id"] = iid
            # p99 at half the maximum rate: each connection pauses at random so that together they send about half,
            # as independent clients would
            half = res["req_per_s"] / 2
            paced = run_wrk(
                api.url,
                path,
                bodies,
                auth,
                connections=CONNECTIONS,
                duration_s=duration_s,
                delay_ms=CONNECTIONS / half * 1000,
            )
            paced["target_req_per_s"] = half
            paced["integration_id"] = iid
            runs[f"api1 {path} half rate"] = paced
            lone = run_wrk(api.url, path, bodies, auth, connections=1, threads=1, duration_s=min(duration_s, 5))
            lone["integration_id"] = iid
            runs[f"api1 {path} lone client"] = lone
        bare.stop()
        api.stop()
        api = Server(stack, env, bare=False, workers=2).start()
        for path in ("/v1/track", "/v1/batch"):
            warm_up, _ = write_source(r, bucket, stack.moto.endpoint, f"warm-up 2 {path}")
            run_wrk(api.url, path, bodies, warm_up, connections=CONNECTIONS, duration_s=1)
            auth, iid = write_source(r, bucket, stack.moto.endpoint, f"bench 2 {path}")
            res = runs[f"api2 {path}"] = api_run(stack, api, path, bodies, auth, duration_s)
            res["integration_id"] = iid
        api.stop()
    finally:
        bodies.remove()
    return out


def api_run(stack: Stack, api: Server, path: str, bodies: Bodies, auth: str, duration_s: float) -> dict[str, Any]:
    """One run against the API, with the CPU its processes and Redis used meanwhile."""
    cpu0, redis0 = cpu_s(api.pids()), cpu_s([stack.redis.pid])
    res = run_wrk(api.url, path, bodies, auth, connections=CONNECTIONS, duration_s=duration_s)
    res["api_cpu_s"] = cpu_s(api.pids()) - cpu0
    res["redis_cpu_s"] = cpu_s([stack.redis.pid]) - redis0
    return res


def combined(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of the same load as one: counts and CPU added up, rates over the total time, the worst percentiles."""
    out = dict(results[0])
    for key in (
        "requests",
        "duration_us",
        "connect",
        "read",
        "write",
        "status",
        "timeout",
        "errors",
        "wrk_cpu_s",
        "api_cpu_s",
        "redis_cpu_s",
    ):
        if key in out:
            out[key] = sum(res[key] for res in results)
    for key in ("p50_us", "p90_us", "p99_us", "max_us"):
        out[key] = max(res[key] for res in results)
    out["mean_us"] = sum(res["mean_us"] * res["requests"] for res in results) / max(1, out["requests"])
    out["seconds"] = out["duration_us"] / 1e6
    out["req_per_s"] = out["requests"] / out["seconds"]
    out["events_per_s"] = out["req_per_s"] * out["events_per_request"]
    out["turns_req_per_s"] = [round(res["req_per_s"]) for res in results]
    return out


def check_buffers(stack: Stack, r: redis.Redis, http: dict[str, Any], timeout_s: float = 300) -> None:
    """Start one ingest worker and wait until every integration of the HTTP runs buffered at least the events its
    answered requests carried (wrk counts only the requests answered within the run)."""
    expected: dict[str, int] = {}
    for res in http["runs"].values():
        if "integration_id" in res:
            expected[res["integration_id"]] = (
                expected.get(res["integration_id"], 0) + res["requests"] * res["events_per_request"]
            )
    if not expected:
        return
    worker = stack.worker(
        stack.env(SIGNAL_FLUSH_INTERVAL_S="3600", SIGNAL_BUFFER_MAX_BYTES=str(16 * 1024**3)),
        queues="ingest",
        pool="solo",
        name=f"check-{uuid.uuid4().hex[:6]}",
    )

    def buffered(iid: str) -> int:
        return int(r.hget(keys.stats(iid), "ingested_events") or 0)

    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and (
            r.llen("ingest") > 0 or any(buffered(i) < n for i, n in expected.items())
        ):
            time.sleep(0.2)
        time.sleep(0.5)  # a task taken just before the queue emptied
    finally:
        stack.stop_process(worker)
    for res in http["runs"].values():
        iid = res.get("integration_id")
        if iid is not None:
            res["buffered_events_of_source"] = buffered(iid)
            res["every_event_buffered"] = buffered(iid) >= expected[iid]
            res["rejected"] = {
                k.decode(): int(v) for k, v in r.hgetall(keys.stats(iid)).items() if k.startswith(b"rejected:")
            }
