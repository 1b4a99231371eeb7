"""Delivering a batch of an ``iceberg`` integration: its data file written, then committed to the table exactly once.

The batch's key (fixed at its first claim) names its data file. Before writing, the table is asked whether the batch
is already in it (an upload whose worker died after the commit, or whose commit answer was lost): then nothing is
written or committed again. Otherwise the file is written (a retry overwrites the same key with the same rows) and
committed under the table's fleet-wide lock (``workers.store.table_lock``) by ``workers.sink.iceberg.commit``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import Any

import redis

from workers import clock
from workers.classify import classify
from workers.integrations import registry
from workers.integrations.config import IntegrationConfig
from workers.settings import Settings
from workers.sink import clients, writer
from workers.sink.iceberg import catalogs, commit, maintain, table
from workers.sink.iceberg.encoder import IcebergEncoder
from workers.store import keys, table_lock

log = logging.getLogger(__name__)
CLOSED_AFTER_HOURS = 1  # an hour is compacted once it ended this many hours ago


def _locked(r: redis.Redis, tbl: Any, settings: Settings) -> Any:
    """The fleet-wide commit lock of ``tbl``, named by the table's uuid (the same table by any catalog URL or
    integration), its fence above the table's last one."""
    wait_s = min(settings.iceberg_lock_wait_s, settings.upload_timeout_s / 4)
    return table_lock.held(
        r,
        str(tbl.metadata.table_uuid),
        lease_s=settings.iceberg_lock_lease_s,
        wait_s=wait_s,
        floor=commit.last_fence(tbl),
    )


def deliver(
    r: redis.Redis,
    integration_id: str,
    batch_id: str,
    *,
    key: str,
    slot: tuple[str, tuple[tuple[str, str], ...]],
    lines: Iterable[list[bytes]],
    cfg: IntegrationConfig,
    settings: Settings,
    checksum: bool,
) -> writer.UploadResult:
    """Write the batch's data file at ``key`` and commit it; or, when the table already has the batch, nothing."""
    hour, values = slot
    catalog, tbl = catalogs.open_table(cfg, settings, creating=lambda: table_lock.creating(r, table.location(cfg)))
    found = commit.find_batch(tbl, batch_id)
    if found is not None:
        added = found.summary.additional_properties if found.summary is not None else {}
        return writer.UploadResult(
            key=key,
            events=int(added.get("added-records", 0)),
            raw_bytes=0,
            compressed_bytes=int(added.get("added-files-size", 0)),
            parts=0,
            etag="",
        )
    shape = table.Shape.of(cfg)
    encoder = IcebergEncoder(shape.arrow_schema(), {f"p_{name}": value for name, value in values})
    result = writer.put_object(
        cfg, key, lines, settings=settings, variant="iceberg", checksum=checksum, encoder=encoder
    )
    data_file = commit.data_file(
        tbl,
        table.data_uri(cfg.bucket, key),
        result.compressed_bytes,
        encoder.metadata[0],
        (commit.hour_value(hour), *(value for _, value in values)),
    )
    ident = table.identifier(cfg)
    with _locked(r, tbl, settings) as fence:
        commit.append_once(
            lambda: catalog.load_table(ident),
            batch_id,
            [data_file],
            fence=fence,
            properties={commit.INTEGRATION_ID: integration_id},
        )
    return result


def iceberg_ids(r: redis.Redis) -> list[str]:
    """The integrations of the iceberg variant."""
    out = []
    for iid in registry.ids(r):
        try:
            if registry.get(r, iid).variant == "iceberg":
                out.append(iid)
        except registry.UnknownIntegration:
            continue
    return out


def run_maintenance(
    r: redis.Redis, integration_id: str, *, settings: Settings, closed_after_hours: int = CLOSED_AFTER_HOURS
) -> dict[str, Any]:
    """Compact the closed hours of an iceberg integration's table, expire its old snapshots, remove its orphan
    files (``workers.sink.iceberg.maintain``); the report is kept for the console and returned."""
    integ = registry.get(r, integration_id, max_age_s=0)
    if integ.variant != "iceberg":
        raise ValueError(f"integration {integration_id} is not of the iceberg variant")
    running = keys.iceberg_maintenance_running(integration_id)
    if not r.set(running, "1", nx=True, ex=max(settings.iceberg_maintenance_interval_s, 60)):
        return {"skipped": "another maintenance run of this table is under way", "errors": []}
    try:
        return _maintain(r, integ, settings=settings, closed_after_hours=closed_after_hours)
    finally:
        r.delete(running)


