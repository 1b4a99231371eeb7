"""The buffer's Lua lifecycle: append once, seal at limits, claim with a lease, ack / fail / hold / release."""

from __future__ import annotations

import gzip
from pathlib import Path

import fakeredis
import pytest

from tests.support.fleet import lines_of
from workers.classify import classify
from workers.store import buffer, chunks, elements, keys, scripts

IID = "int-1"
HOUR = "2026112509"
T0 = 1_764_061_200_000


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def append(
    r, lines, *, message_id="m1", hour=HOUR, max_events=100, max_bytes=10_000, cap=1_000_000, now=T0, compressed=False
):
    """``compressed``: the hour's lines as one gzip member, as the API's producer sends a large message."""
    by_hour = chunks.chunks({hour: lines})
    if compressed:
        by_hour = {h: [chunks.Chunk(gzip.compress(c.text), c.events) for c in group] for h, group in by_hour.items()}
    return chunks.append(
        r,
        IID,
        chunks.Append(message_id=message_id, now_ms=now, chunks_by_hour=by_hour),
        chunks.Limits(
            cap_bytes=cap,
            batch_max_events=max_events,
            batch_max_bytes=max_bytes,
            seal_due_ms=now + 300_000,
            seen_ttl_ms=60_000,
        ),
    )


def lines(n, size=10, tag="e"):
    return [f"{tag}{i:0{size - len(tag)}d}".encode() for i in range(n)]


def stats(r):
    return {k.decode(): int(v) for k, v in r.hgetall(keys.stats(IID)).items()}


def stored(r, key):
    """The lines a buffer or batch list holds, whatever its chunks."""
    return lines_of(r.lrange(key, 0, -1))


def events_in(r, key):
    return len(stored(r, key))


def test_append_buffers_lines_in_order_and_indexes_the_buffer(r):
    res = append(r, lines(3))
    assert (res.duplicate, res.accepted, res.sealed) == (False, 3, [])
    assert r.lrange(keys.buffer(IID, HOUR), 0, -1) == [b"\n".join(lines(3))]  # one message, one hour: one element
    assert buffer.open_buffers(r, [IID]) == {IID: [(HOUR, T0)]}
    assert stats(r)["buffered_events"] == 3 and stats(r)["buffered_bytes"] == 30


@pytest.mark.parametrize("compressed", [False, True])
def test_a_redelivered_message_appends_nothing(r, compressed):
    append(r, lines(3), message_id="same", compressed=compressed)
    again = append(r, lines(3), message_id="same", compressed=compressed)
    assert again.duplicate and again.accepted == 0
    assert events_in(r, keys.buffer(IID, HOUR)) == 3
    assert stats(r)["ingested_events"] == 3


def test_reaching_batch_max_events_seals_without_waiting(r):
    res = append(r, lines(25), max_events=10)
    assert len(res.sealed) == 2
    sizes = [events_in(r, keys.batch(IID, b)) for b in res.sealed]
    assert sizes == [10, 10] == [int(buffer.batch_meta(r, IID, b)["events"]) for b in res.sealed]
    assert events_in(r, keys.buffer(IID, HOUR)) == 5
    all_lines = [x for b in res.sealed for x in stored(r, keys.batch(IID, b))]
    assert all_lines + stored(r, keys.buffer(IID, HOUR)) == lines(25)


@pytest.mark.parametrize("compressed", [False, True])
def test_batch_max_bytes_is_never_exceeded(r, compressed):
    res = append(r, lines(50, size=10), max_bytes=95, compressed=compressed)
    for b in res.sealed:
        assert int(buffer.batch_meta(r, IID, b)["bytes"]) <= 95
        assert sum(map(len, stored(r, keys.batch(IID, b)))) == int(buffer.batch_meta(r, IID, b)["bytes"])
    everything = [x for b in res.sealed for x in stored(r, keys.batch(IID, b))] + stored(r, keys.buffer(IID, HOUR))
    assert everything == lines(50, size=10)


def test_an_event_larger_than_batch_max_bytes_gets_a_batch_of_its_own(r):
    append(r, [b"x" * 5], max_bytes=50, message_id="a")
    res = append(r, [b"y" * 80], max_bytes=50, message_id="b")
    assert [int(buffer.batch_meta(r, IID, b)["events"]) for b in res.sealed] == [1, 1]


