"""The account of delivery: what the delivery overview and the object ledger cost, on a private redis-server.

* ``append`` / ``ack``: A/B of ``append.lua`` (through ``workers.pipeline.ingest.append``, the ingest worker's own
  call, on prepared messages carrying rejections, blueprint removals and live records) and of ``ack.lua`` (through
  ``workers.store.buffer.ack``, with a packed ledger record, as the uploader calls it), each against a copy of the
  script with the overview writes (and, for ack, the ledger's APPEND) cut out of its source at bench time. Both copies
  get the same arguments, so the difference is Redis' own. Measured twice: whole runs of each copy in turn (Redis'
  ``used_cpu_user+sys``, INFO commandstats, this process's CPU), and calls of the two copies in turns, each call
  timed by Redis (the median of the differences within pairs: the precise figure; whole runs drift by more than the
  overview costs). The overview's writes are per message, so they are measured on 9-event messages and spread over
  the API's 500; the same A/B on 500-event messages is the direct check. The worker's own added work (the overview
  key and field, the ledger record, their extra arguments) is timed apart.
* ``overview_memory``: ``used_memory`` for seven days of the overview's hashes of many integrations, written field by
  field as the scripts write them (the fields checked against what the real scripts wrote in the A/B).
* ``ledger_memory``: ``used_memory`` per object record as ``ack.lua`` stores it (one APPEND per object onto the
  hour's string, PEXPIRE), at one object per integration and hour and at one per minute.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from redis.commands.core import Script

from bench.events import make_events
from bench.procs import Stack
from tests.support.fleet import install
from tests.support.processes import RedisServer
from workers import clock
from workers.events import blueprint, prepared, rules
from workers.events.message import Message, message_of
from workers.pipeline import ingest
from workers.settings import Settings
from workers.sink.object_keys import object_key
from workers.store import buffer, keys, ledger, overview, scripts
from workers.store.scripts import SCRIPTS

TARGET_US_PER_EVENT = 0.5
TARGET_BYTES = 50_000_000  # MB here and in the table: 10^6 bytes
DAYS = 7
INTEGRATIONS = 1_000  # the target's fleet; a smaller measured fleet is scaled to it
SLOWLOG_LEN = 200_000  # more than the slow log takes in one chunk of calls in turns
SLOWLOG_FLOOR_US = 10
SMALL_EVENTS = 9  # the per-message A/B: 1 accepted, 3 rejected, 5 removed (the same overview writes as 500)
API_EVENTS = 500  # events in a signal.append message the API publishes under load (collect_batch_events)
EVENTS_PER_OBJECT = 100_000  # the default batch_max_events: an ack per event at the default batch size
OBJECTS_PER_HOUR_STEADY = 60  # the default 60 s flush interval with steady traffic
ETAG = "9b2cf535f27731c974343645a3985328-2"  # 34 characters, as a multipart upload's ETag is stored (no quotes)

# What a message carries besides its lines: 3 events rejected (3 reasons) and 5 removed by the blueprint (2 reasons)
BLUEPRINT = {"consent": {"require": ["analytics"], "missing": "allow"}, "events": {"exclude": ["Heartbeat"]}}

# append.lua / ack.lua without the account: each cut must occur once in the script's source (else the script changed
# and the bench must follow it)
APPEND_CUTS = (
    "local ov, hh = KEYS[8], ARGV[8]\n",
    "local counted = false\nlocal function count(field, n)\n  redis.call('HINCRBY', ov, hh .. field, n)\n"
    "  counted = true\nend\n",
    "  if string.sub(stat, 1, 9) == 'rejected:' then\n    count('r:' .. string.sub(stat, 10), n)\n"
    "  elseif string.sub(stat, 1, 8) == 'removed:' then\n    count('f:' .. string.sub(stat, 9), n)\n  end\n",
    "  count('a', accepted)\n",
    "  count('r:buffer_full', refused_events)\n",
    "if counted then redis.call('EXPIRE', ov, ARGV[9], 'NX') end\n",
)
ACK_CUTS = (
    "local ov, hh = KEYS[10], ARGV[7]\n",
    "redis.call('HINCRBY', ov, hh .. 'd', events)\nredis.call('HINCRBY', ov, hh .. 'o', 1)\n"
    "redis.call('HINCRBY', ov, hh .. 'b', ARGV[3])\n",
    "local bucket = hh .. 'l+'\nfor k = 1, n_bounds do\n  if latency_ms <= tonumber(ARGV[12 + k]) then\n"
    "    bucket = hh .. 'l' .. (k - 1)\n    break\n  end\nend\nredis.call('HINCRBY', ov, bucket, events)\n"
    "redis.call('EXPIRE', ov, ARGV[8], 'NX')\n",
    "if redis.call('GET', KEYS[12]) ~= ARGV[10] then\n  redis.call('RPUSH', KEYS[11], ARGV[10])\n"
    "  redis.call('SET', KEYS[12], ARGV[10], 'PX', ARGV[9])\nend\nredis.call('RPUSH', KEYS[11], ARGV[11])\n"
    "redis.call('PEXPIRE', KEYS[11], ARGV[9])\n",
)

# One busy hour of the overview as the scripts leave it: accepted, two blueprint reasons, two rejection reasons
# (append.lua); delivered, objects, bytes and three latency buckets around a 60 s flush interval (ack.lua); held
# (hold.lua) in one hour of 24.
HOUR_FIELDS = ("a", "f:consent_denied", "f:filtered_out", "r:invalid_type", "r:missing_event", "d", "o", "b")
LATENCY_FIELDS = ("l3", "l4", "l5")  # <= 30 s, <= 60 s, <= 120 s
HELD_EVERY_H = 24
# The worst hour: every latency bucket, held, a third rejection reason (144 fields a block)
WORST_EXTRA = ("r:invalid_timestamp", *(f"l{k}" for k in range(13) if f"l{k}" not in LATENCY_FIELDS), "l+", "h")

# Writes records the way ack.lua does, one APPEND and PEXPIRE per object, for every hour key of one integration.
LEDGER_FILL = """
local n = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('RPUSH', key, ARGV[3])
  for _ = 1, n do
    redis.call('RPUSH', key, ARGV[4])
    redis.call('PEXPIRE', key, ARGV[1])
  end
