"""The iceberg variant's pure pieces: the table's shape, keys, the commit lock, the error classes, the policy, the
settings' rules, and what the console shows of a catalog."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest
from pydantic import SecretStr

from workers.classify import classify
from workers.errors import ConfigError, TransientError
from workers.events import partitions
from workers.integrations.config import parse_config
from workers.settings import Settings
from workers.sink import iam, object_keys, parquet
from workers.sink.iceberg import catalogs, commit, maintain, table
from workers.store import keys, table_lock

BASE = {
    "bucket": "lake-bucket",
    "region": "us-east-1",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "prefix": "events/",
}


def config(**given: Any) -> Any:
    return parse_config({**BASE, **given})


def test_the_table_has_the_parquet_columns_then_one_per_partition_field_partitioned_by_hour_then_each_field():
    cfg = config(partition_time="timestamp", partition_fields=["event", "consent.marketing"])
    shape = table.Shape.of(cfg)
    schema = shape.schema()
    assert [f.name for f in schema.fields] == [*parquet.COLUMNS, "p_event", "p_consent_marketing"]
    assert [f.field_id for f in schema.fields] == list(range(1, len(parquet.COLUMNS) + 3))
    assert {str(schema.find_field(n).field_type) for n in parquet.TIME_COLUMNS} == {"timestamptz"}
    spec = shape.spec()
    assert [(f.name, str(f.transform)) for f in spec.fields] == [
        ("timestamp_hour", "hour"),
        ("p_event", "identity"),
        ("p_consent_marketing", "identity"),
    ]
    arrow = shape.arrow_schema()
    assert [f.metadata[b"PARQUET:field_id"] for f in arrow][:2] == [b"1", b"2"]
    assert table.location(cfg) == "s3://lake-bucket/events" and table.location(config(prefix="")) == "s3://lake-bucket"
    assert table.PROPERTIES["commit.retry.num-retries"] == "0"


def test_the_encoder_writes_the_tables_schema_with_the_partition_values_as_columns():
    import io

    import pyarrow.parquet as pq

    cfg = config(partition_fields=["type"])
    encoder = __import__("workers.sink.iceberg.encoder", fromlist=["IcebergEncoder"]).IcebergEncoder(
        table.Shape.of(cfg).arrow_schema(), {"p_type": "track"}
    )
    line = b'{"event_id":"e1","type":"track","received_at":"2026-12-07T10:00:00.123Z","properties":{"a":1}}'
    data = encoder.write([line + b"\n" + line.replace(b"e1", b"e2")]) + encoder.finish()
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    assert [r["event_id"] for r in rows] == ["e1", "e2"] and {r["p_type"] for r in rows} == {"track"}
    assert rows[0]["received_at"].microsecond == 123_000 and rows[0]["properties"] == '{"a":1}'
    assert encoder.metadata[0].num_rows == 2
    assert pq.read_schema(io.BytesIO(data)).field("received_at").type.unit == "us"
    with pytest.raises(ValueError, match="p_type"):
        type(encoder)(table.Shape.of(cfg).arrow_schema(), {})


def test_data_files_live_under_the_tables_data_folder_with_a_hive_date_and_their_own_suffix():
    batch = "0b7c6c1e-3b65-4e6f-9d4c-0c8d1d5f2a10"
    key = object_keys.batch_key("events/", "type=track/", "2026120705", batch, "iceberg", "path")
    assert key == f"events/data/type=track/dt=2026-12-07/hr=05/{batch}.iceberg.parquet"
    assert object_keys.variant_of(key) == "iceberg"
    assert object_keys.variant_of(f"events/2026/12/07/05/{batch}.parquet") == "parquet"


def test_the_hour_partition_value_is_hours_since_the_epoch():
    assert commit.hour_value("1970010101") == 1
    assert commit.hour_value("2026120705") == 1796619600 // 3600


def test_compaction_packs_small_files_into_bins_under_the_target_and_leaves_single_ones():
    def f(size: int) -> Any:
        return SimpleNamespace(file_size_in_bytes=size)

    files = [f(60), f(50), f(40), f(30), f(200), f(5)]
    bins = maintain._bins(files, target_bytes=100)
    assert [[x.file_size_in_bytes for x in b] for b in bins] == [[60, 40], [50, 30, 5]]
    assert maintain._bins([f(10)], target_bytes=100) == []


def test_the_commit_lock_is_held_by_one_at_a_time_with_an_increasing_fence():
    r = fakeredis.FakeRedis()
    with table_lock.held(r, "t1", lease_s=5, wait_s=1) as first:
        with pytest.raises(TransientError) as busy:
            with table_lock.held(r, "t1", lease_s=5, wait_s=0.1):
                pass
        assert busy.value.failure.code == "IcebergTableBusy"
        with table_lock.held(r, "t2", lease_s=5, wait_s=0.1) as other:  # another table is free
            assert other == 1
    with table_lock.held(r, "t1", lease_s=5, wait_s=1) as second:
        assert second == first + 1
    lock, fence = keys.table_lock("t1")
    assert r.get(lock) is None and int(r.get(fence)) == 2
    assert lock.startswith("sig:{ice:t1}") and fence.startswith("sig:{ice:t1}")


def test_a_lock_taken_over_after_its_lease_is_not_freed_by_its_first_holder():
    r = fakeredis.FakeRedis()
    lock, _ = keys.table_lock("t")
    with table_lock.held(r, "t", lease_s=5, wait_s=1):
        r.delete(lock)  # the lease ran out
        r.set(lock, "someone-else")
    assert r.get(lock) == b"someone-else"


@pytest.mark.parametrize(
    ("name", "module", "code", "permanent"),
    [
        ("CommitFailedException", "pyiceberg.exceptions", "IcebergCommitConflict", False),
        ("CommitStateUnknownException", "pyiceberg.exceptions", "IcebergCommitUnknown", False),
        ("OperationalError", "sqlalchemy.exc", "IcebergCatalogUnavailable", False),
        ("ArgumentError", "sqlalchemy.exc", "IcebergCatalogRefused", True),
        ("StaleFence", "workers.sink.iceberg.commit", "IcebergLockExpired", False),
        ("CatalogRefused", "workers.sink.iceberg.catalogs", "IcebergCatalogRefused", True),
        ("TableMismatch", "workers.sink.iceberg.table", "IcebergTableMismatch", True),
        ("OperationalError", "somewhere.else", "Unexpected", False),
    ],
)
def test_catalog_errors_are_classified_by_their_class(name: str, module: str, code: str, permanent: bool):
    error = type(name, (Exception,), {"__module__": module})("boom")
    failure = classify(error)
    assert (failure.code, failure.permanent) == (code, permanent)


def test_pyarrows_s3_answers_are_classified_like_s3s():
    denied = OSError("When uploading part for key 'x': AWS Error ACCESS_DENIED during UploadPart operation")
    assert (classify(denied).code, classify(denied).permanent) == ("AccessDenied", True)
    assert classify(OSError("connection reset")).permanent is False


def test_the_policy_of_an_iceberg_integration_reads_deletes_lists_and_on_glue_manages_its_table():
    cfg = config(iceberg_catalog="glue", iceberg_namespace="web", iceberg_table="events")
    policy = iam.iam_policy(cfg, variant="iceberg")
    objects, location, listing, glue = policy["Statement"]
    assert {"s3:GetObject", "s3:DeleteObject", "s3:PutObject"} <= set(objects["Action"])
    assert listing == {
        "Effect": "Allow",
        "Action": ["s3:ListBucket"],
        "Resource": "arn:aws:s3:::lake-bucket",
        "Condition": {"StringLike": {"s3:prefix": ["events/*"]}},
    }
    assert glue["Action"] == list(iam.GLUE_ACTIONS)
    assert "arn:aws:glue:us-east-1:*:table/web/events" in glue["Resource"]
    assert len(iam.iam_policy(config(), variant="iceberg")["Statement"]) == 3  # sql: no Glue
    assert len(iam.iam_policy(config())["Statement"]) == 2


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"iceberg_catalog": "hive"}, "config.iceberg_catalog"),
        ({"iceberg_table": "Events"}, "config.iceberg_table"),
        ({"iceberg_namespace": "a-b"}, "config.iceberg_namespace"),
        ({"iceberg_catalog_uri": "mysql://x"}, "config.iceberg_catalog_uri"),
        ({"iceberg_catalog": "glue", "iceberg_catalog_uri": "postgresql://u:p@h/db"}, "config.iceberg_catalog_uri"),
        ({"iceberg_catalog_uri": "https://glue.example"}, "config.iceberg_catalog_uri"),
        ({"iceberg_snapshot_retention_days": 0}, "config.iceberg_snapshot_retention_days"),
        ({"iceberg_target_file_mb": 4096}, "config.iceberg_target_file_mb"),
    ],
)
def test_wrong_iceberg_settings_are_named(given: dict[str, Any], field: str):
    with pytest.raises(ConfigError) as caught:
        config(**given)
    assert [e["field"] for e in caught.value.errors] == [field]


def test_a_catalog_url_is_a_secret_shown_without_its_password(tmp_path):
    cfg = config(iceberg_catalog_uri="postgresql://signal:hunter2secret@db.internal:5432/lake")
    assert isinstance(cfg.iceberg_catalog_uri, SecretStr)
    assert "hunter2secret" not in repr(cfg) and "hunter2secret" not in str(cfg.public_dict())
    settings = Settings(iceberg_sqlite_path=str(tmp_path / "iceberg" / "catalog.db"))
    shown = catalogs.describe(cfg, settings)
    assert shown == {"catalog": "sql", "where": "postgresql+psycopg2://signal:***@db.internal:5432/lake"}
    assert catalogs.sql_uri(config(), settings) == f"sqlite:///{tmp_path}/iceberg/catalog.db"


def test_a_sqlite_catalog_outside_the_fleets_directory_is_refused(tmp_path):
    settings = Settings(iceberg_sqlite_path=str(tmp_path / "iceberg" / "catalog.db"))
    inside = config(iceberg_catalog_uri=f"sqlite:///{tmp_path}/iceberg/team-a.db")
    assert catalogs.sql_uri(inside, settings).endswith("team-a.db")
    for uri in (f"sqlite:///{tmp_path}/other.db", f"sqlite:///{tmp_path}/iceberg/../../etc/x.db", "sqlite:///rel.db"):
        with pytest.raises(catalogs.CatalogRefused, match="must be a file in"):
            catalogs.sql_uri(config(iceberg_catalog_uri=uri), settings)


def test_partition_values_in_a_slot_become_the_data_files_partition_in_the_specs_order():
    fields = partitions.parse_fields(["type", "event"])
    slot = partitions.join_slot("2026120705", partitions.values_of(fields, {"type": "track", "event": "Order Done"}))
    hour, values = partitions.split_slot(slot)
    assert (commit.hour_value(hour), *(v for _, v in values)) == (
        commit.hour_value("2026120705"),
        "track",
        partitions.encode("Order Done"),
    )


def test_the_fence_starts_above_the_tables_last_one_when_the_store_is_behind():
    r = fakeredis.FakeRedis()
    with table_lock.held(r, "t", lease_s=5, wait_s=1, floor=41) as fence:
        assert fence == 42
    with table_lock.held(r, "t", lease_s=5, wait_s=1, floor=3) as fence:
        assert fence == 43


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://signal:s3cr/et?#x@db.internal:5432/lake",
        "postgresql://signal:plain-secret@db.internal/lake?sslmode=require&password=plain-secret",
    ],
)
def test_a_catalog_url_is_shown_without_its_password_whatever_it_holds(uri: str):
    shown = catalogs.redact_url(uri)
    assert "secret" not in shown and "s3cr" not in shown and "db.internal" in shown


def test_a_url_password_in_an_error_message_is_scrubbed():
    from workers.classify import scrub

    text = "connection to postgresql://signal:hunter2@x@db:5432/lake failed; password=hunter2 rejected"
    assert "hunter2" not in scrub(text) and "db:5432/lake" in scrub(text)


@pytest.mark.parametrize(
    ("key", "ours"),
    [
        ("events/data/dt=2026-12-07/hr=05/0b7c6c1e-3b65-4e6f-9d4c-0c8d1d5f2a10.iceberg.parquet", True),
        ("events/data/dt=2026-12-07/hr=05/compacted-0b7c6c1e.parquet", True),
        ("events/metadata/snap-1-1-0b7c.avro", True),
        ("events/metadata/00003-0b7c.metadata.json", True),
        ("data/customer-export.csv", False),
        ("events/data/part-00000.parquet", False),  # a file some other writer put there
    ],
)
def test_orphan_removal_only_ever_considers_files_of_the_kinds_the_table_writes(key: str, ours: bool):
    assert maintain._ours(key) is ours