def _maintain(r: redis.Redis, integ: Any, *, settings: Settings, closed_after_hours: int) -> dict[str, Any]:
    integration_id = integ.id
    cfg = integ.config
    catalog, _ = catalogs.open_table(cfg, settings, create=False)
    ident = table.identifier(cfg)

    def load() -> Any:
        return catalog.load_table(ident)

    def locked() -> Any:
        return _locked(r, load(), settings)

    report = maintain.Report(started_ms=clock.now_ms())
    started = time.perf_counter()

    def compaction() -> None:
        maintain.compact(
            load,
            locked,
            target_bytes=cfg.iceberg_target_file_mb * 1024 * 1024,
            closed_before_hour=int(time.time() // 3600) - closed_after_hours,
            report=report,
        )

    def expiry() -> None:
        maintain.expire(load, locked, retention_days=cfg.iceberg_snapshot_retention_days, report=report)

    def orphans() -> None:
        s3 = clients.client_for(cfg, settings=settings)
        maintain.remove_orphans(load, s3, orphan_age_s=settings.iceberg_orphan_age_s, report=report)

    steps = (("compaction", compaction), ("expiry", expiry), ("orphans", orphans))
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - each step on its own: the others still run, the error is shown
            failure = classify(exc)
            report.errors.append(f"{name}: {failure.code}: {failure.message}")
    report.duration_ms = round((time.perf_counter() - started) * 1000)
    view = {**report.view(), "started": clock.iso(clock.from_ms(report.started_ms))}
    r.hset(keys.iceberg(integration_id), "maintenance", json.dumps(view))
    log.info(
        "maintained integration=%s compacted=%d files %d->%d expired=%d orphans=%d errors=%d",
        integration_id,
        report.partitions_compacted,
        report.files_before,
        report.files_after,
        report.snapshots_expired,
        report.orphans_removed,
        len(report.errors),
        extra={"integration_id": integration_id, **{k: v for k, v in view.items() if k != "errors"}},
    )
    return view


def last_maintenance(r: redis.Redis, integration_id: str) -> dict[str, Any] | None:
    raw = r.hget(keys.iceberg(integration_id), "maintenance")
    return json.loads(raw) if raw else None


def queries(cfg: IntegrationConfig, metadata_location: str) -> dict[str, str]:
    """How to read the table: Athena (through Glue), Spark, DuckDB."""
    ns, name = table.identifier(cfg)
    time_column = cfg.partition_time
    athena = (
        f'SELECT event, count(*) AS events\nFROM "{ns}"."{name}"\n'
        f"WHERE {time_column} >= current_timestamp - INTERVAL '1' DAY\nGROUP BY 1 ORDER BY 2 DESC;"
    )
    if cfg.iceberg_catalog != catalogs.GLUE:
        athena = (
            "-- Athena reads Iceberg tables of the Glue Data Catalog: choose iceberg_catalog glue, or register\n"
            + (f"-- the table in Glue from its metadata file, {metadata_location}\n" + athena)
        )
    if cfg.iceberg_catalog == catalogs.GLUE:
        spark_catalog = "  --conf spark.sql.catalog.signal.type=glue \\\n"
    else:
        spark_catalog = (
            "  --conf spark.sql.catalog.signal.type=jdbc \\\n"
            "  --conf spark.sql.catalog.signal.uri=jdbc:<the catalog database> \\\n"
        )
    spark = (
        "spark-sql --packages org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.0,"
        "org.apache.iceberg:iceberg-aws-bundle:1.10.0 \\\n"
        "  --conf spark.sql.catalog.signal=org.apache.iceberg.spark.SparkCatalog \\\n"
        f"{spark_catalog}"
        "  --conf spark.sql.catalog.signal.io-impl=org.apache.iceberg.aws.s3.S3FileIO\n"
        f"SELECT count(*) FROM signal.{ns}.{name} WHERE {time_column} >= current_timestamp() - INTERVAL 1 DAY;"
    )
    duckdb = (
        "INSTALL iceberg; LOAD iceberg; INSTALL httpfs; LOAD httpfs;\n"
        "CREATE SECRET (TYPE s3, PROVIDER credential_chain);\n"
        f"SELECT event, count(*) FROM iceberg_scan('{metadata_location}') GROUP BY 1;"
    )
    return {"athena": athena, "spark": spark, "duckdb": duckdb}


def table_view(r: redis.Redis, integration_id: str, *, settings: Settings, snapshots: int = 10) -> dict[str, Any]:
    """What the console and ``signal-s3 iceberg show`` say of an integration's table: catalog, location, current
    snapshot, rows and files per recent snapshot, the last maintenance, queries; or the error that stops reading it."""
    integ = registry.get(r, integration_id)
    cfg = integ.config
    view: dict[str, Any] = {
        **catalogs.describe(cfg, settings),
        "namespace": cfg.iceberg_namespace,
        "table": cfg.iceberg_table,
        "location": table.location(cfg),
        "last_maintenance": last_maintenance(r, integration_id),
    }
    try:
        _, tbl = catalogs.open_table(cfg, settings, create=False)
    except Exception as exc:  # noqa: BLE001 - shown as the table's state
        failure = classify(exc)
        return {**view, "error": {"code": failure.code, "message": failure.message, "hint": failure.hint}}
    current = tbl.current_snapshot()
    recent = []
    for snap in list(reversed(tbl.metadata.snapshots))[:snapshots]:
        summary = snap.summary.additional_properties if snap.summary is not None else {}
        recent.append(
            {
                "snapshot_id": snap.snapshot_id,
                "committed_ms": snap.timestamp_ms,
                "committed": clock.iso(clock.from_ms(snap.timestamp_ms)),
                "operation": str(snap.summary.operation.value) if snap.summary is not None else "",
                "batch_id": summary.get(commit.BATCH_ID),
                "maintenance": summary.get(commit.MAINTENANCE),
                "added_rows": int(summary.get("added-records", 0)),
                "added_files": int(summary.get("added-data-files", 0)),
                "removed_files": int(summary.get("deleted-data-files", 0)),
                "total_rows": int(summary.get("total-records", 0)),
                "total_files": int(summary.get("total-data-files", 0)),
            }
        )
    return {
        **view,
        "metadata_location": tbl.metadata_location,
        "current_snapshot_id": current.snapshot_id if current is not None else None,
        "snapshot_count": len(tbl.metadata.snapshots),
        "partitioning": [f"{f.transform}({tbl.schema().find_column_name(f.source_id)})" for f in tbl.spec().fields],
        "snapshots": recent,
        "queries": queries(cfg, tbl.metadata_location),
    }