end
return 0
"""


def run(stack: Stack, sizes: dict[str, Any]) -> dict[str, Any]:
    """Every measure of this module on its own redis-server (started here, stopped by PID)."""
    server = RedisServer(
        data_dir=Path(stack.log_dir) / "account-redis",
        log_dir=stack.log_dir,
        extra_args=["--maxmemory-policy", "noeviction"],
    ).start()
    try:
        r = server.client()
        out: dict[str, Any] = {"redis_version": r.info("server")["redis_version"]}
        settings = Settings(redis_url=server.url)
        rounds, n = sizes["account_rounds"], sizes["account_messages"]
        out["append_small"] = append_ab(r, settings, size=SMALL_EVENTS, messages=10 * n, rounds=rounds)
        out["append"] = append_ab(r, settings, size=API_EVENTS, messages=n, rounds=rounds)
        out["append_cost"] = append_cost(out["append_small"], out["append"])
        out["ack"] = ack_ab(r, objects=sizes["account_acks"], rounds=rounds)
        r.flushdb()
        fields = out["append"]["overview_fields"] + out["ack"]["overview_fields"]
        out["overview_memory"] = overview_memory(r, sizes["account_integrations"], written=fields)
        r.flushdb()
        out["ledger_memory"] = ledger_memory(r, sizes["account_integrations"])
        r.close()
        return out
    finally:
        server.stop(timeout=10)


# -- CPU: A/B of the scripts ------------------------------------------------------------------------------------------

Call = Callable[[int], str]  # the i-th call of a run; returns the KEYS[1] it named (which tells its call apart)
Prepare = Callable[[int], Call]  # fresh state for n calls, and the call


def without(name: str, cuts: tuple[str, ...]) -> Script:
    """A copy of a store script with ``cuts`` removed from its source (as Redis runs it: _lib.lua included)."""
    text = scripts.source(name)
    for cut in cuts:
        if text.count(cut) != 1:
            raise AssertionError(f"{name}.lua changed: {cut.splitlines()[0].strip()!r} is not in it once")
        text = text.replace(cut, "")
    return Script(None, text.encode())  # type: ignore[arg-type]


@contextmanager
def running(name: str, script: Script | None) -> Iterator[None]:
    """``SCRIPTS.<name>`` replaced by ``script`` in this process (None: the real one) while the block runs."""
    saved = getattr(SCRIPTS, name)
    if script is not None:
        setattr(SCRIPTS, name, script)
    try:
        yield
    finally:
        setattr(SCRIPTS, name, saved)


def redis_cpu_s(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measured(r: redis.Redis, n: int, call: Call) -> dict[str, float]:
    """Redis CPU (``used_cpu_user+sys``), the scripts' time (EVALSHA in INFO commandstats), the commands they ran and
    this process's CPU over ``n`` calls."""
    gc.collect()
    r.config_resetstat()
    redis0, client0 = redis_cpu_s(r), time.process_time()
    for i in range(n):
        call(i)
    client_s, redis_s = time.process_time() - client0, redis_cpu_s(r) - redis0
    stats = r.info("commandstats")
    script = stats.get("cmdstat_evalsha", {})
    nested = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_evalsha", "cmdstat_info", "cmdstat_config"))
    return {
        "redis_cpu_s": redis_s,
        "client_cpu_s": client_s,
        "script_s": script.get("usec", 0) / 1e6,
        "scripts": script.get("calls", 0),
        "commands": nested,
    }