@pytest.mark.parametrize("compressed", [False, True])
def test_a_chunk_over_the_cap_is_refused_whole_and_counted(r, compressed):
    append(r, lines(5), cap=55, message_id="a")
    res = append(r, lines(10, tag="n"), cap=55, message_id="b", compressed=compressed)
    assert (res.accepted, res.refused) == (0, [0])
    assert stats(r)["rejected:buffer_full"] == 10
    assert stored(r, keys.buffer(IID, HOUR)) == lines(5)


@pytest.mark.parametrize("compressed", [False, True])
def test_chunks_cut_at_the_limits_keep_every_line_exactly_once_and_in_order(r, compressed):
    """Messages of uneven sizes fill each batch to its limit: chunks are cut at line boundaries, never lost or doubled
    at the cut, and the counts beside the list match what it holds. A compressed chunk that must be cut is sent again
    inflated, its message still appended once."""
    sent = []
    for m, n in enumerate([7, 13, 1, 30, 4, 9]):
        batch = lines(n, tag=f"m{m}-")
        sent += batch
        append(r, batch, message_id=f"m{m}", max_events=10, compressed=compressed)
    batches = [b for b in buffer.pending_batches(r, IID)]
    assert [int(buffer.batch_meta(r, IID, b)["events"]) for b in batches] == [10] * 6
    got = [
        x
        for b in sorted(batches, key=lambda b: stored(r, keys.batch(IID, b))[0])
        for x in stored(r, keys.batch(IID, b))
    ]
    got += stored(r, keys.buffer(IID, HOUR))
    assert sorted(got) == sorted(sent) and len(got) == len(sent) == 64
    assert int(r.hget(keys.open_count(IID), HOUR)) == 4 == events_in(r, keys.buffer(IID, HOUR))
    assert stats(r)["ingested_events"] == 64 and stats(r)["buffered_bytes"] == 640
    again = append(r, lines(30, tag="m3-"), message_id="m3", max_events=10, compressed=compressed)  # a redelivery
    assert again.duplicate and stats(r)["ingested_events"] == 64


def test_a_buffer_written_one_event_per_element_is_counted_by_its_length(r):
    """A buffer from before chunks (one line per element, no count beside it) keeps filling and seals exactly."""
    r.rpush(keys.buffer(IID, HOUR), *lines(8, tag="old"))
    r.zadd(keys.open_index(IID), {HOUR: T0})
    r.hset(keys.open_bytes(IID), HOUR, 80)
    append(r, lines(5), max_events=10)
    [batch] = buffer.pending_batches(r, IID)
    assert stored(r, keys.batch(IID, batch)) == lines(8, tag="old") + lines(2)
    assert buffer.batch_meta(r, IID, batch)["events"] == "10"
    assert stored(r, keys.buffer(IID, HOUR)) == lines(5)[2:]


def test_seal_is_atomic_and_a_second_seal_finds_nothing(r):
    append(r, lines(4))
    b1 = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    b2 = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    assert b1 and b2 is None
    assert stored(r, keys.batch(IID, b1)) == lines(4)
    assert buffer.open_buffers(r, [IID]) == {}
    meta = buffer.batch_meta(r, IID, b1)
    assert (meta["hour"], meta["events"], meta["bytes"], meta["state"]) == (HOUR, "4", "40", "pending")
    # events appended after the seal start a fresh buffer
    append(r, lines(2, tag="n"), message_id="m2")
    assert events_in(r, keys.buffer(IID, HOUR)) == 2


def sealed(r, n=3):
    append(r, lines(n))
    return buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)


def test_claim_leases_the_batch_to_one_uploader(r):
    b = sealed(r)
    c1 = buffer.claim(r, IID, b, token="t1", now_ms=T0, lease_ms=1000, key="k/1")
    c2 = buffer.claim(r, IID, b, token="t2", now_ms=T0 + 10, lease_ms=1000, key="k/2")
    assert (c1.state, c1.hour, c1.events, c1.attempts, c1.key) == ("ok", HOUR, 3, 1, "k/1")
    assert c2.state == "leased"
    # the lease ran out (its worker died): the next claim gets it, under the same key
    c3 = buffer.claim(r, IID, b, token="t3", now_ms=T0 + 2000, lease_ms=1000, key="other/key")
    assert (c3.state, c3.claims, c3.key) == ("ok", 2, "k/1")


