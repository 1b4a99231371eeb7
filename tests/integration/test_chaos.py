"""The delivery promise under crashes, retries, races and outages, on real processes.

Every event accepted by ``signal.ingest`` ends up in exactly one S3 object: nothing lost, nothing duplicated, when
workers are SIGKILLed mid-upload, S3 fails or hangs, beats and flushes run twice at once, or a broker redelivers an
ingest message. Objects are read back with the admin client straight from moto, never through the fault proxy.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.faultproxy import Fault, Plan, fail_first, random_faults
from tests.support.fleet import Bucket, assert_exactly_once, make_events, run_id, slices
from tests.support.processes import wait_until
from workers.store import buffer, db, keys

TASK_EVENTS = 500
# A worker of these tests may be interrupted any number of times: a batch it was uploading is not poison.
MANY_LOSSES = {"SIGNAL_MAX_WORKER_LOSSES": "1000"}


# -- 1. chaos ----------------------------------------------------------------------------------------------------------

CHAOS_EVENTS = 20_000
CHAOS_BATCH_MAX_EVENTS = 100  # ~200 objects: many uploads to fail and to be killed in, a stable fault share
KILL_PHASE_S = 25.0
SEND_PACE_S = 0.55  # 40 messages over ~22 s: ingest runs while workers die too
FAULT_RATE = 0.25
AFTER_FORWARD_RATE = 0.05


def chaos_plan(seed: int) -> Plan:
    """random_faults (500 InternalError / 503 SlowDown / dropped connection before S3 saw the request), plus a few
    PUTs that S3 stores but whose answer never arrives (the uploader must not write the batch elsewhere)."""
    before = random_faults(rate=FAULT_RATE, seed=seed)
    rng = random.Random(seed + 1)
    lock = threading.Lock()

    def plan(method: str, target: str, headers: Any) -> Fault | None:
        fault = before(method, target, headers)
        if fault is not None or method != "PUT":
            return fault
        with lock:
            return Fault.drop_after_forward() if rng.random() < AFTER_FORWARD_RATE else None

    return plan


# on RabbitMQ + Redis Cluster with partition fields: each event's partition is its own buffer, batch and object, and
# every guarantee holds for each
@pytest.mark.parametrize(
    ("topology", "partition_fields"), [("redis", []), ("scaled", ["event", "type"])], indirect=["topology"]
)
def test_chaos_kills_and_s3_faults_lose_and_duplicate_nothing(
    proxied, fault_proxy, make_bucket, start_worker, start_beat, partition_fields
):
    fleet = proxied
    started = time.monotonic()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name, batch_max_events=CHAOS_BATCH_MAX_EVENTS, partition_fields=partition_fields)
    fault_proxy.set_plan(chaos_plan(seed))
    live = [start_worker(env=MANY_LOSSES, concurrency=2) for _ in range(2)]
    start_beat()

    events = make_events(CHAOS_EVENTS, run=run_id("chaos"))
    sent = {e["event_id"] for e in events}
    stop = threading.Event()
    kills: list[tuple[float, str, bool]] = []  # (seconds since start, worker, killed with an upload in flight)
    problems: list[BaseException] = []

    def put_in_flight_since(index: int) -> bool:
        return any(s.method == "PUT" for s in fault_proxy.seen[index:])

    def killer() -> None:
        try:
            deadline = time.monotonic() + KILL_PHASE_S
            next_kill = time.monotonic() + rng.uniform(2, 4)
            while not stop.is_set():
                # the chaos schedule: a kill every 2-4 s, aimed at the next upload reaching S3
                if stop.wait(max(next_kill - time.monotonic(), 0)) or time.monotonic() > deadline:
                    return
                mark = len(fault_proxy.seen)
                until = time.monotonic() + 1.5
                while not (in_flight := put_in_flight_since(mark)) and time.monotonic() < until:
                    if stop.wait(0.005):
                        return
                victim = rng.choice(live)
                victim.kill()
                live.remove(victim)
                kills.append((round(time.monotonic() - started, 1), victim.name, in_flight))
                next_kill = time.monotonic() + rng.uniform(2, 4)
                live.append(start_worker(env=MANY_LOSSES, concurrency=2))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            problems.append(exc)

    chaos = threading.Thread(target=killer, name="killer", daemon=True)
    chaos.start()
    try:
        for batch in slices(events, TASK_EVENTS):
            fleet.sender.ingest(iid, batch)
            if stop.wait(SEND_PACE_S):
                break
        chaos.join(KILL_PHASE_S + 90)
        assert not chaos.is_alive(), "the killer did not finish"
    finally:
        stop.set()
    assert not problems, problems
    kill_phase_end = time.monotonic() - started

    # Faults stay on to the end: the tail (messages of killed workers come back after the visibility timeout plus
    # kombu's restore sweep, batches after their lease) drains against the same failing S3; it costs a few seconds.
    bucket.wait_for(sent, timeout_s=80)
    objects = assert_exactly_once(fleet, iid, bucket, sent)
    elapsed = time.monotonic() - started
    faulted = fault_proxy.faults
    requests = fault_proxy.requests

    stats = fleet.stats(iid)
    print(
        f"\nchaos seed={seed}: {CHAOS_EVENTS} events in {CHAOS_EVENTS // TASK_EVENTS} ingest messages; "
        f"{len(kills)} kills at {[k[0] for k in kills]} s ({sum(k[2] for k in kills)} with a PUT in flight); "
        f"faults {faulted} of {requests} S3 requests "
        f"({dict(fault_proxy.faults_by_kind)}); {len(objects)} objects; retries {stats.get('retries', 0)}; "
        f"kill phase ended at {kill_phase_end:.0f}s, all delivered after {elapsed:.0f}s"
    )
    assert len(kills) >= 5, kills
    assert requests and faulted / requests >= 0.2, (faulted, requests)
    assert fault_proxy.forwarded_faults["drop after forward"] >= 1 or requests < 100


# -- 2. two beats and concurrent flushes ------------------------------------------------------------------------------


def test_two_beats_and_concurrent_flushes_deliver_each_event_once(fleet, make_bucket, start_worker, start_beat):
    from workers.errors import PermanentError, TransientError
    from workers.pipeline import flush
    from workers.pipeline.upload import upload as upload_batch
    from workers.settings import get_settings

    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name, batch_max_events=300)
    start_worker(concurrency=2)
    start_worker(concurrency=2)
    start_beat()
    start_beat()
    settings = get_settings()
    events = make_events(8_000, run=run_id("race"))
    sent = {e["event_id"] for e in events}
    stop = threading.Event()
    outcomes: Counter[str] = Counter()
    problems: list[BaseException] = []
    r = db.connect(settings)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="upload")
    futures: list[Future[None]] = []

    def upload(integration_id: str, batch_id: str) -> None:
        try:
            outcomes[upload_batch(r, integration_id, batch_id, settings=settings).state] += 1
        except (TransientError, PermanentError) as exc:
            outcomes[type(exc).__name__] += 1

    def flusher() -> None:
        try:
            while not stop.wait(0.02):
                for integration_id, batch_id in flush.flush_due(r, settings=settings, force=True):
                    outcomes["dispatched"] += 1
                    # twice at once: the lease must let exactly one of them write
                    futures.append(pool.submit(upload, integration_id, batch_id))
                    futures.append(pool.submit(upload, integration_id, batch_id))
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            problems.append(exc)

    flushing = threading.Thread(target=flusher, name="flusher", daemon=True)
    flushing.start()
    try:
        for batch in slices(events, 200):
            fleet.sender.ingest(iid, batch)
            if stop.wait(0.05):
                break
        wait_until(
            lambda: fleet.stats(iid).get("ingested_events", 0) == len(events),
            60,
            message=lambda: f"ingest incomplete: {fleet.stats(iid)}",
        )
        bucket.wait_for(sent, timeout_s=60)
    finally:
        stop.set()
        flushing.join(10)
        for f in futures:
            f.result(timeout=30)
        pool.shutdown()
        r.close()
    assert not problems, problems
    objects = assert_exactly_once(fleet, iid, bucket, sent)
    print(f"\n{len(objects)} objects; in-test uploads {dict(outcomes)}")
    assert outcomes["dispatched"] > 0 and outcomes["delivered"] > 0
    assert outcomes["TransientError"] == outcomes["PermanentError"] == 0


# -- 3. redelivered ingest ---------------------------------------------------------------------------------------------


def ingest_runs(worker: Any, task_id: str) -> list[str]:
    return re.findall(rf"signal\.ingest\[{re.escape(task_id)}\] succeeded in [^\n]*", worker.log_text())


@pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)
def test_an_ingest_message_delivered_twice_is_appended_once(fleet, make_bucket, start_worker, start_beat):
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    worker = start_worker(concurrency=2)
    start_beat()
    events = make_events(TASK_EVENTS, run=run_id("twice"))
    sent = {e["event_id"] for e in events}
    task_id = str(uuid.uuid4())

    # the same message twice at once (two pool processes may run them side by side) ...
    fleet.sender.ingest(iid, events, task_id=task_id)
    fleet.sender.ingest(iid, events, task_id=task_id)
    wait_until(lambda: len(ingest_runs(worker, task_id)) == 2, 30, message=lambda: worker.log_tail())
    bucket.wait_for(sent, timeout_s=30)
    # ... and once more after its events were delivered: what a late redelivery looks like
    fleet.sender.ingest(iid, events, task_id=task_id)
    wait_until(lambda: len(ingest_runs(worker, task_id)) == 3, 30, message=lambda: worker.log_tail())

    runs = ingest_runs(worker, task_id)
    assert sum("'duplicate': True" in run for run in runs) == 2, runs
    assert fleet.stats(iid)["ingested_events"] == TASK_EVENTS
    assert_exactly_once(fleet, iid, bucket, sent)


# A consumer that takes one ingest message the way a worker does (reserved, unacked), runs the task's work on it,
# and dies before it can ack: no warm shutdown, so kombu cannot hand the message back itself.
DYING_CONSUMER = """
import os, sys
from kombu import Connection
from workers.pipeline import ingest
from workers.store.db import redis_client
from workers.settings import get_settings
from workers.app import app  # registers the JSON serializer the fleet uses