def paired(
    r: redis.Redis, name: str, variants: dict[str, Script | None], prepare: Prepare, *, n: int, rounds: int
) -> dict[str, list[dict[str, float]]]:
    """``rounds`` runs of ``n`` calls of each variant, alternating which goes first, each run on fresh state."""
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    order = list(variants)
    for k in range(rounds):
        for v in order if k % 2 == 0 else reversed(order):
            call = prepare(n)
            with running(name, variants[v]):
                runs[v].append(measured(r, n, call))
    return runs


def summary(runs: dict[str, list[dict[str, float]]], per: float) -> dict[str, Any]:
    """Medians per call (``per`` calls a run) of each variant, and of the paired differences with - without."""
    out: dict[str, Any] = {}
    for v, rs in runs.items():
        out[v] = {
            "redis_cpu_us": statistics.median(x["redis_cpu_s"] for x in rs) / per * 1e6,
            "script_us": statistics.median(x["script_s"] for x in rs) / per * 1e6,
            "client_cpu_us": statistics.median(x["client_cpu_s"] for x in rs) / per * 1e6,
            "commands": statistics.median(x["commands"] / max(x["scripts"], 1) for x in rs),
        }
    diff: dict[str, Any] = {}
    for what in ("redis_cpu", "script", "client_cpu"):
        d = [(a[f"{what}_s"] - b[f"{what}_s"]) / per * 1e6 for a, b in zip(runs["with"], runs["without"], strict=True)]
        diff[f"{what}_us"] = statistics.median(d)
        diff[f"{what}_us_range"] = [min(d), max(d)]
    diff["commands"] = out["with"]["commands"] - out["without"]["commands"]
    out["added"] = diff
    out["runs"] = runs
    return out


def interleaved(
    r: redis.Redis, name: str, variants: dict[str, Script | None], prepare: Prepare, *, calls: int, chunk: int
) -> dict[str, Any]:
    """The two variants called in turns (with, without; then without, with; ...) and each call timed by Redis (its
    slow log: the clock of INFO commandstats, one figure per call, told apart by the KEYS[1] it named). Neighbouring
    calls share the machine's state of the moment, so the median of the differences within each pair is the
    script's added time, free of the drift that moves whole runs."""
    shas = {(variants[v] or getattr(SCRIPTS, name)).sha.encode(): v for v in variants}
    order = list(variants)
    diffs: list[float] = []
    times: dict[str, list[float]] = {v: [] for v in variants}
    unlogged = 0
    r.config_set("slowlog-max-len", SLOWLOG_LEN)
    # Redis 7 also logs the commands a script runs: logging only those slower than this (none of the overview's)
    # costs the two copies alike, and every script call here takes longer
    r.config_set("slowlog-log-slower-than", SLOWLOG_FLOOR_US)
    try:
        done = 0
        while done < calls:
            n = min(chunk, calls - done) // 2 * 2
            call = prepare(n)
            r.slowlog_reset()
            made: dict[bytes, tuple[int, str]] = {}  # KEYS[1] -> (pair, variant)
            for i in range(n):
                pair, second = divmod(i, 2)
                v = order[(pair + second) % 2]
                with running(name, variants[v]):
                    made[call(i).encode()] = (pair, v)
            found: dict[int, dict[str, float]] = {}
            for e in r.slowlog_get(SLOWLOG_LEN):
                head = e["command"].split(b" ", 4)
                if head[0] == b"EVAL":
                    # the append runs as EVAL inside its MULTI/EXEC: the slowlog shows the start of the script text,
                    # spaces and all, then its keys; the copy that ran is the one swapped in for that call
                    key = next((k for k in made if b" " + k + b" " in e["command"]), None)
                    if key is not None:
                        pair, v = made[key]
                        found.setdefault(pair, {})[v] = e["duration"]
                elif head[0] == b"EVALSHA" and head[1] in shas and len(head) > 3 and head[3] in made:
                    pair, v = made[head[3]]
                    if shas[head[1]] != v:
                        raise AssertionError(f"{name}.lua: a call ran the other copy of the script")
                    found.setdefault(pair, {})[v] = e["duration"]
            for pair_us in found.values():
                if len(pair_us) == 2:
                    diffs.append(pair_us["with"] - pair_us["without"])
                    for v, us in pair_us.items():
                        times[v].append(us)
            unlogged += n - sum(map(len, found.values()))
            done += n
    finally:
        r.config_set("slowlog-log-slower-than", 10_000)
        r.slowlog_reset()
    q1, _, q3 = statistics.quantiles(diffs, n=4)
    return {
        "pairs": len(diffs),
        "calls_unlogged": unlogged,
        "added_us": statistics.median(diffs),
        "added_us_quartiles": [q1, q3],
        **{f"{v}_us": statistics.median(t) for v, t in times.items()},
    }


