"""End to end on real processes: signal.ingest -> Redis buffers -> beat flush -> gzipped NDJSON objects in S3."""

from __future__ import annotations

import gzip
import re
import uuid

import pytest

from tests.support.fleet import duplicates, event_counts, make_events, read_objects, slices
from tests.support.processes import wait_until
from workers.integrations import status
from workers.store import buffer, keys

KEY_PATTERN = re.compile(
    r"^events/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.json\.gz$"
)


@pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)
def test_events_land_once_in_hourly_gzipped_ndjson_objects(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(
        bucket,
        storage_class="STANDARD_IA",
        server_side_encryption="aws:kms",
        kms_key_id="arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    )
    start_worker()
    start_beat()
    events = make_events(2000)
    bad = [
        {"type": "explode", "user_id": "u"},
        {"type": "track", "user_id": "u"},
        "not an object",
        {"type": "page", "anonymous_id": "a", "timestamp": "yesterday"},
    ]
    for batch in slices(events, 500):
        fleet.sender.ingest(iid, batch[:250] + bad + batch[250:])
    fleet.wait_delivered(iid, len(events))

    objects = read_objects(fleet.s3, bucket)
    assert objects, "no object landed"
    counts = event_counts(objects)
    assert set(counts) == {e["event_id"] for e in events}
    assert duplicates(objects) == {}
    for key, lines in objects.items():
        m = KEY_PATTERN.match(key)
        assert m, key
        hour = "".join(m.groups())
        for e in lines:
            assert e["integration_id"] == iid
            assert e["received_at"].replace("-", "").replace("T", "").startswith(hour[:8] + hour[8:]), (key, e)
        head = fleet.s3.head_object(Bucket=bucket, Key=key)
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"].endswith("1234abcd-12ab-34cd-56ef-1234567890ab")
        assert head["ContentType"] == "application/x-ndjson"

    stats = fleet.stats(iid)
    assert stats["rejected:invalid_type"] == 4
    assert stats["rejected:missing_event"] == 4
    assert stats["rejected:not_an_object"] == 4
    assert stats["rejected:invalid_timestamp"] == 4
    assert stats["delivered_events"] == 2000 and stats["buffered_events"] == 0
    assert fleet.r.llen(keys.rejections(iid)) == 16

    live = status.live_events(fleet.r, iid, limit=100)
    assert len(live) == 100
    for view in live:
        assert view["state"] == "delivered", view
        assert view["event_id"] in {e["event_id"] for e in objects[view["object_key"]]}


def test_a_full_buffer_is_flushed_without_waiting_for_beat(fleet, make_bucket, start_worker):
    bucket = make_bucket()
    iid = fleet.install(bucket, batch_max_events=100, flush_interval_s=3600)
    start_worker()  # no beat running
    events = make_events(250)
    fleet.sender.ingest(iid, events)
    wait_until(lambda: len(read_objects(fleet.s3, bucket)) == 2, 30, message="two full batches did not land")
    objects = read_objects(fleet.s3, bucket)
    assert sorted(len(v) for v in objects.values()) == [100, 100]
    assert fleet.stats(iid)["buffered_events"] == 50


def test_batch_max_bytes_bounds_every_object(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket, batch_max_bytes=20_000)
    start_worker()
    start_beat()
    events = make_events(300)
    fleet.sender.ingest(iid, events)
    fleet.wait_delivered(iid, 300)
    objects = read_objects(fleet.s3, bucket)
    assert len(objects) > 1
    for key, lines in objects.items():
        body = gzip.decompress(fleet.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        assert len(body) - len(lines) <= 20_000, key  # the lines, without their newlines
    assert set(event_counts(objects)) == {e["event_id"] for e in events}


def test_unknown_or_disabled_integration_buffers_nothing(fleet, make_bucket, start_worker):
    from workers.integrations import registry

    bucket = make_bucket()
    iid = fleet.install(bucket)
    registry.set_enabled(fleet.r, iid, False)
    w = start_worker()
    fleet.sender.ingest(iid, make_events(10))
    unknown = str(uuid.uuid4())
    fleet.sender.ingest(unknown, make_events(10))
    wait_until(
        lambda: "is disabled" in w.log_text() and "is not installed" in w.log_text(),
        30,
        message=lambda: w.log_text()[-2000:],
    )
    assert buffer.open_buffers(fleet.r, [iid, unknown]) == {}
    assert fleet.stats(iid).get("ingested_events", 0) == 0


@pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)
def test_a_transient_failure_retries_the_same_batch_to_the_same_key(
    proxied, fault_proxy, make_bucket, start_worker, start_beat
):
    from tests.support.faultproxy import Fault, fail_first

    fleet = proxied
    bucket = make_bucket()
    iid = fleet.install(bucket)
    # botocore tries twice per upload attempt: fail 11 PUTs -> five retries of our own. On RabbitMQ each retry goes
    # through native delayed delivery: its x-death headers must not make the broker drop it as a dead-letter cycle,
    # and its routing key must not grow with every retry past AMQP's 255 bytes (the fourth retry would fail).
    fault_proxy.set_plan(fail_first(11, Fault.error(503, "SlowDown", "Please reduce your request rate."), method="PUT"))
    worker = start_worker()
    start_beat()
    events = make_events(40)
    fleet.sender.ingest(iid, events)
    fleet.wait_delivered(iid, 40, timeout_s=60)
    objects = read_objects(fleet.s3, bucket)
    assert len(objects) == 1
    assert set(event_counts(objects)) == {e["event_id"] for e in events}
    stats = fleet.stats(iid)
    assert stats["retries"] == 5 and stats["failures:SlowDown"] == 5
    assert fault_proxy.faults == 11
    # every retry arrived as the retried message itself, not as the sweep's rescue (a new message) a lease later
    received = re.findall(r"Task signal\.upload\[([0-9a-f-]+)\] received", worker.log_text())
    assert len(received) == 6 and len(set(received)) == 1, received


def test_a_message_that_cannot_be_ingested_is_counted_visibly(fleet, make_bucket, start_worker):
    bucket = make_bucket()
    iid = fleet.install(bucket)
    w = start_worker()
    task_id = str(uuid.uuid4())
    fleet.sender.app.send_task("signal.ingest", args=[iid, {"type": "track"}], queue="ingest", task_id=task_id)
    wait_until(lambda: fleet.stats(iid).get("rejected:ingest_failed") == 1, 30, message=lambda: w.log_text()[-2000:])
    st = status.integration_status(fleet.r, iid)
    assert st["rejected_events"] == {"ingest_failed": 1}
    assert buffer.open_buffers(fleet.r, [iid]) == {}
