"""The Parquet variant end to end on real processes: signal.ingest -> Redis -> beat flush -> .parquet objects in S3,
read back with pyarrow row by row."""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tests.support.fleet import duplicates, event_counts, make_events, parquet_rows, read_objects, slices
from tests.support.processes import wait_until
from tests.support.s3_fixtures import arrow_s3
from workers.integrations import status
from workers.sink import athena, parquet
from workers.store import keys

KEY_PATTERN = re.compile(
    r"^events/(\d{4})/(\d{2})/(\d{2})/(\d{2})/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
    r"\.parquet$"
)
MiB = 1024 * 1024


def expected_row(event: dict[str, Any], iid: str) -> dict[str, Any]:
    """The row an input event must become (received_at is stamped by ingest and checked separately)."""
    return {
        **{name: event.get(name) for name in parquet.STRING_COLUMNS + ("source_id",)},
        "timestamp": datetime.fromisoformat(event["timestamp"]) if "timestamp" in event else None,
        "sent_at": None,
        "context": event.get("context"),
        "properties": event.get("properties"),
        "traits": event.get("traits"),
        "integration_id": iid,
        "extra": {k: v for k, v in event.items() if k not in parquet.ENVELOPE_COLUMNS} or None,
    }


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "received_at"}
    for name in (*parquet.JSON_COLUMNS, "extra"):
        out[name] = None if row[name] is None else orjson.loads(row[name])
    return out


def test_parquet_objects_hold_every_event_once_row_by_row(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket, variant="parquet", storage_class="STANDARD_IA", server_side_encryption="AES256")
    start_worker()
    start_beat()
    events = make_events(1_500)
    for i, e in enumerate(events):
        if i % 4 == 0:
            e["campaign_code"] = f"c-{i}"  # not in the envelope: must survive in extra
        if i % 3 == 2:
            e["traits"] = {"plan": "pro", "tags": ["a", None, 1.5]}
    bad = [{"type": "explode", "user_id": "u"}, "not an object"]
    for batch in slices(events, 500):
        fleet.sender.ingest(iid, batch[:100] + bad + batch[100:])
    fleet.wait_delivered(iid, len(events))

    by_id = {e["event_id"]: e for e in events}
    seen: list[str] = []
    listed = fleet.s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert listed
    for obj in listed:
        key = obj["Key"]
        match = KEY_PATTERN.match(key)
        assert match, key
        head = fleet.s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "application/vnd.apache.parquet"
        assert head["StorageClass"] == "STANDARD_IA" and head["ServerSideEncryption"] == "AES256"
        body = fleet.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        file = pq.ParquetFile(io.BytesIO(body))
        assert file.schema_arrow.equals(parquet.SCHEMA)
        assert file.metadata.row_group(0).column(0).compression == "ZSTD"
        for row in parquet_rows(body):
            assert comparable(row) == expected_row(by_id[row["event_id"]], iid)
            received = row["received_at"]
            assert received.tzinfo is not None and received.strftime("%Y%m%d%H") == "".join(match.groups())
            seen.append(row["event_id"])
    assert sorted(seen) == sorted(by_id)  # every event, exactly once

    stats = fleet.stats(iid)
    assert stats["delivered_events"] == len(events) and stats["buffered_events"] == 0
    assert stats["rejected:invalid_type"] == 3 and stats["rejected:not_an_object"] == 3
    assert stats["delivered_bytes"] == sum(obj["Size"] for obj in listed)
    live = status.live_events(fleet.r, iid, limit=20)
    assert live and all(v["state"] == "delivered" and v["object_key"].endswith(".parquet") for v in live)