def best_us(fn: Callable[[], object], number: int = 20_000, repeat: int = 5) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def prepared_messages(n: int, size: int) -> list[Message]:
    """``n`` prepared messages of ``size`` events as the API publishes them: 3 rejected (invalid_type, missing_event,
    invalid_timestamp), 5 removed by the blueprint (3 consent_denied, 2 filtered_out), the rest accepted (with live
    records for the last 100). Every size makes the same overview writes: one set of increments per message."""
    compiled = rules.compile_rules(blueprint.parse_blueprint(BLUEPRINT), bytes.fromhex(rules.new_hash_key()))
    out = []
    for seed in range(n):
        events = make_events(size, seed=100 + seed, tag=f"m{seed}")
        events[1]["type"] = "bogus"
        events[2] = {"type": "track", "anonymous_id": "a-1"}
        events[3]["timestamp"] = "yesterday"
        for i in (4, 5, 6):
            events[i]["context"]["consent"] = {"analytics": False}
        for i in (7, 8):
            events[i].update(type="track", event="Heartbeat")
        ready = prepared.prepare(events, "bench", received_at=clock.now(), event_max_bytes=32 * 1024, rules=compiled)
        out.append(message_of(ready))
    return out


def append_ab(r: redis.Redis, settings: Settings, *, size: int, messages: int, rounds: int) -> dict[str, Any]:
    """append.lua with and without the overview, on prepared messages of ``size`` events appended by
    ``workers.pipeline.ingest.append`` as the ingest worker does: ``rounds`` paired runs of ``messages``, then as
    many calls in turns. Figures per message."""
    msgs = prepared_messages(4, size)
    iid = install(r, "signal-bench")
    record = r.get(keys.integration(iid))
    variants: dict[str, Script | None] = {"with": None, "without": without("append", APPEND_CUTS)}
    serial = iter(range(10**9))

    def prepare(_n: int) -> Call:
        r.flushdb()
        r.set(keys.integration(iid), record)  # type: ignore[arg-type]
        r.sadd(keys.INTEGRATIONS, iid)

        def call(i: int) -> str:
            message_id = f"m-{next(serial)}"
            ingest.append(r, iid, msgs[i % len(msgs)], message_id=message_id, settings=settings)
            return keys.seen(iid, message_id)

        return call

    # warm up (each script loaded) and check what each variant writes to the overview
    written: dict[str, list[str]] = {}
    for v, script in variants.items():
        call = prepare(len(msgs))
        with running("append", script):
            for i in range(len(msgs)):
                call(i)
        found = list(r.scan_iter(match=f"{keys.overview(iid, '')}*"))
        written[v] = sorted(f.decode()[2:] for k in found for f in r.hkeys(k))
    if written["without"] or not written["with"]:
        raise AssertionError(f"the A/B does not cut the overview: {written}")
    out = summary(paired(r, "append", variants, prepare, n=messages, rounds=rounds), messages)
    out["calls"] = interleaved(r, "append", variants, prepare, calls=messages * rounds, chunk=messages)
    lines = [line for m in msgs for text in m.texts_by_hour.values() for line in text.split(b"\n")]
    m0 = msgs[0]
    return {
        **out,
        "events_per_message": m0.events,
        "accepted_per_message": m0.accepted,
        "rejected_per_message": len(m0.rejected),
        "removed_per_message": sum(m0.removed.values()),
        "live_records_per_message": len(m0.live),
        "line_bytes": sum(map(len, lines)) / len(lines),
        "messages_per_run": messages,
        "rounds": rounds,
        "overview_fields": written["with"],
    }


def append_worker_us() -> float:
    """The ingest worker's own overview work per message: the block key and field prefix, and their arguments."""
    iid, now = str(uuid.uuid4()), clock.now_ms()
    ov_key, _, hh = buffer.overview_at(iid, now)
    extra = [ov_key, hh, overview.RETENTION_S]
    conn = redis.Connection()
    return best_us(lambda: (buffer.overview_at(iid, now), overview.field_prefix(clock.hour_of_ms(now)))) + best_us(
        lambda: conn.pack_command(*extra)
    )


