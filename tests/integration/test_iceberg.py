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