def test_a_large_parquet_batch_is_one_multipart_object_in_bounded_row_groups(
    fleet, make_bucket, start_worker, start_beat
):
    bucket = make_bucket()
    iid = fleet.install(
        bucket, variant="parquet", batch_max_events=1_000_000, batch_max_bytes=1024 * MiB, buffer_max_bytes=2048 * MiB
    )
    part = str(5 * MiB)
    start_worker(
        env={
            "SIGNAL_MULTIPART_THRESHOLD_BYTES": part,
            "SIGNAL_MULTIPART_PART_BYTES": part,
            "SIGNAL_UPLOAD_TIMEOUT_S": "60",
        }
    )  # room for a loaded machine; the upload takes seconds
    total = 130_000
    received_at = datetime.now(UTC).replace(minute=30, second=0, microsecond=0).isoformat().replace("+00:00", "Z")
    events = make_events(total)
    for e in events:
        e["received_at"] = received_at  # one hour: one buffer, one batch
        e["properties"]["token"] = uuid.uuid4().hex + uuid.uuid4().hex  # incompressible: the object passes 5 MiB
    for batch in slices(events, 500):
        fleet.sender.ingest(iid, batch)
    wait_until(
        lambda: fleet.stats(iid).get("ingested_events", 0) >= total, 180, message=lambda: f"ingested {fleet.stats(iid)}"
    )
    start_beat()  # everything is buffered: the first tick seals it into one batch
    fleet.wait_delivered(iid, total, timeout_s=180)

    (obj,) = fleet.s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert KEY_PATTERN.match(obj["Key"]) and obj["Size"] > 5 * MiB
    assert "-" in fleet.s3.head_object(Bucket=bucket, Key=obj["Key"])["ETag"]  # multipart: "<md5>-<parts>"
    body = fleet.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    file = pq.ParquetFile(io.BytesIO(body))
    sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    assert len(sizes) >= 2 and max(sizes) <= parquet.ROW_GROUP_EVENTS + 10_000 and sum(sizes) == total
    rows = file.read().to_pylist()
    by_id = {e["event_id"]: e for e in events}
    assert sorted(row["event_id"] for row in rows) == sorted(by_id)  # each event exactly once
    for row in rows:
        assert comparable(row) == expected_row(by_id[row["event_id"]], iid)
        assert row["received_at"] == datetime.fromisoformat(received_at)
    # two worker processes ingest messages concurrently; each message's events stay together, in order
    positions = {row["event_id"]: i for i, row in enumerate(rows)}
    for message in slices(events, 500):
        at = [positions[e["event_id"]] for e in message]
        assert at == list(range(at[0], at[0] + len(message)))


def test_a_retried_parquet_batch_lands_once_under_its_key(proxied, fault_proxy, make_bucket, start_worker, start_beat):
    from tests.support.faultproxy import Fault, fail_first

    fleet = proxied
    bucket = make_bucket()
    iid = fleet.install(bucket, variant="parquet")
    fault_proxy.set_plan(fail_first(5, Fault.error(503, "SlowDown", "Please reduce your request rate."), method="PUT"))
    start_worker()
    start_beat()
    events = make_events(40)
    fleet.sender.ingest(iid, events)
    fleet.wait_delivered(iid, 40, timeout_s=60)
    objects = read_objects(fleet.s3, bucket)
    assert len(objects) == 1 and next(iter(objects)).endswith(".parquet")
    assert set(event_counts(objects)) == {e["event_id"] for e in events} and duplicates(objects) == {}
    assert fleet.stats(iid)["retries"] >= 2 and fault_proxy.faults == 5
    puts = {seen.target.split("?")[0] for seen in fault_proxy.seen if seen.method == "PUT"}
    assert len(puts) == 1  # every attempt wrote the same key


def test_parquet_objects_read_back_through_the_ddl_partitions(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket, variant="parquet", batch_max_events=200)
    start_worker()
    start_beat()
    events = make_events(700)
    for batch in slices(events, 350):
        fleet.sender.ingest(iid, batch)
    fleet.wait_delivered(iid, len(events))
    objects = read_objects(fleet.s3, bucket)
    assert len(objects) >= 4

    s3 = arrow_s3(fleet.endpoint)
    partitioning = ds.DirectoryPartitioning(pa.schema([(name, pa.string()) for name, *_ in athena.PARTITIONS]))
    dataset = ds.dataset(f"{bucket}/events", filesystem=s3, format="parquet", partitioning=partitioning)
    # the table's columns are the DDL's, in its order, followed by the partition columns
    assert dataset.schema.names == [name for name, _ in athena.PARQUET_COLUMNS] + [n for n, *_ in athena.PARTITIONS]
    table = dataset.to_table()
    assert sorted(table.column("event_id").to_pylist()) == sorted(e["event_id"] for e in events)
    for row in table.to_pylist():
        assert row["received_at"].strftime("%Y/%m/%d/%H") == "/".join(
            (row["year"], row["month"], row["day"], row["hour"])
        )
    assert fleet.r.llen(keys.rejections(iid)) == 0