def test_ack_deletes_the_batch_and_counts_the_delivery_once(r):
    b = sealed(r)
    buffer.claim(r, IID, b, token="t", now_ms=T0, lease_ms=1000, key="k")
    assert buffer.ack(r, IID, b, now_ms=T0 + 5, compressed_bytes=99, key="k") is True
    assert buffer.ack(r, IID, b, now_ms=T0 + 6, compressed_bytes=99, key="k") is False
    assert not r.exists(keys.batch(IID, b), keys.batch_meta(IID, b))
    s = stats(r)
    assert (s["delivered_objects"], s["delivered_events"], s["delivered_bytes"]) == (1, 3, 99)
    assert (s["buffered_events"], s["buffered_bytes"]) == (0, 0)
    assert buffer.claim(r, IID, b, token="t", now_ms=T0, lease_ms=1000, key="k").state == "gone"


def test_fail_schedules_the_retry_in_our_own_store_and_pins_the_key(r):
    b = sealed(r)
    buffer.claim(r, IID, b, token="t", now_ms=T0, lease_ms=1000, key="k/old")
    assert (
        buffer.fail(r, IID, b, token="other", now_ms=T0, retry_at_ms=T0 + 50, code="SlowDown", message="m") == "stale"
    )
    assert buffer.fail(r, IID, b, token="t", now_ms=T0, retry_at_ms=T0 + 50, code="SlowDown", message="m") == "ok"
    assert r.zrangebyscore(keys.pending(IID), "-inf", T0 + 49) == []
    assert r.zrangebyscore(keys.pending(IID), "-inf", T0 + 50) == [b.encode()]
    c = buffer.claim(r, IID, b, token="t2", now_ms=T0 + 60, lease_ms=1000, key="k/new")
    assert (c.attempts, c.retry_since_ms, c.key) == (2, T0, "k/old")


def test_hold_keeps_events_until_release(r):
    b = sealed(r)
    buffer.claim(r, IID, b, token="t", now_ms=T0, lease_ms=1000, key="k")
    assert (
        buffer.hold(
            r, IID, b, token="t", now_ms=T0 + 1, code="AccessDenied", message="denied", hint="Update the IAM policy."
        )
        == "ok"
    )
    held = buffer.held_batches(r, IID)
    assert [h["batch_id"] for h in held] == [b]
    assert (held[0]["error_code"], held[0]["error_hint"], held[0]["events"]) == (
        "AccessDenied",
        "Update the IAM policy.",
        "3",
    )
    assert buffer.claim(r, IID, b, token="t2", now_ms=T0 + 5000, lease_ms=1000, key="k").state == "dead"
    assert r.zrangebyscore(keys.pending(IID), "-inf", T0 + 10**9) == []
    assert events_in(r, keys.batch(IID, b)) == 3
    status = {k.decode(): v.decode() for k, v in r.hgetall(keys.status(IID)).items()}
    assert status["last_error_code"] == "AccessDenied" and status["last_error_permanent"] == "1"
    assert buffer.release(r, IID, b, due_ms=T0 + 10) == "ok"
    assert buffer.held_batches(r, IID) == []
    c = buffer.claim(r, IID, b, token="t3", now_ms=T0 + 20, lease_ms=1000, key="k2")
    assert c.state == "ok" and c.retry_since_ms is None
    # S3 refused outright and nothing was uncertain: the new key (from the fixed config) is used
    assert c.key == "k2"


def sealed_of(r, sizes):
    for m, n in enumerate(sizes):
        append(r, lines(n, tag=f"m{m}-"), message_id=f"m{m}", max_events=1000)
    return buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)


def test_read_batch_yields_about_chunk_events_at_a_time(r):
    b = sealed_of(r, [5] * 20)  # 20 elements of 5 events
    parts = list(buffer.read_batch(r, IID, b, 10, 100))
    assert [len(lines_of(p)) for p in parts] == [5] + [10] * 9 + [5]
    assert lines_of([x for p in parts for x in p]) == [x for m in range(20) for x in lines(5, tag=f"m{m}-")]


