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
    fleet.env["SIGNAL_ICEBERG_SQLITE_PATH"] = path
    monkeypatch.setenv("SIGNAL_ICEBERG_SQLITE_PATH", path)
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
