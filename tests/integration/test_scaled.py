"""The scaled topology on real services: RabbitMQ quorum queues as the broker, a Redis Cluster as the store.

The promise is the same as on one Redis (the pipeline and chaos tests run on both topologies): a broker restart
during ingest loses and duplicates nothing; a Redis master failover during ingest keeps the fleet delivering and loses
exactly what the settings say it may; a poison message is held by the broker's delivery limit; a script the client
sent twice changes nothing twice; a script never reaches outside its integration's slot; what spans integrations
(registry, status, metrics, the tick) works across the cluster's nodes, and a tick costs what is due.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
import uuid
from typing import Any

import pytest
import redis

from tests.support.fleet import Bucket, assert_exactly_once, lines_of, make_events, run_id, slices
from tests.support.processes import free_port, wait_until
from tests.support.scaled import wait_for_master
from workers.integrations import manage, registry, status
from workers.integrations.config import parse_config
from workers.pipeline import flush, ingest
from workers.queue import topology
from workers.store import buffer, chunks, db, keys, scripts

SCALED = pytest.mark.parametrize("topology", ["scaled"], indirect=True)
BOTH = pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)


def settings_now() -> Any:
    from workers.settings import get_settings

    get_settings.cache_clear()
    return get_settings()


def send_until_taken(sender: Any, iid: str, events: list[dict], task_id: str, refused: list[str]) -> None:
    """Publish one ingest message, again and again under the same id until the broker confirms it (a producer that
    keeps a message's id across its retries: the append of a message published twice happens once)."""
    while True:
        try:
            sender.ingest(iid, events, task_id=task_id)
            return
        except Exception as exc:  # noqa: BLE001 - the broker did not take it: try again
            refused.append(type(exc).__name__)
            time.sleep(0.2)


# -- the broker -------------------------------------------------------------------------------------------------------


@SCALED
def test_a_broker_restart_during_ingest_loses_and_duplicates_nothing(
    fleet, rabbitmq, make_bucket, start_worker, start_beat
):
    from workers.queue.producer import Broker, BrokerUnavailable

    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    start_worker(queues="ingest", pool="solo", concurrency=1)
    start_worker(queues="flush", concurrency=2)
    start_beat()
    events = make_events(12_000, run=run_id("restart"))
    sent = {e["event_id"] for e in events}
    refused: list[str] = []
    problems: list[BaseException] = []

    def produce() -> None:
        try:
            for batch in slices(events, 300):
                send_until_taken(fleet.sender, iid, batch, str(uuid.uuid4()), refused)
                time.sleep(0.15)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            problems.append(exc)

    producer = threading.Thread(target=produce, name="producer", daemon=True)
    producer.start()
    wait_until(
        lambda: fleet.stats(iid).get("ingested_events", 0) >= 3000,
        60,
        message=lambda: f"ingest did not start: {fleet.stats(iid)}",
    )
    rabbitmq.stop()
    stopped = time.monotonic()
    # a producer hears of the outage at once (the API answers 503): nothing it was told is queued is lost
    broker = Broker(settings_now())
    with pytest.raises(BrokerUnavailable):
        broker.ingest(iid, make_events(1))
    broker.close()
    wait_until(lambda: refused, 30, message="the producer never noticed that the broker was down")
    rabbitmq.start()
    print(f"\nbroker down for {time.monotonic() - stopped:.1f}s; {len(refused)} publishes refused meanwhile")
    producer.join(120)
    assert not producer.is_alive() and not problems, problems
    bucket.wait_for(sent, timeout_s=120)
    assert_exactly_once(fleet, iid, bucket, sent)


@SCALED
def test_a_poison_message_is_held_by_the_delivery_limit(fleet, monkeypatch, start_worker, capsys):
    """A message that kills every worker that takes it is delivered limit + 1 times, then kept in signal.dead-letter;
    the queue behind it keeps flowing."""
    from kombu import Connection

    from tests.support.fleet import Sender
    from workers import cli

    limit = 2
    fleet.env["SIGNAL_BROKER_DELIVERY_LIMIT"] = str(limit)
    monkeypatch.setenv("SIGNAL_BROKER_DELIVERY_LIMIT", str(limit))
    settings = settings_now()
    sender = Sender(settings)
    iid = fleet.install("signal-unused-bucket")
    worker = start_worker(app="tests.support.poison", queues="ingest", concurrency=1)
    poison_id = str(uuid.uuid4())
    sender.app.send_task("signal.test.crash", queue="ingest", task_id=poison_id)
    sender.ingest(iid, make_events(50))  # behind the poison message in the same queue
    wait_until(
        lambda: topology.queue_depths(settings)["dead_letter"] == 1,
        120,
        message=lambda: f"queues {topology.queue_depths(settings)}; {worker.log_tail()}",
    )
    wait_until(lambda: fleet.stats(iid).get("ingested_events") == 50, 60, message=lambda: worker.log_tail())
    deliveries = re.findall(rf"Task signal\.test\.crash\[{poison_id}\] received", worker.log_text())
    assert len(deliveries) == limit + 1, worker.log_tail()
    assert topology.queue_depths(settings)["ingest"] == 0  # not looping
    with Connection(settings.celery_broker_url) as conn:
        message = topology.dead_letter_queue()(conn.default_channel).get(no_ack=False)
        assert message is not None
        assert message.headers["id"] == poison_id and message.headers["task"] == "signal.test.crash"
        assert message.headers["x-first-death-reason"] == "delivery_limit"
        message.requeue()  # kept, for someone to look at
    wait_until(lambda: topology.queue_depths(settings)["dead_letter"] == 1, 10, message="the message was not kept")
    assert cli.main(["queues"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ingest": 0, "flush": 0, "dead_letter": 1}
    sender.close()


@SCALED
def test_a_message_no_queue_takes_is_an_error_not_a_silent_drop(fleet):
    """kombu remembers which queues a process declared: a queue deleted meanwhile is not declared again, and a
    confirmed publish to it would vanish. The producer publishes as mandatory, so it comes back as an error."""
    from kombu import Connection

    from workers.queue.producer import Broker, BrokerUnavailable

    broker = Broker(settings_now())
    broker.ingest("i", make_events(1))
    with Connection(settings_now().celery_broker_url) as conn:
        conn.default_channel.queue_delete("ingest")
    with pytest.raises(BrokerUnavailable):
        broker.ingest("i", make_events(1))
    broker.close()


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_the_api_answers_503_when_the_broker_is_down(fleet, scheme):
    """Collection answers 503 broker_unavailable (with Retry-After), never a 200 for events that were not queued."""
    import asyncio

    import httpx

    from workers.integrations import sources
    from workers.settings import Settings
    from workers.web.app import create_app

    down = f"amqp://guest:guest@127.0.0.1:{free_port()}//" if scheme == "amqp" else f"redis://127.0.0.1:{free_port()}/0"
    source = sources.create(fleet.r, "Website")
    registry.install(
        fleet.r,
        {
            "name": "S3",
            "source_id": source.id,
            "config": {
                "bucket": "signal-unused-bucket",
                "region": "us-east-1",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            },
        },
    )
    app = create_app(Settings(redis_url=fleet.env["SIGNAL_REDIS_URL"], broker_url=down))

    async def track() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            return await client.post("/v1/track", json={"event": "e", "userId": "u"}, auth=(source.write_key, ""))

    response = asyncio.run(track())
    app.state.signal.close()
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "broker_unavailable" and response.json()["success"] is False
    assert response.headers["Retry-After"] == "5"


# -- the Redis Cluster ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topology", ["scaled-replicated"], indirect=True)
@pytest.mark.parametrize("min_replicas", [0, 1])
def test_a_redis_master_failover_during_ingest(fleet, cluster, make_bucket, start_worker, min_replicas):
    """The integration's master dies while its replica lags behind (paused). Without SIGNAL_REDIS_MIN_REPLICAS the
    events acknowledged during the lag are lost, exactly those and no others; with it, none. Never a duplicate."""
    from workers.integrations import manage
    from workers.queue.producer import Broker

    bucket = Bucket(fleet.s3, make_bucket())
    # nothing flushes on its own: the test seals at chosen moments, so what was lost is known exactly
    iid = fleet.install(bucket.name, flush_interval_s=3600)
    master = cluster.node_of(keys.tag(iid))
    replica = cluster.replica_of(master)
    fleet.env["SIGNAL_REDIS_URL"] = next(n for n in cluster.running_masters() if n is not master).url
    env = {"SIGNAL_REDIS_MIN_REPLICAS": str(min_replicas), "SIGNAL_REDIS_MIN_REPLICAS_TIMEOUT_MS": "300"}
    ingest_worker = start_worker(env=env, queues="ingest", pool="solo", concurrency=1)
    start_worker(env=env, queues="flush", concurrency=2)
    settings = settings_now()
    broker = Broker(settings)
    phases = {name: make_events(500, run=run_id(name)) for name in ("before", "lagging", "failover")}
    ids = {name: {e["event_id"] for e in events} for name, events in phases.items()}

    def send(name: str) -> list[str]:
        task_ids = [str(uuid.uuid4()) for _ in range(5)]
        for task_id, batch in zip(task_ids, slices(phases[name], 100), strict=True):
            send_until_taken(fleet.sender, iid, batch, task_id, [])
        return task_ids

    def on_master(command: str, *args: Any) -> Any:
        with master.client() as c:
            return c.execute_command(command, *args)

    # before: delivered while everything is healthy, and replicated
    send("before")
    wait_until(lambda: fleet.stats(iid).get("ingested_events") == 500, 60, message=lambda: ingest_worker.log_tail())
    manage.flush_and_wait(fleet.r, broker, iid, settings=settings, timeout_s=60)
    wait_until(lambda: cluster.in_sync(master, replica), 30, message="the replica did not catch up")

    # lagging: the replica is paused and its link cut (what was already on the wire would still reach it), the master
    # takes the appends alone
    os.kill(replica.pid, signal.SIGSTOP)
    on_master("CLIENT", "KILL", "TYPE", "replica")
    lagging = send("lagging")
    seen = [keys.seen(iid, task_id) for task_id in lagging]
    if min_replicas:
        # every append ran on the master, and none was acknowledged: WAIT found no replica
        wait_until(lambda: on_master("EXISTS", *seen) == len(seen), 60, message=lambda: ingest_worker.log_tail())
        wait_until(lambda: "NotReplicated" in ingest_worker.log_text(), 30, message=lambda: ingest_worker.log_tail())
    else:
        wait_until(
            lambda: int(on_master("HGET", keys.stats(iid), "ingested_events") or 0) == 1000,
            60,
            message=lambda: ingest_worker.log_tail(),
        )

    # the master dies; its paused replica comes back and takes over; events keep coming meanwhile
    master.kill()
    os.kill(replica.pid, signal.SIGCONT)
    sender = threading.Thread(target=send, args=("failover",), daemon=True)
    sender.start()
    wait_for_master(cluster, replica)
    master.start()  # back as the new master's replica (its data is gone: no persistence in these tests)
    wait_until(cluster.healthy, 60, interval_s=0.2, message=lambda: cluster.view())
    sender.join(60)
    expected = 1500 if min_replicas else 1000
    wait_until(
        lambda: fleet.stats(iid).get("ingested_events") == expected,
        120,
        message=lambda: f"stats {fleet.stats(iid)}; {ingest_worker.log_tail()}",
    )
    manage.flush_and_wait(fleet.r, broker, iid, settings=settings, timeout_s=60)
    broker.close()

    # the ingest worker started before any flush worker: every queue has its delayed-delivery route all the same
    assert "will not be available" not in ingest_worker.log_text()
    counts = bucket.counts()
    sent = set().union(*ids.values())
    lost = sent - set(counts)
    doubled = {e: n for e, n in counts.items() if n > 1}
    print(
        f"\nfailover, SIGNAL_REDIS_MIN_REPLICAS={min_replicas}: {len(sent)} events sent, {len(counts)} delivered, "
        f"{len(lost)} lost, {len(doubled)} duplicated"
    )
    assert not doubled
    assert set(counts) <= sent
    if min_replicas:
        assert lost == set()
        assert_exactly_once(fleet, iid, bucket, sent)
    else:
        assert lost == ids["lagging"]  # acknowledged by the master alone, gone with it


@BOTH
def test_a_script_the_client_sent_twice_changes_nothing_twice(redis_client, topology, monkeypatch):
    """The server runs the script and its reply is lost. The append sends its transaction again (and the ingest task's
    retry would): the message id recorded by the first run makes the second take back what it pushed and append
    nothing. redis-py's cluster client reconnects and sends a claim again (on one Redis the client gives up, and the
    upload's own retry sends it again): a retried claim counts one claim."""
    from redis.connection import Connection

    r = redis_client

    def as_the_fleet_calls(call: Any) -> Any:
        if topology != "redis":
            return call()
        with pytest.raises(redis.ConnectionError):
            call()
        return call()

    iid = str(uuid.uuid4())
    hour = "2026112509"

    def append(message_id: str, n: int) -> chunks.AppendResult:
        return chunks.append(
            r,
            iid,
            chunks.Append(
                message_id=message_id,
                now_ms=1,
                chunks_by_hour=chunks.chunks({hour: [f'{{"n":{i}}}'.encode() for i in range(n)]}),
            ),
            chunks.Limits(
                cap_bytes=10**9, batch_max_events=10**6, batch_max_bytes=10**9, seal_due_ms=2, seen_ttl_ms=60_000
            ),
        )

    append("warm-up", 1)  # the script is loaded: the calls below run it, nothing else
    for _, server in db.servers(r):
        server.config_resetstat()
    lost: list[str] = []
    send, read = Connection.send_command, Connection.read_response

    def send_command(self: Any, *args: Any, **kwargs: Any) -> None:
        self._signal_last = str(args[0]).upper()
        send(self, *args, **kwargs)

    def read_response(self: Any, *args: Any, **kwargs: Any) -> Any:
        response = read(self, *args, **kwargs)
        if getattr(self, "_signal_last", "") == "EVALSHA" and len(lost) < 1:
            lost.append("EVALSHA")
            self.disconnect()
            raise redis.ConnectionError("the reply was lost")
        return response

    monkeypatch.setattr(Connection, "send_command", send_command)
    monkeypatch.setattr(Connection, "read_response", read_response)
    exec_read = Connection.read_response

    def read_exec(self: Any, *args: Any, **kwargs: Any) -> Any:
        # the append is one MULTI ... EXEC: its EXEC reply (the only array among them) is lost
        response = exec_read(self, *args, **kwargs)
        if isinstance(response, list) and not lost:
            lost.append("EXEC")
            self.disconnect()
            raise redis.ConnectionError("the reply was lost")
        return response

    monkeypatch.setattr(Connection, "read_response", read_exec)
    result = append("m-1", 100)  # the append sends its transaction again itself
    assert lost == ["EXEC"]
    runs = sum(server.info("commandstats").get("cmdstat_eval", {}).get("calls", 0) for _, server in db.servers(r))
    assert runs == 2  # the server really ran it twice
    assert result.duplicate and result.accepted == 0  # the second run found the first run's message id
    assert r.llen(keys.buffer(iid, hour)) == 2  # a chunk per message: the second run took its own back
    assert len(lines_of(r.lrange(keys.buffer(iid, hour), 0, -1))) == 101
    assert int(r.hget(keys.stats(iid), "ingested_events")) == 101
    monkeypatch.setattr(Connection, "read_response", read_response)

    batch_id = buffer.seal(r, iid, hour, now_ms=3, seal_due_ms=4)
    lost.clear()
    claim = as_the_fleet_calls(lambda: buffer.claim(r, iid, batch_id, token="t", now_ms=5, lease_ms=1000, key="k"))
    assert lost == ["EVALSHA"]
    assert (claim.state, claim.claims, claim.attempts) == ("ok", 1, 1)


@SCALED
def test_a_script_is_refused_any_key_outside_its_slot_every_time(redis_client):
    """Two integrations in different slots of the same node: a script given one's keys and the other's prefixes is
    refused, although both keys live on that node (without the #!lua line it would run, by luck of placement)."""
    r = redis_client
    first = str(uuid.uuid4())
    node = r.get_node_from_key(keys.tag(first))
    other = next(
        i
        for i in (str(uuid.uuid4()) for _ in range(10_000))
        if r.keyslot(keys.tag(i)) != r.keyslot(keys.tag(first)) and r.get_node_from_key(keys.tag(i)).name == node.name
    )
    script_keys = [keys.open_index(first), keys.open_bytes(first), keys.pending(first)]
    args = ["2026112509", "b-1", 1, 2, *buffer.prefixes(other)]
    for _ in range(3):
        with pytest.raises(redis.ResponseError, match="same slot"):
            scripts.SCRIPTS.seal(keys=script_keys, args=args, client=r)
    without_flags_line = scripts.source("seal").partition("\n")[2]
    assert r.eval(without_flags_line, len(script_keys), *script_keys, *args) == 0


@SCALED
def test_what_spans_integrations_works_across_the_clusters_nodes(fleet):
    """Registry (with its WATCH/MULTI updates), sources, status, metrics and the tick, over integrations on every
    master."""
    from workers.integrations import sources
    from workers.observe import metrics

    settings = settings_now()
    r = fleet.r
    iids = [fleet.install(f"bucket-{n:02d}") for n in range(24)]
    assert len({r.get_node_from_key(keys.tag(i)).name for i in iids}) == 3
    for n, iid in enumerate(iids):
        result = ingest.ingest(r, iid, make_events(n + 1), message_id=f"m-{n}", settings=settings)
        assert result.accepted == n + 1
        registry.set_enabled(r, iid, n % 2 == 0)
    assert [i.enabled for i in sorted(registry.list_all(r), key=lambda i: iids.index(i.id))] == [
        n % 2 == 0 for n in range(24)
    ]
    registry.update(
        r,
        iids[0],
        config=parse_config(
            {
                "bucket": "renamed-bucket",
                "region": "eu-west-1",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            }
        ),
    )
    assert registry.get(r, iids[0]).config.bucket == "renamed-bucket"
    assert registry.reencrypt(r) == 24
    source = sources.create(r, "Website")
    assert [s.id for s in sources.list_all(r)] == [source.id]

    work = flush.flush_due(r, settings=settings)  # the first tick also checks every integration
    assert sorted(i for i, _ in work) == sorted(iids)
    assert flush.flush_due(r, settings=settings) == []
    for n, iid in enumerate(iids):
        st = status.integration_status(r, iid)
        assert (st["buffered_events"], st["batches_in_flight"]) == (n + 1, 1)
    rows = {row.integration_id: row for row in metrics.read(r)}
    assert {iid: rows[iid].stats["ingested_events"] for iid in iids} == {iid: n + 1 for n, iid in enumerate(iids)}
    iid, batch_id = work[0]
    buffer.hold(r, iid, batch_id, token="", now_ms=1, code="AccessDenied", message="m", hint="h")
    assert status.dead_letter(r, iid)[0]["code"] == "AccessDenied"
    assert {row.integration_id: row.dead_letter_batches for row in metrics.read(r)}[iid] == 1


@BOTH
def test_a_tick_costs_what_is_due_not_what_is_installed(fleet_env, redis_client):
    """Commands the servers run for a tick (those of the scripts included), with 3 busy integrations among 150 and
    then among 450 installed."""
    from tests.support.fleet import install

    settings = settings_now()
    r = redis_client

    def commands() -> int:
        return sum(int(server.info("stats")["total_commands_processed"]) for _, server in db.servers(r))

    def tick() -> tuple[int, int]:
        before = commands()
        work = flush.flush_due(r, settings=settings)
        return commands() - before - len(db.servers(r)), len(work)

    busy = [install(r, "busy-bucket") for _ in range(3)]
    for _ in range(147):
        install(r, "idle-bucket")
    walked, _ = tick()  # the first tick also checks every installed integration
    assert walked > 150
    counts = []
    for more_idle, round_ in ((0, "a"), (300, "b")):
        for _ in range(more_idle):
            install(r, "idle-bucket")
        for iid in busy:
            ingest.ingest(r, iid, make_events(5), message_id=f"{iid}-{round_}", settings=settings)
        cost, sealed = tick()
        assert sealed == 3
        counts.append(cost)
    print(
        f"\ncommands per tick: {walked} checking 150 integrations; {counts[0]} with 3 busy of 150, "
        f"{counts[1]} with 3 busy of 450"
    )
    assert counts[1] <= counts[0] + 3  # flat in the number of idle integrations
    assert counts[0] < 100  # reading every integration would take 4 commands each


@BOTH
def test_signal_s3_queues_shows_what_waits_for_a_worker(fleet, capsys):
    from workers import cli

    for _ in range(3):
        fleet.sender.ingest("no-worker-yet", make_events(1))
    # a quorum queue answers its length from its applied log, an instant behind the confirms
    settings = settings_now()
    wait_until(
        lambda: topology.queue_depths(settings)["ingest"] == 3,
        10,
        message=lambda: f"queues {topology.queue_depths(settings)}",
    )
    assert cli.main(["queues"]) == 0
    depths = json.loads(capsys.readouterr().out)
    assert depths["ingest"] == 3 and depths["flush"] == 0
    assert depths.get("dead_letter", 0) == 0  # RabbitMQ only: the messages past their delivery limit


@SCALED
def test_a_drained_fleets_store_moves_to_the_cluster_whole(fleet, redis_server, capsys):
    """``signal-s3 copy-store``: registry, sources, buffered and held events, counters and traces move from one Redis
    to the cluster as they are, and the new fleet carries on from there. Refused while broker messages remain."""
    from tests.support.fleet import install
    from workers import cli
    from workers.integrations import sources
    from workers.settings import Settings

    settings = settings_now()
    old = redis_server.client()
    old.flushall()
    one = Settings(redis_url=redis_server.url)
    source = sources.create(old, "Website")
    a, b = install(old, "bucket-a"), install(old, "bucket-b")
    ingest.ingest(old, a, make_events(30), message_id="m-1", settings=one)
    ingest.ingest(old, b, make_events(20), message_id="m-2", settings=one)
    [held] = manage.flush_now(old, b, settings=one)
    buffer.hold(old, b, held, token="", now_ms=1, code="AccessDenied", message="denied", hint="Update the policy.")
    ingest.ingest(old, b, make_events(5), message_id="m-3", settings=one)
    before = {iid: (status.integration_status(old, iid), status.dead_letter(old, iid)) for iid in (a, b)}
    stored = len(list(old.scan_iter(match="sig:*")))

    old.lpush("ingest", b"{}")  # a message whose events are not buffered yet
    assert cli.main(["copy-store", "--from", redis_server.url]) == 1
    assert "nothing was copied" in capsys.readouterr().err
    assert not fleet.r.exists(keys.INTEGRATIONS)
    old.delete("ingest")
    assert cli.main(["copy-store", "--from", redis_server.url]) == 0
    assert json.loads(capsys.readouterr().out)["keys"] == stored

    assert {
        iid: (status.integration_status(fleet.r, iid), status.dead_letter(fleet.r, iid)) for iid in (a, b)
    } == before
    assert sources.source_for_write_key(fleet.r, source.write_key) == source.id
    assert ingest.ingest(fleet.r, a, make_events(30), message_id="m-1", settings=settings).duplicate
    assert {iid for iid, _ in flush.flush_due(fleet.r, settings=settings)} == {a, b}
    assert cli.main(["copy-store", "--from", redis_server.url]) == 1  # the target holds a fleet now
    old.close()