def test_reading_a_batch_that_vanishes_midway_never_yields_its_last_chunk(r):
    b = sealed_of(r, [5] * 5)
    reader = buffer.read_batch(r, IID, b, 10, 25)
    assert len(next(reader)) == 1
    r.delete(keys.batch(IID, b))  # another uploader delivered and acked it
    with pytest.raises(buffer.BatchVanished):
        next(reader)


def test_reading_a_batch_short_of_its_events_yields_nothing_of_its_end(r):
    """Still there, it never held them: damaged (held at once); gone, another uploader finished it."""
    b = sealed_of(r, [5] * 3)
    r.rpop(keys.batch(IID, b))
    with pytest.raises(elements.DamagedBatch, match="holds 10 lines of its 15 events") as caught:
        list(buffer.read_batch(r, IID, b, 100, 15))
    assert classify(caught.value).permanent and classify(caught.value).code == "DamagedBatch"
    reader = buffer.read_batch(r, IID, b, 100, 15)
    r.delete(keys.batch(IID, b))
    with pytest.raises(buffer.BatchVanished):
        list(reader)


def test_live_records_trace_each_event_to_its_batch(r):
    live = {0: b'{"event_id":"a","gen":', 14: b'{"event_id":"b","gen":'}
    res = chunks.append(
        r,
        IID,
        chunks.Append(message_id="m", now_ms=T0, chunks_by_hour=chunks.chunks({HOUR: lines(15)}), live_records=live),
        chunks.Limits(cap_bytes=10**6, batch_max_events=10, batch_max_bytes=10**6, seal_due_ms=T0, seen_ttl_ms=1000),
    )
    assert len(res.sealed) == 1
    import orjson

    newest, oldest = (orjson.loads(x) for x in r.lrange(keys.live(IID), 0, -1))
    assert (oldest["event_id"], oldest["gen"], newest["event_id"], newest["gen"]) == ("a", 0, "b", 1)
    assert r.get(keys.sealed(IID, HOUR, 0)).decode() == res.sealed[0]
    assert r.get(keys.sealed(IID, HOUR, 1)) is None  # generation 1 is still the open buffer
    b = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0)
    assert r.get(keys.sealed(IID, HOUR, 1)).decode() == b
    buffer.claim(r, IID, b, token="t", now_ms=T0, lease_ms=1000, key="k/b")
    buffer.ack(r, IID, b, now_ms=T0, compressed_bytes=1, key="k/b")
    assert r.get(keys.delivered(IID, b)) == b"k/b"


def test_flush_now_seals_every_open_buffer_of_one_integration(r):
    from workers.integrations.manage import flush_now
    from workers.settings import Settings

    append(r, lines(2), hour="2026112509", message_id="a")
    append(r, lines(3), hour="2026112510", message_id="b")
    batches = flush_now(r, IID, settings=Settings())
    assert sorted(int(buffer.batch_meta(r, IID, b)["events"]) for b in batches) == [2, 3]
    assert buffer.open_buffers(r, [IID]) == {}


def test_scripts_hold_no_client_and_load_themselves_on_each_server():
    """No per-client registry to grow or leak: a script names its client at every call, and a server that does not
    know it yet (a new server, a restart) gets it on first use."""
    for name in scripts.NAMES:
        assert getattr(scripts.SCRIPTS, name).registered_client is None
    one, other = fakeredis.FakeRedis(server=fakeredis.FakeServer()), fakeredis.FakeRedis(server=fakeredis.FakeServer())
    for r in (one, other):
        assert scripts.SCRIPTS.lower(keys=["due", "versions"], args=["i", 5], client=r) == 1
        assert r.zscore("due", "i") == 5


# -- every script, as Redis Cluster runs it ----------------------------------------------------------------------------


def test_every_script_starts_with_its_lua_flags_line():
    """With ``#!lua`` first, Redis Cluster refuses a key outside the slot of the declared keys every time, not only
    when that other slot happens to live on another node."""
    for name in scripts.NAMES:
        first = scripts.source(name).splitlines()[0]
        assert first.startswith("#!lua"), name
        assert "allow-cross-slot-keys" not in first and "no-cluster" not in first, name
    on_disk = {path.stem for path in (Path(scripts.__file__).parent / "lua").glob("*.lua")}
    assert on_disk == {*scripts.NAMES, "_lib"}
    # a full Redis (noeviction) refuses new events whole, and still drains: sealing, claiming, acking free memory
    assert scripts.source("append").splitlines()[0] == "#!lua"
    for name in ("seal", "claim", "ack", "fail", "hold", "release"):
        assert scripts.source(name).splitlines()[0] == "#!lua flags=allow-oom", name


