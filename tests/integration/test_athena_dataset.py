"""The objects read as the Athena table would: a pyarrow dataset over S3, partitioned like the DDL's projection."""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.support.fleet import event_counts, make_events, read_objects, slices
from tests.support.s3_fixtures import arrow_dataset
from workers import clock
from workers.integrations import registry
from workers.sink import athena

PREFIX = "events/"
COLUMNS = ("event_id", "type", "received_at", "integration_id")


def test_every_event_reads_back_through_the_ddl_partitions(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket, prefix=PREFIX, batch_max_events=200)
    start_worker()
    start_beat()
    events = make_events(900)
    for batch in slices(events, 300):
        fleet.sender.ingest(iid, batch)
    fleet.wait_delivered(iid, len(events))
    objects = read_objects(fleet.s3, bucket)
    assert len(objects) >= 5 and set(event_counts(objects)) == {e["event_id"] for e in events}

    # the partition columns of the DDL, in its order, as the strings of the key (``09``, not 9)
    partitioning = ds.DirectoryPartitioning(pa.schema([(name, pa.string()) for name, *_ in athena.PARTITIONS]))
    dataset = arrow_dataset(fleet.endpoint, bucket, PREFIX, "default", COLUMNS, partitioning)

    seen: list[str] = []
    fragments = list(dataset.get_fragments())
    assert sorted(f.path for f in fragments) == sorted(f"{bucket}/{key}" for key in objects)
    for fragment in fragments:
        key = fragment.path.removeprefix(f"{bucket}/")
        parts = ds.get_partition_keys(fragment.partition_expression)
        assert [parts[name] for name, *_ in athena.PARTITIONS] == key.removeprefix(PREFIX).split("/")[:4], key
        rows = fragment.to_table(schema=dataset.schema).to_pylist()
        assert [r["event_id"] for r in rows] == [e["event_id"] for e in objects[key]], key
        for row in rows:
            assert row["integration_id"] == iid
            assert [row[name] for name, *_ in athena.PARTITIONS] == key.removeprefix(PREFIX).split("/")[:4]
            # received_at YYYY-MM-DDTHH:... falls in the partition's hour
            received = row["received_at"]
            assert (received[0:4], received[5:7], received[8:10], received[11:13]) == (
                row["year"],
                row["month"],
                row["day"],
                row["hour"],
            ), (key, row)
        seen += [r["event_id"] for r in rows]
    assert sorted(seen) == sorted(e["event_id"] for e in events)

    # a query the way Athena runs it: filter on the partition columns
    hour = fragments[0].path.removeprefix(f"{bucket}/{PREFIX}").split("/")[:4]
    filtered = dataset.to_table(
        columns=["event_id"],
        filter=(
            (ds.field("year") == hour[0])
            & (ds.field("month") == hour[1])
            & (ds.field("day") == hour[2])
            & (ds.field("hour") == hour[3])
        ),
    )
    in_hour = {
        e["event_id"] for key, evs in objects.items() if key.removeprefix(PREFIX).split("/")[:4] == hour for e in evs
    }
    assert set(filtered.column("event_id").to_pylist()) == in_hour


@pytest.mark.parametrize("variant", ["default", "parquet"])
def test_the_hive_date_layout_reads_back_through_its_ddl_projection(
    variant, fleet, make_bucket, start_worker, start_beat
):
    bucket = make_bucket()
    iid = fleet.install(bucket, prefix=PREFIX, variant=variant, batch_max_events=150, date_layout="hive")
    start_worker()
    start_beat()
    events = make_events(400)
    for batch in slices(events, 200):
        fleet.sender.ingest(iid, batch)
    fleet.wait_delivered(iid, len(events))
    objects = read_objects(fleet.s3, bucket)
    assert len(objects) >= 3 and set(event_counts(objects)) == {e["event_id"] for e in events}

    # every key is the DDL's storage.location.template with the projected dt and hr filled in
    integ = registry.get(fleet.r, iid)
    ddl = athena.athena_ddl(iid, integ.config, variant=variant)
    template = re.search(r"'storage\.location\.template'='([^']+)'", ddl).group(1)
    date_range = re.search(r"'projection\.dt\.range'='(\d{4}-\d{2}-\d{2}),NOW\+1DAYS'", ddl).group(1)
    for key, evs in objects.items():
        found = re.fullmatch(rf"{PREFIX}dt=(\d{{4}}-\d{{2}}-\d{{2}})/hr=(\d{{2}})/[0-9a-f-]{{36}}\.[a-z.]+", key)
        assert found is not None, key
        dt, hr = found.groups()
        assert date_range <= dt <= clock.iso(clock.now())[:10] and 0 <= int(hr) <= 23
        folder = template.replace("${dt}", dt).replace("${hr}", hr)
        assert f"s3://{bucket}/{key}".startswith(folder) and "/" not in f"s3://{bucket}/{key}"[len(folder) :]
        assert {e["received_at"][:13] for e in evs} == {f"{dt}T{hr}"}, key

    # the objects as a dataset partitioned the Hive way (what Spark, Glue and MSCK REPAIR read)
    partitioning = ds.HivePartitioning(pa.schema([(name, pa.string()) for name in athena.partition_names("hive")]))
    dataset = arrow_dataset(fleet.endpoint, bucket, PREFIX, variant, ("event_id", "integration_id"), partitioning)
    table = dataset.to_table()
    assert sorted(table.column("event_id").to_pylist()) == sorted(e["event_id"] for e in events)
    assert set(table.column("integration_id").to_pylist()) == {iid}
    by_event = {e["event_id"]: e for evs in objects.values() for e in evs}
    for row in table.to_pylist():
        assert by_event[row["event_id"]]["received_at"][:13] == f"{row['dt']}T{row['hr']}"
