"""The iceberg variant end to end on real processes: signal.ingest -> Redis -> beat flush -> Parquet data files
committed to an Apache Iceberg table, on a SQL catalog (SQLite, PostgreSQL) and on Glue (moto), read back by
pyiceberg and by an independent reader (``tests.support.iceberg_reader``)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import iceberg_reader
from tests.support.fleet import make_events, slices
from workers.settings import get_settings
from workers.sink.iceberg import catalogs, commit
from workers.store import keys

DATA_KEY = re.compile(r"^events/data/(event=[^/]+/)?dt=\d{4}-\d{2}-\d{2}/hr=\d{2}/[0-9a-f-]{36}\.iceberg\.parquet$")


@pytest.fixture
def iceberg_fleet(fleet: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fleet with its SQLite catalog in this test's directory (workers and this process alike)."""
    path = str(tmp_path / "iceberg" / "catalog.db")
    # a killed committer's lock frees in seconds, as the upload's other limits do in these tests
    for name, value in (("SIGNAL_ICEBERG_SQLITE_PATH", path), ("SIGNAL_ICEBERG_LOCK_LEASE_S", "2")):
        fleet.env[name] = value
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    fleet.sqlite_uri = f"sqlite:///{path}"
    return fleet


def hours_back(events: list[dict[str, Any]], hours: int) -> None:
    """Spread events over the last ``hours`` hours by their own timestamp."""
    now = datetime.now(UTC)
    for i, e in enumerate(events):
        e["timestamp"] = (now - timedelta(hours=i % hours)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load(fleet: Any, iid: str) -> Any:
    from workers.integrations import registry

    cfg = registry.get(fleet.r, iid).config
    return catalogs.open_catalog(cfg, get_settings()).load_table((cfg.iceberg_namespace, cfg.iceberg_table))


def check_exactly_once(rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> None:
    counts = Counter(r["event_id"] for r in rows)
    doubled = {k: n for k, n in counts.items() if n > 1}
    missing = {e["event_id"] for e in events} - set(counts)
    assert not doubled and not missing, f"doubled {list(doubled)[:5]} missing {list(missing)[:5]}"
    assert len(rows) == len(events)


def test_sqlite_table_holds_every_event_once_partitioned_by_hour_and_event(
    iceberg_fleet, make_bucket, start_worker, start_beat
):
    fleet = iceberg_fleet
    bucket = make_bucket()
    iid = fleet.install(
        bucket, variant="iceberg", partition_time="timestamp", partition_fields=["event"], iceberg_table="web"
    )
    start_worker()
    start_beat()
    events = make_events(1_200)
    hours_back(events, 3)
    for batch in slices(events, 300):
        fleet.sender.ingest(iid, batch)
    fleet.wait_delivered(iid, len(events))

    table = load(fleet, iid)
    arrow = table.scan().to_arrow()
    check_exactly_once(arrow.to_pylist(), events)
    assert table.location() == f"s3://{bucket}/events"
    assert [f.name for f in table.spec().fields] == ["timestamp_hour", "p_event"]
    # every data file is one batch: one hour, one event name, its key under the table's data/ folder
    files = table.inspect.files().to_pylist()
    assert files
    for f in files:
        key = f["file_path"].removeprefix(f"s3://{bucket}/")
        assert DATA_KEY.match(key), key
        assert f["partition"]["p_event"] in ("order_completed", "page", "identify")
    assert len({f["partition"]["timestamp_hour"] for f in files}) == 3
    batch_ids = [s.summary.additional_properties.get(commit.BATCH_ID) for s in table.metadata.snapshots]
    assert all(batch_ids) and len(set(batch_ids)) == len(batch_ids) == len(files)

    # the independent reader: the catalog's row found with sqlite3, manifests read with fastavro
    location = iceberg_reader.sql_metadata_location(fleet.sqlite_uri, "signal", "web")
    meta = iceberg_reader.metadata(fleet.s3, location)
    rows = iceberg_reader.rows(fleet.s3, meta)
    check_exactly_once(rows, events)
    by_id = {e["event_id"]: e for e in events}
    for row in rows[:50]:
        sent = by_id[row["event_id"]]
        assert row["p_event"] == sent.get("event", sent["type"])
        assert row["timestamp"].isoformat(timespec="milliseconds").replace("+00:00", "Z") == sent["timestamp"]
    assert fleet.stats(iid)["delivered_events"] == len(events)


def small_batches_over_closed_hours(fleet: Any, bucket: str, **config: Any) -> tuple[str, list[dict[str, Any]]]:
    """An integration whose events lie 2 to 4 hours back (closed hours), delivered in many small batches."""
    iid = fleet.install(bucket, variant="iceberg", partition_time="timestamp", batch_max_events=50, **config)
    events = make_events(900)
    now = datetime.now(UTC)
    for i, e in enumerate(events):
        e["timestamp"] = (now - timedelta(hours=2 + i % 3)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return iid, events


def test_maintenance_compacts_closed_hours_expires_snapshots_and_removes_orphans(
    iceberg_fleet, make_bucket, start_worker, start_beat
):
    from workers.pipeline import tables
    from workers.sink import clients
    from workers.sink.iceberg import maintain

    fleet = iceberg_fleet
    bucket = make_bucket()
    iid, events = small_batches_over_closed_hours(fleet, bucket)
    start_worker()
    start_beat()
    for batch in slices(events, 150):
        fleet.sender.ingest(iid, batch)
    fleet.wait_delivered(iid, len(events))
    before = load(fleet, iid)
    files_before = before.inspect.files().to_pylist()
    assert len(files_before) >= 18  # 900 events, 50 per batch
    stray = "events/data/dt=2026-01-01/hr=00/left-by-a-crashed-flush.iceberg.parquet"
    fleet.s3.put_object(Bucket=bucket, Key=stray, Body=b"PAR1 not committed")

    report = tables.run_maintenance(fleet.r, iid, settings=get_settings())
    assert report["errors"] == []
    assert report["partitions_compacted"] == 3 and report["files_after"] == 3
    assert report["files_before"] == len(files_before) and report["rows_compacted"] == len(events)
    assert report["orphans_removed"] == 0  # the stray file is younger than SIGNAL_ICEBERG_ORPHAN_AGE_S
    after = load(fleet, iid)
    assert len(after.inspect.files().to_pylist()) == 3
    check_exactly_once(after.scan().to_arrow().to_pylist(), events)
    assert after.current_snapshot().summary.additional_properties[commit.MAINTENANCE] == "compaction"
    location = iceberg_reader.sql_metadata_location(fleet.sqlite_uri, "signal", "events")
    check_exactly_once(iceberg_reader.rows(fleet.s3, iceberg_reader.metadata(fleet.s3, location)), events)
    # time travel: the snapshot before compaction still reads every row from the files it had
    old = after.scan(snapshot_id=before.current_snapshot().snapshot_id).to_arrow()
    check_exactly_once(old.to_pylist(), events)

    # expiry with no retention, then orphans of any age: the replaced files and the stray one go, the table stays
    from workers.integrations import registry

    cfg = registry.get(fleet.r, iid).config
    catalog = catalogs.open_catalog(cfg, get_settings())

    def load_now() -> Any:
        return catalog.load_table(("signal", "events"))

    from contextlib import nullcontext

    rep = maintain.Report()
    maintain.expire(load_now, lambda: nullcontext(0), retention_days=0, report=rep)
    assert rep.snapshots_expired == len(after.metadata.snapshots) - 1  # every one but the current
    s3 = clients.client_for(cfg, settings=get_settings())
    maintain.remove_orphans(load_now, s3, orphan_age_s=0, report=rep)
    keys_left = {o["Key"] for o in fleet.s3.list_objects_v2(Bucket=bucket, Prefix="events/data/")["Contents"]}
    assert stray not in keys_left
    assert len(keys_left) == 3
    check_exactly_once(load_now().scan().to_arrow().to_pylist(), events)
    meta = iceberg_reader.metadata(fleet.s3, iceberg_reader.sql_metadata_location(fleet.sqlite_uri, "signal", "events"))
    check_exactly_once(iceberg_reader.rows(fleet.s3, meta), events)
    assert fleet.r.hget(keys.iceberg(iid), "maintenance")

    # a metadata file the table does not name: a commit of ours that lost its race is a leftover like any other; one
    # of another table at this location stops the removal before anything is deleted
    import json

    current = load_now().metadata_location.removeprefix(f"s3://{bucket}/")
    ours = str(load_now().metadata.table_uuid)
    assert maintain._table_uuid(fleet.s3, bucket, current) == ours  # read from the first bytes of a real file
    lost = "events/metadata/99999-lost-race.metadata.json"
    fleet.s3.put_object(Bucket=bucket, Key=lost, Body=json.dumps({"format-version": 2, "table-uuid": ours}).encode())
    maintain.remove_orphans(load_now, s3, orphan_age_s=0, report=rep)
    assert "Contents" not in fleet.s3.list_objects_v2(Bucket=bucket, Prefix=lost)
    another = "9b2e7d1c-0000-4000-8000-000000000000"
    fleet.s3.put_object(Bucket=bucket, Key=lost, Body=json.dumps({"table-uuid": another}).encode())
    fleet.s3.put_object(Bucket=bucket, Key=stray, Body=b"PAR1 not committed")
    with pytest.raises(maintain.ForeignWriter):
        maintain.remove_orphans(load_now, s3, orphan_age_s=0, report=rep)
    assert fleet.s3.list_objects_v2(Bucket=bucket, Prefix=stray)["KeyCount"] == 1  # nothing was removed
    check_exactly_once(load_now().scan().to_arrow().to_pylist(), events)


def test_beat_runs_maintenance_and_the_cli_shows_the_table(iceberg_fleet, make_bucket, start_worker, start_beat):
    import json
    import os
    import subprocess

    from tests.support.processes import venv_command

    fleet = iceberg_fleet
    bucket = make_bucket()
    iid, events = small_batches_over_closed_hours(fleet, bucket)
    start_worker()
    for batch in slices(events, 150):
        fleet.sender.ingest(iid, batch)
    start_beat(env={"SIGNAL_ICEBERG_MAINTENANCE_INTERVAL_S": "10"})
    fleet.wait_delivered(iid, len(events))
    from tests.support.processes import wait_until

    wait_until(lambda: fleet.r.hget(keys.iceberg(iid), "maintenance") is not None, 60, message="no maintenance ran")
    done = subprocess.run(
        [*venv_command("signal-s3"), "iceberg", "show", iid],
        env={**os.environ, **fleet.env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert view["catalog"] == "sql" and view["location"] == f"s3://{bucket}/events"
    assert view["snapshots"] and view["current_snapshot_id"] == view["snapshots"][0]["snapshot_id"]
    assert "iceberg_scan(" in view["queries"]["duckdb"] and view["last_maintenance"]["errors"] == []
    assert "wJalr" not in done.stdout and "wJalr" not in done.stderr
    check_exactly_once(load(fleet, iid).scan().to_arrow().to_pylist(), events)


def test_install_opens_the_table_or_names_the_field_to_change(iceberg_fleet, make_bucket, tmp_path):
    from workers.errors import ConfigError
    from workers.integrations import manage

    fleet = iceberg_fleet
    bucket = make_bucket()
    body = {
        "name": "lake",
        "variant": "iceberg",
        "config": {
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "prefix": "lake/",
            "endpoint_url": fleet.endpoint,
        },
    }
    integ = manage.install_integration(fleet.r, body, settings=get_settings())
    table = load(fleet, integ.id)  # created at install
    assert table.location() == f"s3://{bucket}/lake" and table.current_snapshot() is None

    def errors(config: dict[str, Any]) -> list[dict[str, str]]:
        with pytest.raises(ConfigError) as caught:
            manage.install_integration(
                fleet.r, {**body, "config": {**body["config"], **config}}, settings=get_settings()
            )
        return caught.value.errors

    # the same table name from another prefix: the table is elsewhere
    [e] = errors({"prefix": "other/"})
    assert e["field"] == "config.iceberg_table" and "exists at s3://" in e["message"]
    # another table at the same location: its maintenance would take the first one's files for leftovers
    [e] = errors({"iceberg_table": "second"})
    assert e["field"] == "config.iceberg_table" and "already holds an Iceberg table" in e["message"]
    # the same table with other partitioning
    [e] = errors({"partition_fields": ["event"]})
    assert e["field"] == "config.iceberg_table" and "p_event" in e["message"]
    # a SQLite file outside the fleet's catalog directory
    [e] = errors({"iceberg_catalog_uri": f"sqlite:///{tmp_path}/elsewhere.db"})
    assert e["field"] == "config.iceberg_catalog_uri" and "must be a file in" in e["message"]
    # a PostgreSQL server nobody listens on: unreachable, and its password never shown
    [e] = errors({"iceberg_catalog_uri": "postgresql://signal:hunter2secret@127.0.0.1:9/signal", "iceberg_table": "x"})
    assert e["field"] == "config.iceberg_catalog" and "hunter2secret" not in e["message"]
    assert "IcebergCatalogUnavailable" in e["message"] or "could not be opened" in e["message"]
    # Glue where nothing answers
    [e] = errors({"iceberg_catalog": "glue", "iceberg_catalog_uri": "http://127.0.0.1:9"})
    assert e["field"] == "config.iceberg_catalog"


def glue_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "glue",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )


def install_on_glue(fleet: Any, bucket: str, glue_endpoint: str, **config: Any) -> tuple[str, str]:
    """An iceberg integration whose table is in Glue (moto's, at ``glue_endpoint``), in a namespace of its own."""
    namespace = f"lake_{bucket.replace('-', '_')}"
    iid = fleet.install(
        bucket,
        variant="iceberg",
        iceberg_catalog="glue",
        iceberg_catalog_uri=glue_endpoint,
        iceberg_namespace=namespace,
        **config,
    )
    return iid, namespace


def test_glue_table_holds_every_event_once(iceberg_fleet, make_bucket, start_worker, start_beat):
    fleet = iceberg_fleet
    bucket = make_bucket()
    iid, namespace = install_on_glue(fleet, bucket, fleet.endpoint, partition_fields=["type"])
    start_worker()
    start_beat()
    events = make_events(900)
    for batch in slices(events, 300):
        fleet.sender.ingest(iid, batch)
    fleet.wait_delivered(iid, len(events))

    table = load(fleet, iid)
    check_exactly_once(table.scan().to_arrow().to_pylist(), events)
    assert [f.name for f in table.spec().fields] == ["received_at_hour", "p_type"]
    glue = glue_client(fleet.endpoint)
    found = glue.get_table(DatabaseName=namespace, Name="events")["Table"]
    assert found["Parameters"]["table_type"].upper() == "ICEBERG"
    meta = iceberg_reader.metadata(fleet.s3, iceberg_reader.glue_metadata_location(glue, namespace, "events"))
    rows = iceberg_reader.rows(fleet.s3, meta)
    check_exactly_once(rows, events)
    assert {r["p_type"] for r in rows} == {"track", "page", "identify"}


def test_workers_killed_while_committing_to_glue_and_faults_leave_every_event_once(
    iceberg_fleet, fault_proxy, make_bucket, start_worker, start_beat
):
    """Glue's UpdateTable (the commit) is applied, its answer held back, and the worker SIGKILLed meanwhile: the
    batch is delivered again by another worker, which finds it committed. S3 faults on a share of requests, Glue
    answers 500 to some table loads."""
    import threading
    import time

    from tests.support.faultproxy import Fault, random_faults

    fleet = iceberg_fleet
    fleet.env["AWS_ENDPOINT_URL_S3"] = fault_proxy.endpoint_url
    # moto's Glue applies UpdateTable whatever VersionId it is given, where Glue refuses a stale one (pyiceberg sends
    # it): a commit whose lock lease ran out under S3 faults would overwrite a newer one there. So here the lease
    # outlasts any live commit (the fleet's lock alone serialises them) and still frees a killed committer's lock.
    fleet.env["SIGNAL_ICEBERG_LOCK_LEASE_S"] = "10"
    bucket = make_bucket()
    iid, namespace = install_on_glue(fleet, bucket, fault_proxy.endpoint_url, batch_max_events=100)
    s3_faults = random_faults(rate=0.08, seed=7)
    held = [0]
    lock = threading.Lock()

    glue_errors, table_loads = [0], [0]

    def plan(method: str, target: str, headers: Any) -> Fault | None:
        operation = headers.get("X-Amz-Target") or headers.get("x-amz-target") or ""
        if operation.endswith("UpdateTable"):
            with lock:
                if held[0] < 3:
                    held[0] += 1
                    return Fault.delay_response(6.0)
            return None
        if operation.endswith("GetTable"):
            with lock:
                table_loads[0] += 1
                if table_loads[0] % 7 == 0 and glue_errors[0] < 4:  # a table load now and then fails
                    glue_errors[0] += 1
                    return Fault.error(500, "InternalServiceException", "Glue is having a moment.")
            return None
        if operation:
            return None  # other Glue calls pass
        return s3_faults(method, target, headers)

    fault_proxy.set_plan(plan)
    workers = [start_worker()]
    start_beat()
    events = make_events(1_500)
    for batch in slices(events, 250):
        fleet.sender.ingest(iid, batch)

    kills = 0
    deadline = time.monotonic() + 120
    while fleet.stats(iid).get("delivered_events", 0) < len(events) and time.monotonic() < deadline:
        delayed = sum(1 for s in list(fault_proxy.seen) if s.fault and s.fault.startswith("delay"))
        if delayed > kills:
            time.sleep(1.0)  # Glue has applied the update; its answer is still held back
            workers[-1].kill()
            kills += 1
            workers.append(start_worker())
        time.sleep(0.2)
    assert kills == held[0] >= 2, (kills, held)
    fleet.wait_delivered(iid, len(events), timeout_s=60)

    fault_proxy.set_plan(None)
    table = load(fleet, iid)
    check_exactly_once(table.scan().to_arrow().to_pylist(), events)
    batch_ids = [s.summary.additional_properties.get(commit.BATCH_ID) for s in table.metadata.snapshots]
    assert len(batch_ids) == len(set(batch_ids))
    glue = glue_client(fleet.endpoint)
    meta = iceberg_reader.metadata(fleet.s3, iceberg_reader.glue_metadata_location(glue, namespace, "events"))
    check_exactly_once(iceberg_reader.rows(fleet.s3, meta), events)
    assert fault_proxy.faults > 3 and glue_errors[0] >= 1


def test_postgresql_catalog_two_workers_commit_to_one_table_at_once(
    iceberg_fleet, postgres_server, make_bucket, start_worker, start_beat
):
    """A fleet on several machines: the catalog in PostgreSQL, two worker processes (two uploads each) committing
    small batches of two integrations into one table at the same moments: every commit lands, none twice."""
    from tests.support.postgres import PASSWORD

    fleet = iceberg_fleet
    bucket = make_bucket()
    common = {
        "iceberg_catalog_uri": postgres_server.url,
        "batch_max_events": 40,
        "iceberg_table": f"shared_{bucket.replace('-', '_')}",
    }
    first = fleet.install(bucket, variant="iceberg", **common)
    second = fleet.install(bucket, variant="iceberg", **common)  # the same table: the same bucket and prefix
    events_a, events_b = make_events(800), make_events(800)
    for batch_a, batch_b in zip(slices(events_a, 200), slices(events_b, 200), strict=True):
        fleet.sender.ingest(first, batch_a)
        fleet.sender.ingest(second, batch_b)
    logs = [start_worker(concurrency=2), start_worker(concurrency=2)]
    start_beat()
    fleet.wait_delivered(first, len(events_a))
    fleet.wait_delivered(second, len(events_b))

    table = load(fleet, first)
    rows = table.scan().to_arrow().to_pylist()
    check_exactly_once(rows, events_a + events_b)
    assert {r["integration_id"] for r in rows} == {first, second}
    appends = [s for s in table.metadata.snapshots if s.summary.additional_properties.get(commit.BATCH_ID)]
    assert len(appends) == 40  # 1,600 events, 40 per batch
    fences = [int(s.summary.additional_properties[commit.FENCE]) for s in appends]
    assert fences == sorted(fences) and len(set(fences)) == len(fences)  # one lock at a time, in order
    meta = iceberg_reader.metadata(
        fleet.s3,
        iceberg_reader.sql_metadata_location(postgres_server.url, "signal", common["iceberg_table"]),
    )
    check_exactly_once(iceberg_reader.rows(fleet.s3, meta), events_a + events_b)
    for worker in logs:
        assert PASSWORD not in worker.log_text()


def test_an_unreachable_catalog_is_retried_then_held_and_a_replay_after_the_fix_delivers_once(
    iceberg_fleet, postgres_server, make_bucket, start_worker, start_beat
):
    from tests.support.processes import wait_until
    from workers.integrations import manage, status
    from workers.pipeline import replay

    fleet = iceberg_fleet
    bucket = make_bucket()
    table_name = f"late_{bucket.replace('-', '_')}"
    dead_catalog = "postgresql://signal:not-this-one@127.0.0.1:9/signal"
    iid = fleet.install(bucket, variant="iceberg", iceberg_catalog_uri=dead_catalog, iceberg_table=table_name)
    start_worker(env={"SIGNAL_MAX_RETRY_AGE_S": "3"})
    start_beat()
    events = make_events(300)
    fleet.sender.ingest(iid, events)
    wait_until(
        lambda: status.integration_status(fleet.r, iid)["dead_letter_events"] == len(events),
        60,
        message=lambda: f"not held: {fleet.stats(iid)}",
    )
    [held] = status.dead_letter(fleet.r, iid)
    assert held["code"] == "IcebergCatalogUnavailable", held
    assert "not-this-one" not in str(held)
    assert fleet.stats(iid).get("failures:IcebergCatalogUnavailable", 0) >= 2  # retried before it was held

    manage.update_integration(
        fleet.r, iid, {"config": {"iceberg_catalog_uri": postgres_server.url}}, settings=get_settings()
    )
    report = replay.replay(fleet.r, iid, settings=get_settings())
    assert not report.failed, report.summary()
    fleet.wait_delivered(iid, len(events))
    check_exactly_once(load(fleet, iid).scan().to_arrow().to_pylist(), events)
