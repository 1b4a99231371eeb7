"""Worker and beat logs: one JSON object per line, ids and codes as fields, and never a credential."""

from __future__ import annotations

import uuid

import orjson

from tests.support.fleet import make_events, read_objects
from tests.support.processes import wait_until
from tests.support.s3_fixtures import s3_client
from workers.store import buffer

WRONG_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzWRONGKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEJr//////////wEaDOjNBOGUSSESSIONTOKENEXAMPLEuKXe3AZ1m7r4xGb8ahSYNtWpZQcG"


def test_logs_are_json_lines_with_context_and_hold_no_secret(fleet, moto_iam, start_worker, start_beat):
    prefix = f"logs-{uuid.uuid4().hex[:8]}/"
    good = fleet.install(
        moto_iam.bucket,
        prefix=prefix,
        endpoint_url=moto_iam.endpoint,
        access_key_id=moto_iam.limited.access_key_id,
        secret_access_key=moto_iam.limited.secret_access_key,
    )
    wrong_secret = fleet.install(
        moto_iam.bucket,
        prefix=prefix,
        endpoint_url=moto_iam.endpoint,
        access_key_id=moto_iam.limited.access_key_id,
        secret_access_key=WRONG_SECRET,
    )
    bad_token = fleet.install(
        moto_iam.bucket,
        prefix=prefix,
        endpoint_url=moto_iam.endpoint,
        access_key_id=moto_iam.limited.access_key_id,
        secret_access_key=moto_iam.limited.secret_access_key,
        session_token=SESSION_TOKEN,
    )
    worker = start_worker()
    beat = start_beat()
    events = make_events(120)
    fleet.sender.ingest(good, events)
    fleet.sender.ingest(wrong_secret, make_events(10))
    fleet.sender.ingest(bad_token, make_events(7))
    fleet.wait_delivered(good, len(events))
    held = {}
    for iid, code in ((wrong_secret, "SignatureDoesNotMatch"), (bad_token, "InvalidToken")):
        [held[iid]] = wait_until(lambda iid=iid: buffer.held_batches(fleet.r, iid), 60, message=f"{code} was not held")
        assert held[iid]["error_code"] == code

    admin = s3_client(moto_iam.endpoint, moto_iam.admin.access_key_id, moto_iam.admin.secret_access_key)
    objects = read_objects(admin, moto_iam.bucket, prefix)

    def records() -> list[dict]:
        return [orjson.loads(line) for line in worker.log_text().splitlines()]  # every line is JSON

    def logged(message_start: str, **fields: object) -> list[dict]:
        return [
            r
            for r in records()
            if r["message"].startswith(message_start) and all(r.get(k) == v for k, v in fields.items())
        ]

    # a held batch's record is written right after its state: wait for it, not for time
    for iid in held:
        wait_until(lambda iid=iid: logged("held ", integration_id=iid), 10, message=lambda: worker.log_tail())
    for r in records():
        assert {"ts", "level", "logger", "message"} <= set(r), r
    delivered = logged("delivered ", integration_id=good)
    assert sorted(r["key"] for r in delivered) == sorted(objects)
    assert sum(r["events"] for r in delivered) == len(events)
    for r in delivered:
        assert r["level"] == "INFO" and r["logger"] == "workers.pipeline.upload"
        assert r["batch_id"] in r["key"] and r["task_name"] == "signal.upload" and r["task_id"]
        assert r["message"].startswith(f"delivered integration={good} batch={r['batch_id']}")
    for iid, events_held in ((wrong_secret, 10), (bad_token, 7)):
        [failure] = logged("held ", integration_id=iid)
        assert failure["level"] == "ERROR" and failure["code"] == held[iid]["error_code"]
        assert failure["batch_id"] == held[iid]["batch_id"] and failure["events"] == events_held
        assert failure["key"] == held[iid]["key"]
    assert logged("", logger="celery.worker")  # the start-up banner, as one record

    secrets = [
        moto_iam.limited.access_key_id,
        moto_iam.limited.secret_access_key,
        WRONG_SECRET,
        SESSION_TOKEN,
        moto_iam.admin.access_key_id,
        moto_iam.admin.secret_access_key,
    ]
    for process in (worker, beat):
        text = process.log_text()
        assert text, process.name
        for n, line in enumerate(text.splitlines(), 1):
            for secret in secrets:
                assert secret not in line, f"{process.name} line {n} holds a credential: {line[:200]}"