def test_an_append_says_when_it_opened_a_buffer(r):
    assert append(r, lines(2), message_id="a").opened
    assert not append(r, lines(2), message_id="b").opened
    assert not append(r, lines(2), message_id="b").opened  # a duplicate opens nothing
    assert append(r, lines(2), message_id="c", hour="2026112510").opened


# -- a script the client sent twice (a retry after a lost reply) changes nothing twice ---------------------------------


def seal_with(r, batch_id):
    return scripts.SCRIPTS.seal(
        keys=[keys.open_index(IID), keys.open_bytes(IID), keys.pending(IID)],
        args=[HOUR, batch_id, T0, T0 + 10, *buffer.prefixes(IID)],
        client=r,
    )


def test_a_seal_sent_twice_never_overwrites_its_batch_with_newer_events(r):
    append(r, lines(3), message_id="a")
    assert seal_with(r, "b-1") == 3
    append(r, lines(2, tag="n"), message_id="b")  # a new buffer fills before the retry arrives
    assert seal_with(r, "b-1") == 3  # answered as the first run was
    assert stored(r, keys.batch(IID, "b-1")) == lines(3)
    assert stored(r, keys.buffer(IID, HOUR)) == lines(2, tag="n")
    buffer.claim(r, IID, "b-1", token="t", now_ms=T0, lease_ms=1000, key="k")
    buffer.ack(r, IID, "b-1", now_ms=T0, compressed_bytes=1, key="k")
    assert seal_with(r, "b-1") == 0  # delivered: its object must never be written again with other events
    assert events_in(r, keys.buffer(IID, HOUR)) == 2


def test_a_claim_sent_twice_counts_one_claim(r):
    b = sealed(r)
    first = buffer.claim(r, IID, b, token="t", now_ms=T0, lease_ms=1000, key="k")
    again = buffer.claim(r, IID, b, token="t", now_ms=T0 + 1, lease_ms=1000, key="k2")
    assert first == again and (again.state, again.claims, again.attempts, again.key) == ("ok", 1, 1, "k")
    assert buffer.claim(r, IID, b, token="other", now_ms=T0 + 2, lease_ms=1000, key="k").state == "leased"


def test_a_hold_sent_twice_counts_one_failure(r):
    b = sealed(r)
    for _ in range(2):
        assert buffer.hold(r, IID, b, token="", now_ms=T0, code="WorkerLost", message="m", hint="h") == "ok"
    assert stats(r)["failures:WorkerLost"] == 1
    assert [h["batch_id"] for h in buffer.held_batches(r, IID)] == [b]


def test_the_append_script_never_receives_a_chunks_bytes():
    """Redis copies every script argument into Lua: the chunks go in by RPUSH in the same transaction instead."""
    text = b"\n".join(lines(500))
    message = chunks.Append(message_id="m", now_ms=T0, chunks_by_hour={HOUR: [chunks.Chunk(text, 500)]})
    limits = chunks.Limits(
        cap_bytes=10**9, batch_max_events=10**6, batch_max_bytes=10**9, seal_due_ms=T0, seen_ttl_ms=1
    )
    args = chunks._append_args(IID, message, limits)
    assert not [a for a in args if isinstance(a, bytes) and len(a) > 100]
    assert args[-3:] == [500, 5000, 0]  # the chunk's events and bytes; none compressed


def test_a_count_left_beside_an_emptied_buffer_is_not_trusted(r):
    """A seal from before counts were kept renames the buffer and leaves its count: the next append starts afresh."""
    r.hset(keys.open_count(IID), HOUR, 500)
    append(r, lines(3), max_events=10)
    assert int(r.hget(keys.open_count(IID), HOUR)) == 3
    batch = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    assert buffer.batch_meta(r, IID, batch)["events"] == "3"