def append_cost(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """The ingest cost added per event of the API's messages: Redis' added time per message (calls of the two
    copies in turns, on messages of ``API_EVENTS``) plus the worker's own added work, spread over the message. Whole
    runs (Redis' CPU) and 9-event messages (the same overview writes, where they stand out of the noise) as checks."""
    worker = append_worker_us()
    n = large["events_per_message"]
    redis_us = large["calls"]["added_us"]
    return {
        "us_per_event": (redis_us + worker) / n,
        "redis_us_per_event": redis_us / n,
        "worker_us_per_event": worker / n,
        "redis_us_per_message": redis_us,
        "redis_us_per_message_quartiles": large["calls"]["added_us_quartiles"],
        "worker_us_per_message": worker,
        "commands_per_message": large["added"]["commands"],
        "small_redis_us_per_message": small["calls"]["added_us"],
        "small_redis_us_per_message_quartiles": small["calls"]["added_us_quartiles"],
        "runs_redis_cpu_us_per_event": large["added"]["redis_cpu_us"] / n,
        "runs_redis_cpu_us_per_event_range": [x / n for x in large["added"]["redis_cpu_us_range"]],
        "without_us_per_event": (large["without"]["redis_cpu_us"] + large["without"]["client_cpu_us"]) / n,
        "without_redis_cpu_us_per_event": large["without"]["redis_cpu_us"] / n,
        "with_redis_cpu_us_per_event": large["with"]["redis_cpu_us"] / n,
    }


def ledger_record(key: str, hour: str, now_ms: int, events: int) -> tuple[bytes, bytes]:
    """A header and record as the uploader packs them (``key``: ``events/YYYY/MM/DD/HH/<uuid>.json.gz``), an MD5
    ETag, a bucket name of 24 characters."""
    return ledger.pack(
        ledger.Record(
            key=key,
            hour=hour,
            events=events,
            raw_bytes=events * 830,
            bytes=events * 92,
            first_ms=now_ms - 65_000,
            last_ms=now_ms - 5_000,
            written_ms=now_ms,
            upload_ms=420,
            attempts=1,
            etag=ETAG,
            bucket="datafly-events-production",
        ),
        prefix="events/",
    )


def ack_ab(r: redis.Redis, *, objects: int, rounds: int) -> dict[str, Any]:
    """ack.lua with and without the overview and the ledger, called as the uploader calls it, on batches of the
    default 100,000 events (their lists hold 10 lines: freeing a full batch costs the same with and without):
    ``rounds`` paired runs of ``objects`` acks, then as many acks in turns. Figures per object."""
    iid = str(uuid.uuid4())
    variants: dict[str, Script | None] = {"with": None, "without": without("ack", ACK_CUTS)}
    line = b'{"event_id":"e-1","type":"track"}' * 20

    def prepare(n: int) -> Call:
        r.flushdb()
        now = clock.now_ms()
        hour = clock.hour_of_ms(now)
        ids = [str(uuid.uuid4()) for _ in range(n)]
        object_keys = [object_key("events/", hour, batch_id) for batch_id in ids]  # the claim's key
        pipe = r.pipeline(transaction=False)
        for batch_id in ids:
            meta = {"hour": hour, "events": EVENTS_PER_OBJECT, "bytes": EVENTS_PER_OBJECT * 830}
            meta |= {"sealed_ms": now - 5_000, "first_ms": now - 65_000, "last_ms": now - 5_000, "state": "leased"}
            pipe.hset(keys.batch_meta(iid, batch_id), mapping=meta)
            pipe.rpush(keys.batch(iid, batch_id), *([line] * 10))
            pipe.zadd(keys.pending(iid), {batch_id: now + 300_000})
        pipe.execute()

        def call(i: int) -> str:
            written = clock.now_ms()
            done = buffer.ack(
                r,
                iid,
                ids[i],
                now_ms=written,
                compressed_bytes=EVENTS_PER_OBJECT * 92,
                key=object_keys[i],
                upload_s=0.42,
                ledger_record=ledger_record(object_keys[i], hour, written, EVENTS_PER_OBJECT),
                ledger_ttl_ms=7 * 86_400_000,
            )
            assert done
            return keys.batch_meta(iid, ids[i])

        return call

    written: dict[str, list[str]] = {}
    for v, script in variants.items():
        call = prepare(10)
        with running("ack", script):
            for i in range(10):
                call(i)
        found = list(r.scan_iter(match=f"{keys.overview(iid, '')}*"))
        written[v] = sorted(f.decode()[2:] for k in found for f in r.hkeys(k))
        written[v] += ["ledger"] * len(list(r.scan_iter(match=f"{keys.ledger(iid, '')}*")))
    if written["without"] or not written["with"]:
        raise AssertionError(f"the A/B does not cut the overview and the ledger: {written}")
    out = summary(paired(r, "ack", variants, prepare, n=objects, rounds=rounds), objects)
    out["calls"] = interleaved(r, "ack", variants, prepare, calls=objects * rounds, chunk=objects)
    now = clock.now_ms()
    hour = clock.hour_of_ms(now)
    key = object_key("events/", hour, str(uuid.uuid4()))
    record = ledger_record(key, hour, now, EVENTS_PER_OBJECT)
    ov_key, _, hh = buffer.overview_at(iid, now)
    extra = [ov_key, keys.ledger(iid, hour[:8]), keys.ledger_head(iid, hour[:8]), hh, overview.RETENTION_S]
    extra += [7 * 86_400_000, *record, *overview.lua_latency_bounds()]
    conn = redis.Connection()
    out["added"]["worker_us"] = (
        best_us(lambda: ledger_record(key, hour, now, EVENTS_PER_OBJECT))
        + best_us(
            lambda: (
                buffer.overview_at(iid, now),
                keys.ledger(iid, clock.hour_of_ms(now)[:8]),
                keys.ledger_head(iid, clock.hour_of_ms(now)[:8]),
                overview.lua_latency_bounds(),
            )
        )
        + best_us(lambda: conn.pack_command(*extra))
    )
    out["added"]["us_per_object"] = out["calls"]["added_us"] + out["added"]["worker_us"]
    out["added"]["us_per_event"] = out["added"]["us_per_object"] / EVENTS_PER_OBJECT
    return {
        **out,
        "objects_per_run": objects,
        "events_per_object": EVENTS_PER_OBJECT,
        "record_bytes": len(record),
        "rounds": rounds,
        "overview_fields": [f for f in written["with"] if f != "ledger"],
    }


# -- memory -----------------------------------------------------------------------------------------------------------


def used_memory(r: redis.Redis) -> int:
    time.sleep(0.2)  # let the server settle (client buffers freed after a large pipeline)
    return int(r.info("memory")["used_memory"])


def hours_of(days: int) -> list[str]:
    """The UTC hours ``YYYYMMDDHH`` of the last ``days`` whole days."""
    end = (clock.now_ms() // 86_400_000) * 86_400_000
    return [clock.hour_of_ms(end - (h + 1) * 3_600_000) for h in range(days * 24)][::-1]


def hour_counts(rng: random.Random, rate: int, fields: tuple[str, ...]) -> dict[str, int]:
    """One hour's counters of an integration receiving about ``rate`` events an hour."""
    a = int(rate * rng.uniform(0.8, 1.2))
    values = {
        "a": a,
        "d": a,
        "o": OBJECTS_PER_HOUR_STEADY,
        "b": a * 92,  # gzip NDJSON of the bench's 830-byte lines
        "f:consent_denied": a // 50,
        "f:filtered_out": a // 200,
        "r:invalid_type": rng.randrange(1, 40),
        "r:missing_event": rng.randrange(1, 40),
        "r:invalid_timestamp": rng.randrange(1, 40),
        "l3": a // 20,
        "l4": a * 7 // 10,
        "l5": a // 4,
        "h": rng.randrange(100, 5_000),
    }
    return {f: values.get(f, rng.randrange(1, 1_000)) for f in fields}


def write_overview(r: redis.Redis, iids: list[str], hours: list[str], *, worst: bool) -> None:
    """A week of every hour active, as the scripts leave it: one HINCRBY per field, hour after hour, EXPIRE NX."""
    rng = random.Random(5)
    for iid in iids:
        rate = int(10 ** rng.uniform(3, 6))  # 1,000 to 1,000,000 events an hour
        pipe = r.pipeline(transaction=False)
        for n, hour in enumerate(hours):
            fields = HOUR_FIELDS + LATENCY_FIELDS
            if worst:
                fields += WORST_EXTRA
            elif n % HELD_EVERY_H == 13:
                fields += ("h",)
            key, prefix = keys.overview(iid, overview.block_of(hour)), overview.field_prefix(hour)
            for name, count in hour_counts(rng, rate, fields).items():
                pipe.hincrby(key, prefix + name, count)
            pipe.expire(key, overview.RETENTION_S, nx=True)
        pipe.execute()


def overview_memory(r: redis.Redis, integrations: int, *, written: list[str]) -> dict[str, Any]:
    """``used_memory`` of ``DAYS`` days of overview hashes of ``integrations`` integrations, every hour active."""
    kinds = set(HOUR_FIELDS + LATENCY_FIELDS + WORST_EXTRA)
    unknown = sorted({f for f in written if f not in kinds})
    if unknown:
        raise AssertionError(f"the scripts write overview fields the bench does not model: {unknown}")
    hours = hours_of(DAYS)
    iids = [str(uuid.uuid4()) for _ in range(integrations)]
    out: dict[str, Any] = {"integrations_measured": integrations, "days": DAYS}
    out["hash_max_listpack_entries"] = int(r.config_get("hash-max-listpack-entries")["hash-max-listpack-entries"])
    for shape, worst in (("typical", False), ("worst", True)):
        r.flushdb()
        before = used_memory(r)
        write_overview(r, iids, hours, worst=worst)
        used = used_memory(r) - before
        sample = keys.overview(iids[0], overview.block_of(hours[0]))
        out[shape] = {
            "used_memory_bytes": used,
            "bytes_per_integration_day": used / integrations / DAYS,
            "bytes_fleet_7d": used / integrations * INTEGRATIONS,
            "keys": int(r.dbsize()),
            "fields_per_block": int(r.hlen(sample)),
            "encoding": r.object("encoding", sample).decode(),  # type: ignore[union-attr]
        }
    out["typical"]["fields_per_hour"] = len(HOUR_FIELDS + LATENCY_FIELDS)
    out["typical"]["hour_fields"] = [*HOUR_FIELDS, *LATENCY_FIELDS, f"h (1 hour in {HELD_EVERY_H})"]
    out["worst"]["fields_per_hour"] = len(HOUR_FIELDS + LATENCY_FIELDS + WORST_EXTRA)
    out["retention_days"] = overview.RETENTION_S / 86_400
    return out


def ledger_memory(r: redis.Redis, integrations: int) -> dict[str, Any]:
    """``used_memory`` per record as ``ack.lua`` stores them, ``DAYS`` days of ``integrations`` integrations, at one
    object per integration and hour and at one per minute: a string per integration and day holding one header and
    the day's records."""
    fill = r.register_script(LEDGER_FILL)
    hours = hours_of(DAYS)
    days = sorted({h[:8] for h in hours})
    ttl_ms = 7 * 86_400_000
    out: dict[str, Any] = {"integrations_measured": integrations, "days": DAYS, "etag_chars": len(ETAG)}
    for shape, per_hour in (("hourly", 1), ("per_minute", OBJECTS_PER_HOUR_STEADY)):
        r.flushdb()
        fill(keys=["bench:warm"], args=[ttl_ms, 1, b"h", b"x"])  # the script loaded before the baseline
        r.delete("bench:warm")
        before = used_memory(r)
        records = 0
        now = clock.now_ms()
        header, record = ledger_record(object_key("events/", hours[0], str(uuid.uuid4())), hours[0], now, 1_000)
        for _ in range(integrations):
            iid = str(uuid.uuid4())
            # a day's records of one integration (the same bytes each: memory depends on lengths)
            fill(keys=[keys.ledger(iid, d) for d in days], args=[ttl_ms, per_hour * 24, header, record])
            records += per_hour * 24 * len(days)
        used = used_memory(r) - before
        content = sum(map(len, r.lrange(keys.ledger(iid, days[0]), 0, -1)))
        out[shape] = {
            "objects_per_hour": per_hour,
            "records": records,
            "used_memory_bytes": used,
            "bytes_per_record": used / records,
            "bytes_per_integration_hour": used / integrations / (len(days) * 24),
            "string_bytes_per_key": content,
            "allocated_bytes_per_key": int(r.memory_usage(keys.ledger(iid, days[0])) or 0),
            "bytes_fleet_7d": used / integrations * INTEGRATIONS * DAYS / len(days),
        }
    out["record_bytes"] = len(record)
    return out


# -- the table --------------------------------------------------------------------------------------------------------


def rows(res: dict[str, Any]) -> list[tuple[str, str, str, str, str, bool | None]]:
    """Rows of the bench table: (measure, limit, product, result, target, ok or None for information)."""
    if "account" not in res:
        return []
    a = res["account"]
    out: list[tuple[str, str, str, str, str, bool | None]] = []
    cost, ap = a["append_cost"], a["append"]
    out.append(
        (
            f"overview: ingest CPU added per event (append.lua, messages of {ap['events_per_message']})",
            f"{cost['without_us_per_event']:.2f} us without (Redis+worker)",
            f"+{cost['us_per_event']:.3f} us",
            f"{cost['us_per_event'] / TARGET_US_PER_EVENT:.3f} of target",
            f"<= {TARGET_US_PER_EVENT} us",
            cost["us_per_event"] <= TARGET_US_PER_EVENT,
        )
    )
    small = a["append_small"]
    q1, q3 = cost["redis_us_per_message_quartiles"]
    out.append(
        (
            f"  per message: Redis, {ap['calls']['pairs']:,} calls of each in turns",
            f"{ap['calls']['without_us']:,.0f} us/call without",
            f"+{cost['redis_us_per_message']:.1f} us",
            f"quartiles {q1:+.0f}..{q3:+.0f} us; +{cost['commands_per_message']:.0f} commands",
            "info",
            None,
        )
    )
    q1, q3 = cost["small_redis_us_per_message_quartiles"]
    out.append(
        (
            f"  the same on {small['events_per_message']}-event messages (same overview writes)",
            f"{small['calls']['without_us']:,.0f} us/call without",
            f"+{cost['small_redis_us_per_message']:.1f} us",
            f"quartiles {q1:+.0f}..{q3:+.0f} us",
            "info",
            None,
        )
    )
    out.append(
        (
            "  per message: the worker's own work (overview key, field, args)",
            "",
            f"+{cost['worker_us_per_message']:.1f} us",
            "",
            "info",
            None,
        )
    )
    lo, hi = cost["runs_redis_cpu_us_per_event_range"]
    out.append(
        (
            f"  Redis CPU per event, whole runs of {ap['messages_per_run']} messages",
            f"{cost['without_redis_cpu_us_per_event']:.2f} us without",
            f"{cost['with_redis_cpu_us_per_event']:.2f} us",
            f"{cost['runs_redis_cpu_us_per_event']:+.3f} us (runs {lo:+.2f}..{hi:+.2f})",
            "info",
            None,
        )
    )
    ak = a["ack"]
    k = ak["added"]
    out.append(
        (
            "  ack.lua per object, overview + ledger (Redis + worker)",
            f"{ak['calls']['without_us']:.0f} us/call without",
            f"+{ak['calls']['added_us']:.1f} + {k['worker_us']:.1f} us",
            f"{k['us_per_event']:.5f} us/event at {ak['events_per_object']:,} events/object",
            "info",
            None,
        )
    )
    ov, lg = a["overview_memory"], a["ledger_memory"]
    typ, worst = ov["typical"], ov["worst"]
    out.append(
        (
            f"overview memory, {DAYS} days of {INTEGRATIONS:,} integrations",
            f"{typ['fields_per_hour']} fields/hour, {typ['encoding']}",
            f"{typ['bytes_fleet_7d'] / 1e6:.1f} MB",
            f"{typ['bytes_fleet_7d'] / DAYS / 1e6:.2f} MB/day; kept {ov['retention_days']:g} days: "
            f"{typ['bytes_fleet_7d'] / DAYS * ov['retention_days'] / 1e6:.1f} MB",
            "info",
            None,
        )
    )
    out.append(
        (
            "  worst hours (every latency bucket, held, 5 reasons)",
            f"{worst['fields_per_hour']} fields/hour, {worst['encoding']}",
            f"{worst['bytes_fleet_7d'] / 1e6:.1f} MB",
            f"{worst['bytes_fleet_7d'] / typ['bytes_fleet_7d']:.1f}x typical",
            "info",
            None,
        )
    )
    hourly, minute = lg["hourly"], lg["per_minute"]
    out.append(
        (
            "ledger bytes per object record as stored",
            f"{lg['record_bytes']} B packed",
            f"{hourly['bytes_per_record']:.0f} B at 1/hour",
            f"{minute['bytes_per_record']:.0f} B at 1/minute",
            "info",
            None,
        )
    )
    total = typ["bytes_fleet_7d"] + hourly["bytes_fleet_7d"]
    room = TARGET_BYTES - typ["bytes_fleet_7d"]  # what the target leaves the ledger next to the overview
    fits_hourly = room / (hourly["bytes_fleet_7d"] / (DAYS * 24))
    out.append(
        (
            f"overview + ledger, {DAYS} days of {INTEGRATIONS:,} integrations, 1 object/hour",
            f"{TARGET_BYTES / 1e6:.0f} MB",
            f"{total / 1e6:.1f} MB",
            f"{total / TARGET_BYTES:.2f} of target (ledger {hourly['bytes_fleet_7d'] / 1e6:.1f} MB); "
            f"fits with SIGNAL_LEDGER_RETENTION_S <= {fits_hourly:.0f} h",
            f"<= {TARGET_BYTES / 1e6:.0f} MB",
            total <= TARGET_BYTES,
        )
    )
    total_min = typ["bytes_fleet_7d"] + minute["bytes_fleet_7d"]
    fits_h = room / (minute["bytes_fleet_7d"] / (DAYS * 24))
    out.append(
        (
            "  the same at 1 object/minute (60 s flush, steady traffic)",
            f"{TARGET_BYTES / 1e6:.0f} MB",
            f"{total_min / 1e6:,.0f} MB",
            f"{total_min / TARGET_BYTES:.1f}x target; fits with SIGNAL_LEDGER_RETENTION_S <= {fits_h:.1f} h",
            f"<= {TARGET_BYTES / 1e6:.0f} MB",
            total_min <= TARGET_BYTES,
        )
    )
    return out