with Connection(get_settings().redis_url) as conn:
    queue = conn.SimpleQueue("ingest")
    message = queue.get(timeout=10)
    (integration_id, events), _, _ = message.decode()
    result = ingest.ingest(redis_client(), integration_id, events, message_id=message.headers["id"],
                             settings=get_settings())
    print(result.accepted, flush=True)
    os._exit(0)  # dies here: the message is never acked
"""


def test_ingest_message_of_a_dead_worker_is_redelivered_and_appended_once(fleet, make_bucket, start_worker, start_beat):
    """The first consumer appended the events and died before acking: the broker hands the message out again."""
    import subprocess
    import sys

    from tests.support.processes import REPO_ROOT

    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    events = make_events(TASK_EVENTS, run=run_id("dead"))
    sent = {e["event_id"] for e in events}
    task_id = fleet.sender.ingest(iid, events)
    env = {**os.environ, **fleet.env, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run(
        [sys.executable, "-c", DYING_CONSUMER],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == 0 and first.stdout.strip() == str(len(events)), first.stderr[-2000:]
    assert fleet.r.exists(keys.seen(iid, task_id))
    assert fleet.r.hlen("unacked") == 1, "the dead consumer's message is not waiting for redelivery"

    second = start_worker(concurrency=2)
    start_beat()
    # visibility timeout (10 s) plus kombu's restore sweep
    wait_until(lambda: ingest_runs(second, task_id), 60, message=lambda: second.log_tail())
    assert "'duplicate': True" in ingest_runs(second, task_id)[0]
    bucket.wait_for(sent, timeout_s=30)
    assert fleet.stats(iid)["ingested_events"] == len(events)
    assert_exactly_once(fleet, iid, bucket, sent)


# -- 4. killed between the PUT and the cleanup -------------------------------------------------------------------------


@pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)
def test_worker_killed_after_its_put_landed_is_finished_by_the_sweep_under_the_same_key(
    proxied, fault_proxy, make_bucket, start_worker, start_beat
):
    from workers.settings import get_settings

    fleet = proxied
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    # S3 stores the first PUT, its answer is held back: the uploader dies before it hears of its success
    fault_proxy.set_plan(fail_first(1, Fault.delay_response(5), method="PUT"))
    first = start_worker(concurrency=2)
    start_beat()
    events = make_events(300, run=run_id("landed"))
    sent = {e["event_id"] for e in events}
    fleet.sender.ingest(iid, events)

    landed = wait_until(lambda: list(bucket.objects()), 30, message="the first PUT never reached S3")
    first.kill()
    killed_ms = int(time.time() * 1000)
    assert fault_proxy.forwarded_faults["delay 5s"] == 1
    assert len(landed) == 1
    key = landed[0]
    [batch_id] = buffer.pending_batches(fleet.r, iid)
    meta = buffer.batch_meta(fleet.r, iid, batch_id)
    assert meta["key"] == key and meta["claims"] == "1", meta  # claimed, no outcome recorded
    lease_until_ms = int(meta["lease_until"])
    assert lease_until_ms - killed_ms >= (get_settings().lease_s - 3) * 1000, meta

    start_worker(concurrency=2)
    wait_until(
        lambda: fleet.stats(iid).get("delivered_objects", 0) >= 1,
        get_settings().lease_s + 30,
        message=lambda: f"stats {fleet.stats(iid)}, meta {buffer.batch_meta(fleet.r, iid, batch_id)}",
    )
    objects = assert_exactly_once(fleet, iid, bucket, sent)
    assert list(objects) == [key]
    assert fleet.stats(iid)["delivered_objects"] == 1
    assert int(fleet.r.hget(keys.status(iid), "last_success_ms")) >= lease_until_ms, "finished before the lease ended"
    puts = [s.target.split("?")[0] for s in fault_proxy.seen if s.method == "PUT"]
    assert len(puts) >= 2 and len(set(puts)) == 1, puts  # the redo went to the same key
    assert not fleet.r.exists(keys.batch(iid, batch_id), keys.batch_meta(iid, batch_id))


# -- 5. graceful shutdown ----------------------------------------------------------------------------------------------


def test_sigterm_soft_shutdown_mid_upload_loses_and_duplicates_nothing(
    proxied, fault_proxy, make_bucket, start_worker, start_beat
):
    from workers.settings import get_settings

    fleet = proxied
    soft_timeout_s = get_settings().upload_timeout_s / 4  # worker_soft_shutdown_timeout (workers/app.py)
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    fault_proxy.set_plan(fail_first(1, Fault.delay_response(3), method="PUT"))
    first = start_worker(env={"REMAP_SIGTERM": "SIGQUIT"}, concurrency=2)
    start_beat()
    events = make_events(300, run=run_id("sigterm"))
    sent = {e["event_id"] for e in events}
    fleet.sender.ingest(iid, events)

    wait_until(lambda: any(s.method == "PUT" for s in fault_proxy.seen), 30, message="no upload started")
    first.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = first.wait(soft_timeout_s + 10)
    took_s = time.monotonic() - signalled
    assert code is not None, f"the worker was still running {soft_timeout_s + 10:g}s after SIGTERM"
    assert took_s <= soft_timeout_s + 5, took_s
    assert f"Initiating Soft Shutdown, terminating in {soft_timeout_s:g} seconds" in first.log_text(), first.log_tail()
    # the upload cut short by the end of the soft shutdown went back to the broker
    assert re.search(r"Restoring [1-9]\d* unacknowledged message", first.log_text()), first.log_tail()

    start_worker(concurrency=2)
    objects = bucket.wait_for(sent, timeout_s=get_settings().lease_s + 30)
    assert_exactly_once(fleet, iid, bucket, sent)
    assert len(objects) == 1 and fleet.stats(iid)["delivered_objects"] == 1
    print(f"\nworker exited {took_s:.1f}s after SIGTERM with code {code}; log tail:\n{first.log_tail(12)}")