def test_a_chunk_cut_into_one_line_batches_keeps_every_line_once(r):
    res = append(r, lines(40), max_events=1)
    assert len(res.sealed) == 40
    assert [stored(r, keys.batch(IID, b)) for b in res.sealed] == [[line] for line in lines(40)]
    assert buffer.open_buffers(r, [IID]) == {}


def test_an_append_whose_script_fails_leaves_nothing_behind(r, monkeypatch):
    """MULTI/EXEC does not roll back: when the script fails, the chunks the transaction pushed are taken back."""
    from redis.commands.core import Script

    append(r, lines(2), message_id="before")
    failing = Script(None, b"#!lua\nreturn redis.error_reply('ERR the script failed')")  # type: ignore[arg-type]
    monkeypatch.setattr(scripts.SCRIPTS, "append", failing)
    with pytest.raises(Exception, match="the script failed"):
        append(r, lines(3, tag="x"), message_id="failing")
    assert stored(r, keys.buffer(IID, HOUR)) == lines(2)


def test_read_batch_never_reads_much_more_than_asked_after_small_chunks(r):
    """A step sized on one-line chunks grows at most twofold a read: it cannot take a whole batch of large ones."""
    for m in range(4):
        append(r, lines(1, tag=f"s{m}-"), message_id=f"small-{m}", max_events=10**6, max_bytes=10**9)
    for m in range(40):
        append(r, lines(200, tag=f"b{m}-"), message_id=f"big-{m}", max_events=10**6, max_bytes=10**9)
    batch = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    parts = list(buffer.read_batch(r, IID, batch, 50, 8004))
    assert [len(p) for p in parts[:4]] == [1, 2, 4, 1]  # 1 + 2 small, then 1 small and 3 large, then one at a time
    assert max(len(lines_of(p)) for p in parts) == 601
    assert len(lines_of([x for p in parts for x in p])) == 8004


# -- chunks compressed by the producer (one gzip member each): kept as they are, inflated where they must be cut ------


def test_a_compressed_chunk_that_fits_is_kept_as_sent_and_counted_by_its_lines(r):
    res = append(r, lines(300), max_events=1000, compressed=True)
    [element] = r.lrange(keys.buffer(IID, HOUR), 0, -1)
    assert element[:2] == b"\x1f\x8b" and gzip.decompress(element) == b"\n".join(lines(300))
    assert (res.accepted, res.sealed) == (300, [])
    assert stats(r)["buffered_events"] == 300 and stats(r)["buffered_bytes"] == 3000
    assert int(r.hget(keys.open_count(IID), HOUR)) == 300 and int(r.hget(keys.open_bytes(IID), HOUR)) == 3000
    batch = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    assert [x for part in buffer.read_batch(r, IID, batch, 100, 300) for x in lines_of(part)] == lines(300)


def test_a_buffer_of_text_and_compressed_chunks_reads_back_in_order(r):
    append(r, lines(4, tag="a"), message_id="a", max_events=1000)
    append(r, lines(6, tag="b"), message_id="b", max_events=1000, compressed=True)
    append(r, lines(2, tag="c"), message_id="c", max_events=1000)
    batch = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    parts = list(buffer.read_batch(r, IID, batch, 5, 12))
    assert [x for part in parts for x in lines_of(part)] == lines(4, tag="a") + lines(6, tag="b") + lines(2, tag="c")


def test_batch_ids_are_random_uuids_written_as_uuid4_writes_them():
    import uuid

    ids = chunks.batch_ids(500)
    assert len(set(ids)) == 500
    for i in ids:
        u = uuid.UUID(i)
        assert str(u) == i and u.version == 4 and u.variant == uuid.RFC_4122
    assert chunks.batch_ids(0) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda member: member[:-9] + b"x" * 9,  # a broken trailer
        lambda member: member + member,  # two members
        lambda member: member + b"junk",  # bytes after it
    ],
)
def test_a_compressed_chunk_that_does_not_inflate_whole_makes_its_batch_damaged(r, damage):
    append(r, lines(5), message_id="a", max_events=1000, compressed=True)
    batch = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0 + 1)
    key = keys.batch(IID, batch)
    r.lset(key, 0, damage(r.lindex(key, 0)))
    with pytest.raises(elements.DamagedBatch):
        list(buffer.read_batch(r, IID, batch, 100, 5))
