"""Failure paths end to end, on real processes: every accepted event lands in exactly one object, or is visibly held
in the dead-letter store until the user fixes the config and replays it.

Permanent S3 errors come from a real S3 API that checks IAM (moto in IAM-auth mode); wrong regions, throttling and
refusals come from the fault proxy in front of moto. Each case drives the fleet (celery worker + beat) into the
failure, inspects what the user sees through the ``signal-s3`` console script, fixes the cause, replays, and reads
every event back from the bucket.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.faultproxy import Fault
from tests.support.fleet import event_counts, lines_of, make_events, read_objects
from tests.support.processes import REPO_ROOT, ManagedProcess, RedisServer, venv_command, wait_until
from tests.support.s3_fixtures import s3_client
from workers.integrations import registry
from workers.store import buffer, keys

# The Troubleshooting table of the destination's user documentation, verbatim.
SEED_HINTS = {
    "Events not appearing in S3": (
        "Verify the bucket name, region, and prefix are correct. Check that the bucket exists."
    ),
    "AccessDenied": "The IAM user lacks s3:PutObject permission on the bucket. Update the IAM policy.",
    "NoSuchBucket": (
        "The bucket does not exist. Verify the bucket name (names are case-sensitive and globally unique)."
    ),
    "InvalidAccessKeyId": "The access key ID is incorrect or the IAM user has been deleted. Verify credentials.",
    "SignatureDoesNotMatch": (
        "The secret access key does not match the access key ID. Check it for a typo or stray spaces and paste it "
        "again; regenerate the key pair only if the secret is lost."
    ),
    "Wrong region error": (
        "S3 bucket region must match the region config field. Check the bucket\u2019s actual region in the S3 console."
    ),
}

HELD_TIMEOUT_S = 30.0


def random_secret() -> str:
    """A fresh 40-character secret access key."""
    return base64.b64encode(os.urandom(30)).decode()


def random_session_token() -> str:
    """A fresh STS-like session token (a long base64 run)."""
    return "IQoJb3JpZ2luX2VjE" + base64.b64encode(os.urandom(180)).decode()


def unique_prefix(label: str) -> str:
    return f"{label.lower()}-{uuid.uuid4().hex[:8]}/"


# -- what the user sees: the console script ---------------------------------------------------------------------


@dataclass(frozen=True)
class CliRun:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """``signal-s3`` run as a subprocess with the fleet's environment as it is at call time."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.runs: list[CliRun] = []

    def __call__(self, *args: str, expect: int | None = 0) -> CliRun:
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        done = subprocess.run(
            [*venv_command("signal-s3"), *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
        )
        run = CliRun(tuple(args), done.returncode, done.stdout, done.stderr)
        self.runs.append(run)
        if expect is not None:
            assert run.code == expect, f"signal-s3 {' '.join(args)} exited {run.code}:\n{run.out}\n{run.err}"
        return run


@pytest.fixture
def cli(fleet: Any) -> Cli:
    return Cli(fleet.env)


# -- secrets: every log and every CLI output of this module is checked ----------------------------------------------


@dataclass
class Exposure:
    """Secrets that were configured, and every text the fleet and the CLI wrote while they were."""

    secrets: set[str] = field(default_factory=set)
    logs: list[Path] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def merge(self, other: Exposure) -> None:
        self.secrets |= other.secrets
        self.logs += other.logs
        self.outputs += other.outputs

    def leaks(self) -> list[str]:
        """Every text showing any ``LEAK_CHARS`` consecutive characters of a secret (a cut-off secret still leaks)."""
        texts = [(str(path), path.read_text(errors="replace")) for path in self.logs] + self.outputs
        found = []
        for where, text in texts:
            shown = windows(text)
            found += [
                f"{where} shows part of the secret ending in {s[-4:]}"
                for s in sorted(self.secrets)
                if shown & windows(s)
            ]
        return found


LEAK_CHARS = 12  # redaction shows the last 4 characters; any 12 in a row is a leak


def windows(text: str) -> set[str]:
    return {text[i : i + LEAK_CHARS] for i in range(len(text) - LEAK_CHARS + 1)}


SEEN = Exposure()  # everything configured and written by the tests of this module so far


def assert_no_secrets(secrets: Iterable[str], processes: Iterable[ManagedProcess], cli: Cli) -> None:
    mine = Exposure(
        {s for s in secrets if s},
        [p.log_path for p in processes],
        [(f"signal-s3 {' '.join(run.args)}", run.out + run.err) for run in cli.runs],
    )
    assert mine.logs and mine.outputs, "nothing was checked"
    SEEN.merge(mine)
    assert mine.leaks() == []


# -- the dead-letter store, read straight from Redis ----------------------------------------------------------------


def held_events(r: Any, iid: str) -> int:
    return sum(int(b.get("events", 0)) for b in buffer.held_batches(r, iid))


def held_lines(r: Any, iid: str) -> list[bytes]:
    return [
        line for b in buffer.held_batches(r, iid) for line in lines_of(r.lrange(keys.batch(iid, b["batch_id"]), 0, -1))
    ]


def wait_held(fleet: Any, iid: str, events: int, timeout_s: float = HELD_TIMEOUT_S) -> list[dict[str, str]]:
    """Wait until ``events`` events are held; returns the held batches' metadata."""
    wait_until(
        lambda: held_events(fleet.r, iid) >= events,
        timeout_s,
        message=lambda: (
            f"held {buffer.held_batches(fleet.r, iid)}, pending {buffer.pending_batches(fleet.r, iid)}, "
            f"stats {fleet.stats(iid)}"
        ),
    )
    return buffer.held_batches(fleet.r, iid)


def assert_held_intact(fleet: Any, iid: str, events: list[dict], held: list[dict[str, str]]) -> None:
    """Every sent event is in a held batch, once; nothing is still retrying or open."""
    lines = held_lines(fleet.r, iid)
    assert len(lines) == len(events)
    assert sum(int(b["events"]) for b in held) == len(events)
    assert Counter(orjson.loads(line)["event_id"] for line in lines) == Counter(e["event_id"] for e in events)
    assert buffer.pending_batches(fleet.r, iid) == []
    assert buffer.open_buffers(fleet.r, [iid]) == {}


def assert_user_sees(cli: Cli, iid: str, held: list[dict[str, str]], events: int, code: str, hint: str) -> list[dict]:
    """``dead-letter list`` and ``status`` show the held batches with their code and hint."""
    listed = cli("dead-letter", "list", iid).json()
    assert {b["batch_id"] for b in listed} == {b["batch_id"] for b in held}
    assert sum(b["events"] for b in listed) == events
    for b in listed:
        assert b["code"] == code
        assert b["hint"] == hint
        assert b["message"]
        assert b["object_key"]
    st = cli("status", iid).json()
    assert st["last_error"]["code"] == code
    assert st["last_error"]["hint"] == hint
    assert st["last_error"]["permanent"] is True
    assert st["dead_letter_batches"] == len(held)
    assert st["dead_letter_events"] == events
    assert st["delivered_events"] == 0
    return listed


def replay_exactly_once(
    fleet: Any, cli: Cli, iid: str, events: list[dict], read_back: Callable[[], dict[str, list[dict]]]
) -> None:
    """Replay the held batches; every event then lands once and the dead-letter store is empty."""
    held_ids = {b["batch_id"] for b in buffer.held_batches(fleet.r, iid)}
    report = cli("dead-letter", "replay", iid).json()
    assert report["still_failing"] == []
    # the fleet's sweep may pick a released batch up first: then the CLI finds it already delivered
    assert set(report["delivered"]) | set(report["already_delivered"]) == held_ids
    fleet.wait_delivered(iid, len(events), timeout_s=30)
    objects = read_back()
    assert event_counts(objects) == Counter({e["event_id"]: 1 for e in events})
    assert buffer.held_batches(fleet.r, iid) == []
    assert cli("dead-letter", "list", iid).json() == []
    st = cli("status", iid).json()
    assert st["dead_letter_batches"] == 0
    assert st["delivered_events"] == len(events)
    assert st["buffered_events"] == 0


def install_secret(fleet: Any, iid: str) -> str:
    return registry.get(fleet.r, iid).config.secret_access_key.get_secret_value()


def config_file(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / f"config-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(config))
    return str(path)


def update_config(cli: Cli, iid: str, tmp_path: Path, config: dict[str, Any]) -> None:
    shown = cli("update", iid, "--file", config_file(tmp_path, config)).json()
    assert shown["config"]["bucket"] == config["bucket"]
    assert shown["config"]["secret_access_key"] == "****" + config["secret_access_key"][-4:]


# -- 1. permanent errors from an S3 API that checks IAM -------------------------------------------------------------


def _iam_case(moto_iam: Any, code: str) -> dict[str, str]:
    limited, admin = moto_iam.limited, moto_iam.admin
    return {
        "SignatureDoesNotMatch": {
            "bucket": moto_iam.bucket, "access_key_id": limited.access_key_id, "secret_access_key": random_secret(),
        },
        "InvalidAccessKeyId": {
            "bucket": moto_iam.bucket, "access_key_id": "AKIA" + uuid.uuid4().hex[:16].upper(),
            "secret_access_key": random_secret(),
        },
        "AccessDenied": {
            "bucket": moto_iam.other_bucket, "access_key_id": limited.access_key_id,
            "secret_access_key": limited.secret_access_key,
        },
        "NoSuchBucket": {
            "bucket": f"signal-missing-{uuid.uuid4().hex[:12]}", "access_key_id": admin.access_key_id,
            "secret_access_key": admin.secret_access_key,
        },
    }[code]  # fmt: skip


@pytest.mark.parametrize("code", ["SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "NoSuchBucket"])
def test_a_permanent_s3_error_holds_the_batch_until_the_config_is_fixed_and_replayed(
    code, fleet, moto_iam, cli, start_worker, start_beat, monkeypatch, tmp_path
):
    fleet.env["AWS_ENDPOINT_URL_S3"] = moto_iam.endpoint
    fleet.endpoint = moto_iam.endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_iam.endpoint)
    admin = s3_client(moto_iam.endpoint, moto_iam.admin.access_key_id, moto_iam.admin.secret_access_key)
    prefix = unique_prefix(code)
    wrong = _iam_case(moto_iam, code)
    iid = fleet.install(
        wrong["bucket"],
        access_key_id=wrong["access_key_id"],
        secret_access_key=wrong["secret_access_key"],
        prefix=prefix,
    )
    processes = [start_worker(), start_beat()]
    events = make_events(120, run=f"iam-{uuid.uuid4().hex[:8]}")
    fleet.sender.ingest(iid, events)

    held = wait_held(fleet, iid, len(events))
    assert_held_intact(fleet, iid, events, held)
    for b in held:
        assert b["error_code"] == code
        assert int(b["attempts"]) == 1, b  # permanent: never retried
    stats = fleet.stats(iid)
    assert stats.get("retries", 0) == 0
    assert stats[f"failures:{code}"] == len(held)
    assert read_objects(admin, moto_iam.bucket, prefix) == {}
    assert_user_sees(cli, iid, held, len(events), code, SEED_HINTS[code])

    fixed = {
        "bucket": moto_iam.bucket,
        "region": "us-east-1",
        "prefix": prefix,
        "access_key_id": moto_iam.limited.access_key_id,
        "secret_access_key": moto_iam.limited.secret_access_key,
    }
    update_config(cli, iid, tmp_path, fixed)
    replay_exactly_once(fleet, cli, iid, events, lambda: read_objects(admin, moto_iam.bucket, prefix))
    assert fleet.stats(iid).get("retries", 0) == 0

    assert_no_secrets(
        [wrong["secret_access_key"], moto_iam.limited.secret_access_key, moto_iam.admin.secret_access_key],
        processes,
        cli,
    )


# -- 2. wrong region -------------------------------------------------------------------------------------------------

WRONG_REGION_FAULTS = {
    "PermanentRedirect": Fault.error(
        301,
        "PermanentRedirect",
        "The bucket you are attempting to access must be addressed using the specified endpoint. "
        "Please send all future requests to this endpoint.",
        headers={"x-amz-bucket-region": "eu-west-1"},
        fields={"Endpoint": "s3.eu-west-1.amazonaws.com"},
    ),
    "AuthorizationHeaderMalformed": Fault.error(
        400,
        "AuthorizationHeaderMalformed",
        "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'",
        fields={"Region": "eu-west-1"},
    ),
}


def on_put(fault: Fault) -> Callable[[str, str, Mapping[str, str]], Fault | None]:
    return lambda method, target, headers: fault if method == "PUT" else None


@pytest.mark.parametrize("code", sorted(WRONG_REGION_FAULTS))
def test_a_wrong_region_is_held_with_the_region_hint_and_replayed_once(
    code, proxied, fault_proxy, make_bucket, cli, start_worker, start_beat
):
    fleet = proxied
    bucket = make_bucket()
    prefix = unique_prefix(code)
    iid = fleet.install(bucket, prefix=prefix)
    fault_proxy.set_plan(on_put(WRONG_REGION_FAULTS[code]))
    processes = [start_worker(), start_beat()]
    events = make_events(80)
    fleet.sender.ingest(iid, events)

    held = wait_held(fleet, iid, len(events))
    assert_held_intact(fleet, iid, events, held)
    for b in held:
        assert b["error_code"] == code
        assert int(b["attempts"]) == 1, b
    assert fault_proxy.faults == len(held)  # one answer per batch: not followed, not retried at any layer
    assert fleet.stats(iid).get("retries", 0) == 0
    assert read_objects(fleet.s3, bucket, prefix) == {}
    assert_user_sees(cli, iid, held, len(events), code, SEED_HINTS["Wrong region error"])

    fault_proxy.set_plan(None)
    replay_exactly_once(fleet, cli, iid, events, lambda: read_objects(fleet.s3, bucket, prefix))
    assert_no_secrets([install_secret(fleet, iid)], processes, cli)


# -- 3. retries have an age limit: then the batch is held, never dropped --------------------------------------------


def test_a_batch_failing_past_the_retry_age_is_held_not_dropped(
    proxied, fault_proxy, make_bucket, cli, start_worker, start_beat
):
    fleet = proxied
    bucket = make_bucket()
    prefix = unique_prefix("slowdown")
    iid = fleet.install(bucket, prefix=prefix)
    fault_proxy.set_plan(on_put(Fault.error(503, "SlowDown", "Please reduce your request rate.")))
    processes = [start_worker(env={"SIGNAL_MAX_RETRY_AGE_S": "3"}), start_beat()]
    events = make_events(60)
    fleet.sender.ingest(iid, events)

    held = wait_held(fleet, iid, len(events))
    assert_held_intact(fleet, iid, events, held)
    for b in held:
        assert b["error_code"] == "SlowDown"
        assert int(b["attempts"]) >= 2, b  # it was retried first
        assert "still failing" in b["error_message"], b
        assert b["error_hint"] == SEED_HINTS["Events not appearing in S3"]
        assert int(b["last_failure_ms"]) - int(b["first_failure_ms"]) >= 3000, b
    stats = fleet.stats(iid)
    assert stats["retries"] >= 1
    assert stats["failures:SlowDown"] >= 2
    assert read_objects(fleet.s3, bucket, prefix) == {}
    listed = assert_user_sees(cli, iid, held, len(events), "SlowDown", SEED_HINTS["Events not appearing in S3"])
    assert all("still failing" in b["message"] and b["attempts"] >= 2 for b in listed)

    fault_proxy.set_plan(None)
    replay_exactly_once(fleet, cli, iid, events, lambda: read_objects(fleet.s3, bucket, prefix))
    assert_no_secrets([install_secret(fleet, iid)], processes, cli)


# -- 4. backpressure: held events count toward the buffer cap -------------------------------------------------------

CAP_BYTES = 20_000


def test_a_full_buffer_rejects_new_events_and_delivers_every_accepted_one_after_replay(
    proxied, fault_proxy, make_bucket, cli, start_worker, start_beat
):
    fleet = proxied
    bucket = make_bucket()
    prefix = unique_prefix("cap")
    iid = fleet.install(bucket, prefix=prefix, buffer_max_bytes=CAP_BYTES)
    fault_proxy.set_plan(on_put(Fault.error(403, "AccessDenied", "Access Denied")))
    processes = [start_worker(), start_beat()]
    run = uuid.uuid4().hex[:8]
    sent: list[dict] = []

    def send_round(n: int) -> tuple[int, int]:
        """Send ``n`` events, wait until each is accepted or rejected and every accepted one is held."""
        before = fleet.stats(iid)
        round_events = make_events(n, start=len(sent), run=run)
        sent.extend(round_events)
        fleet.sender.ingest(iid, round_events)

        def settled() -> bool:
            s = fleet.stats(iid)
            decided = s.get("ingested_events", 0) + s.get("rejected:buffer_full", 0)
            return decided == len(sent) and held_events(fleet.r, iid) == s.get("ingested_events", 0)

        wait_until(
            settled,
            HELD_TIMEOUT_S,
            message=lambda: (
                f"stats {fleet.stats(iid)}, held "
                f"{held_events(fleet.r, iid)}, pending {buffer.pending_batches(fleet.r, iid)}"
            ),
        )
        after = fleet.stats(iid)
        accepted = after.get("ingested_events", 0) - before.get("ingested_events", 0)
        rejected = after.get("rejected:buffer_full", 0) - before.get("rejected:buffer_full", 0)
        assert after["buffered_bytes"] <= CAP_BYTES
        return accepted, rejected

    rounds = 0
    while fleet.stats(iid).get("rejected:buffer_full", 0) == 0:
        rounds += 1
        assert rounds <= 15, f"no event was ever refused: {fleet.stats(iid)}"
        send_round(10)

    # accepted up to the cap, while held batches piled up
    stats = fleet.stats(iid)
    held = buffer.held_batches(fleet.r, iid)
    assert len(held) >= 2
    assert all(b["error_code"] == "AccessDenied" and int(b["attempts"]) == 1 for b in held)
    longest_line = max(len(line) for line in held_lines(fleet.r, iid))
    assert CAP_BYTES - stats["buffered_bytes"] < 2 * longest_line, "refused long before the cap"
    # the cap is filled by held events alone: nothing is open or in flight, yet new events are refused
    assert buffer.open_buffers(fleet.r, [iid]) == {} and buffer.pending_batches(fleet.r, iid) == []
    assert sum(int(b["bytes"]) for b in held) == stats["buffered_bytes"]
    accepted_more, refused_more = send_round(10)
    assert refused_more >= 1 and accepted_more + refused_more == 10

    stats = fleet.stats(iid)
    accepted, rejected = stats["ingested_events"], stats["rejected:buffer_full"]
    assert accepted + rejected == len(sent)
    assert held_events(fleet.r, iid) == accepted
    st = cli("status", iid).json()
    assert st["rejected_events"]["buffer_full"] == rejected
    assert st["dead_letter_events"] == accepted
    held_ids = Counter(orjson.loads(line)["event_id"] for line in held_lines(fleet.r, iid))
    assert max(held_ids.values()) == 1 and set(held_ids) <= {e["event_id"] for e in sent}

    fault_proxy.set_plan(None)
    accepted_events = [e for e in sent if e["event_id"] in held_ids]
    replay_exactly_once(fleet, cli, iid, accepted_events, lambda: read_objects(fleet.s3, bucket, prefix))
    delivered = event_counts(read_objects(fleet.s3, bucket, prefix))
    assert len(delivered) == accepted and len(sent) - len(delivered) == rejected  # none of the refused ones

    # the room is back: new events are accepted and delivered
    more = make_events(10, start=len(sent), run=run)
    fleet.sender.ingest(iid, more)
    fleet.wait_delivered(iid, accepted + len(more), timeout_s=30)
    delivered = event_counts(read_objects(fleet.s3, bucket, prefix))
    assert delivered == Counter({e["event_id"]: 1 for e in accepted_events + more})
    assert_no_secrets([install_secret(fleet, iid)], processes, cli)


# -- 5. Redis must not evict buffers ---------------------------------------------------------------------------------


def test_the_worker_warns_loudly_when_redis_may_evict_buffers(fleet_env, start_worker, tmp_path):
    quiet = start_worker()  # the test redis-server runs with Redis' default policy, noeviction
    assert "maxmemory-policy" not in quiet.log_text()

    with RedisServer(extra_args=["--maxmemory-policy", "allkeys-lru"], log_dir=tmp_path) as evicting:
        evicting.start()
        loud = start_worker(env={"SIGNAL_REDIS_URL": evicting.url})
        warnings = [line for line in loud.log_text().splitlines() if "maxmemory-policy" in line]
        assert warnings, loud.log_tail()
        assert "WARNING" in warnings[0] and "allkeys-lru" in warnings[0] and "noeviction" in warnings[0], warnings
        loud.stop()
    assert "maxmemory-policy" not in quiet.log_text()


# -- 6. secrets never leave the config ------------------------------------------------------------------------------


def test_no_secret_or_session_token_appears_in_any_log_or_cli_output(
    proxied, fault_proxy, make_bucket, cli, start_worker, start_beat, tmp_path
):
    fleet = proxied
    bucket = make_bucket()
    prefix = unique_prefix("token")
    old_secret, old_token = random_secret(), random_session_token()
    iid = fleet.install(bucket, prefix=prefix, secret_access_key=old_secret, session_token=old_token)
    # S3 echoes the expired token in its error document
    fault_proxy.set_plan(
        on_put(Fault.error(400, "ExpiredToken", "The provided token has expired.", fields={"Token-0": old_token}))
    )
    processes = [start_worker(), start_beat()]
    events = make_events(50)
    fleet.sender.ingest(iid, events)
    held = wait_held(fleet, iid, len(events))
    assert_held_intact(fleet, iid, events, held)
    listed = cli("dead-letter", "list", iid).json()
    assert {b["code"] for b in listed} == {"ExpiredToken"} and all(b["hint"] for b in listed)
    cli("status", iid)
    cli("show", iid)
    cli("list")

    new_secret, new_token = random_secret(), random_session_token()
    update_config(
        cli,
        iid,
        tmp_path,
        {
            "bucket": bucket,
            "region": "us-east-1",
            "prefix": prefix,
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": new_secret,
            "session_token": new_token,
        },
    )
    fault_proxy.set_plan(None)
    replay_exactly_once(fleet, cli, iid, events, lambda: read_objects(fleet.s3, bucket, prefix))
    cli("show", iid)

    assert_no_secrets([old_secret, old_token, new_secret, new_token], processes, cli)
    # and nothing configured by the earlier failure cases of this module leaked anywhere either
    assert {old_secret, new_token} <= SEEN.secrets
    assert SEEN.leaks() == []
