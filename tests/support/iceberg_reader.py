"""An Iceberg reader written from the table spec, independent of the library that writes the tables (pyiceberg):
the metadata file found in the catalog with sqlite3 / psycopg2 / boto3 Glue, the snapshot's manifest list and
manifests read with fastavro, the live data files read with pyarrow."""

from __future__ import annotations

import io
import json
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import fastavro
import pyarrow.parquet as pq

ADDED, EXISTING, DELETED = 1, 0, 2


def _get(s3: Any, uri: str) -> bytes:
    parts = urlsplit(uri)
    return s3.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"].read()


def sql_metadata_location(uri: str, namespace: str, table: str) -> str:
    """The table's current metadata file, from the SQL catalog's own table (``iceberg_tables``)."""
    query = "SELECT metadata_location FROM iceberg_tables WHERE table_namespace = {p} AND table_name = {p}"
    if uri.startswith("sqlite"):
        with sqlite3.connect(urlsplit(uri).path if uri.startswith("sqlite:////") else uri[len("sqlite:///") :]) as db:
            rows = db.execute(query.format(p="?"), (namespace, table)).fetchall()
    else:
        import psycopg2

        with psycopg2.connect(uri.replace("postgresql+psycopg2://", "postgresql://")) as db, db.cursor() as cur:
            cur.execute(query.format(p="%s"), (namespace, table))
            rows = cur.fetchall()
    assert len(rows) == 1, rows
    return rows[0][0]


def glue_metadata_location(glue: Any, namespace: str, table: str) -> str:
    return glue.get_table(DatabaseName=namespace, Name=table)["Table"]["Parameters"]["metadata_location"]


def metadata(s3: Any, location: str) -> dict[str, Any]:
    return json.loads(_get(s3, location))


def live_files(s3: Any, meta: dict[str, Any], snapshot_id: int | None = None) -> list[dict[str, Any]]:
    """The data files of a snapshot (the current one by default): every manifest entry not deleted."""
    snapshot_id = meta.get("current-snapshot-id") if snapshot_id is None else snapshot_id
    if snapshot_id in (None, -1):
        return []
    snapshot = next(s for s in meta["snapshots"] if s["snapshot-id"] == snapshot_id)
    files = []
    for manifest in fastavro.reader(io.BytesIO(_get(s3, snapshot["manifest-list"]))):
        assert manifest.get("content", 0) == 0, "no delete manifests are written"
        for entry in fastavro.reader(io.BytesIO(_get(s3, manifest["manifest_path"]))):
            if entry["status"] != DELETED:
                files.append(entry["data_file"])
    return files


def rows(s3: Any, meta: dict[str, Any], snapshot_id: int | None = None) -> list[dict[str, Any]]:
    """Every row of a snapshot, each data file's rows checked against its manifest's record count."""
    out: list[dict[str, Any]] = []
    for file in live_files(s3, meta, snapshot_id):
        table = pq.read_table(io.BytesIO(_get(s3, file["file_path"])))
        assert table.num_rows == file["record_count"], file["file_path"]
        out.extend(table.to_pylist())
    return out
