"""Keeping an Iceberg table small and fast: compaction of closed hours, snapshot expiry, removal of orphan files.

- ``compact``: in every partition (one hour, one value of each partition field) whose hour ended at least
  ``closed_after_s`` ago, data files smaller than the target are rewritten into files of about the target size, the
  rows copied as they are (one source file in memory at a time). Each partition is one overwrite commit that deletes
  exactly the files it read and adds what it wrote; the commit asserts the snapshot it was planned on, so a batch
  committed meanwhile makes it fail (and it is planned again next time) instead of losing or doubling a row.
- ``expire``: snapshots older than the retention are expired (the current one never is).
- ``remove_orphans``: files under the table's ``data/`` and ``metadata/`` folders, of the kinds a table writes, that no
  remaining snapshot nor the table's metadata log references, and older than ``orphan_age_s`` (a flush writes its
  data file before committing it): leftovers of crashed flushes and of expired snapshots. Another table's metadata
  file there stops it before anything is deleted.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from workers.errors import SignalError
from workers.sink.iceberg import commit, table

if TYPE_CHECKING:
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

COMPACTED: Final = "signal.compacted-files"
READ_ROWS: Final = 65_536  # rows read from a source file at a time


@dataclass
class Report:
    """What one maintenance run did."""

    started_ms: int = 0
    duration_ms: int = 0
    partitions_compacted: int = 0
    files_before: int = 0
    files_after: int = 0
    rows_compacted: int = 0
    conflicts: int = 0
    snapshots_expired: int = 0
    orphans_removed: int = 0
    errors: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return asdict(self)


def _groups(tbl: Table) -> dict[tuple[Any, ...], list[DataFile]]:
    """The live data files of each partition; a partition where another writer deleted rows (delete files: a
    ``DELETE`` or ``MERGE`` in Athena, Spark, Trino) is left alone, its rows would otherwise come back."""
    out: dict[tuple[Any, ...], list[DataFile]] = defaultdict(list)
    with_deletes: set[tuple[Any, ...]] = set()
    for task in tbl.scan().plan_files():
        partition = tuple(task.file.partition)
        out[partition].append(task.file)
        if task.delete_files:
            with_deletes.add(partition)
    return {p: files for p, files in out.items() if p not in with_deletes}


def _bins(files: list[DataFile], target_bytes: int) -> list[list[DataFile]]:
    """Files below the target packed into bins of at most the target (largest first); bins of one are left."""
    small = sorted((f for f in files if f.file_size_in_bytes < target_bytes), key=lambda f: -f.file_size_in_bytes)
    bins: list[list[DataFile]] = []
    sizes: list[int] = []
    for f in small:
        for i, size in enumerate(sizes):
            if size + f.file_size_in_bytes <= target_bytes:
                bins[i].append(f)
                sizes[i] += f.file_size_in_bytes
                break
        else:
            bins.append([f])
            sizes.append(f.file_size_in_bytes)
    return [b for b in bins if len(b) > 1]


def _batches(tbl: Table, path: str) -> Iterator[Any]:
    import pyarrow.parquet as pq

    with tbl.io.new_input(path).open() as stream:
        yield from pq.ParquetFile(stream).iter_batches(batch_size=READ_ROWS)


def _rewrite(tbl: Table, files: list[DataFile], partition: tuple[Any, ...]) -> DataFile:
    """One data file holding every row of ``files`` (same partition), written next to the first of them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = files[0].file_path
    path = f"{first.rsplit('/', 1)[0]}/compacted-{uuid.uuid4()}.parquet"
    arrow_schema = table.arrow_schema_of(tbl)
    collected: list[Any] = []
    output = tbl.io.new_output(path)
    with output.create(overwrite=True) as stream:
        writer = pq.ParquetWriter(stream, arrow_schema, compression="zstd", metadata_collector=collected)
        for f in files:
            for batch in _batches(tbl, f.file_path):
                writer.write_table(pa.Table.from_batches([batch]).cast(arrow_schema))
        writer.close()
    size = len(tbl.io.new_input(path))
    return commit.data_file(tbl, path, size, collected[0], partition)


def compact(load: Any, locked: Any, *, target_bytes: int, closed_before_hour: int, report: Report) -> None:
    """Compact every partition of the table ``load()`` returns whose hour (Iceberg's hour value) is before
    ``closed_before_hour``; each commit is made inside ``locked()`` (the table's lock, yielding its fence)."""
    from pyiceberg.exceptions import CommitFailedException

    tbl = load()
    for partition, files in _groups(tbl).items():
        if partition[0] is None or partition[0] >= closed_before_hour:
            continue
        for group in _bins(files, target_bytes):
            rewritten = _rewrite(tbl, group, partition)
            try:
                with locked() as fence:
                    # planned on the table as it is now, under the lock (flushes committed while the files were
                    # rewritten are kept); files another run compacted meanwhile make this group stale
                    tbl = load()
                    live = {f.file_path for f in _groups(tbl).get(partition, [])}
                    if not all(f.file_path in live for f in group):
                        report.conflicts += 1
                        continue
                    tx = tbl.transaction()
                    summary = {commit.MAINTENANCE: "compaction", commit.FENCE: str(fence), COMPACTED: str(len(group))}
                    with tx.update_snapshot(snapshot_properties=summary).overwrite() as overwrite:
                        for f in group:
                            overwrite.delete_data_file(f)
                        overwrite.append_data_file(rewritten)
                    tbl = tx.commit_transaction()
            except CommitFailedException:
                report.conflicts += 1  # planned again at the next run; the file written is an orphan until then
                tbl = load()
                continue
            report.partitions_compacted += 1
            report.files_before += len(group)
            report.files_after += 1
            report.rows_compacted += rewritten.record_count


def expire(load: Any, locked: Any, *, retention_days: int, report: Report) -> None:
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    with locked():
        tbl = load()
        before = len(tbl.metadata.snapshots)
        if any(s.timestamp_ms < cutoff.timestamp() * 1000 for s in tbl.metadata.snapshots):
            tbl.maintenance.expire_snapshots().older_than(cutoff).commit()
            report.snapshots_expired = before - len(load().metadata.snapshots)


def _s3(uri: str) -> str:
    return "s3://" + uri.split("://", 1)[1] if uri.startswith(("s3a://", "s3n://")) else uri


def referenced(tbl: Table) -> set[str]:
    """Every file the table's metadata still names: data files, manifests and manifest lists of every snapshot, the
    metadata files of its log, statistics files."""
    out: set[str] = {tbl.metadata_location}
    out.update(entry.metadata_file for entry in tbl.metadata.metadata_log)
    out.update(f.statistics_path for f in tbl.metadata.statistics)
    out.update(f.statistics_path for f in tbl.metadata.partition_statistics)
    for snapshot in tbl.metadata.snapshots:
        out.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(tbl.io):
            if manifest.manifest_path in out:
                continue  # shared by snapshots: read once
            out.add(manifest.manifest_path)
            # a file a manifest marks deleted is live only in an older snapshot, which names it itself if kept
            for entry in manifest.fetch_manifest_entry(tbl.io, discard_deleted=True):
                out.add(entry.data_file.file_path)
    return {_s3(uri) for uri in out}


def _ours(key: str) -> bool:
    """A file of the kinds this fleet and pyiceberg write into a table's folders: data files of flushes and of
    compaction, manifests and manifest lists, metadata files. Anything else there is left alone."""
    name = key.rsplit("/", 1)[-1]
    if "/data/" in f"/{key}":
        return name.endswith(".iceberg.parquet") or (name.startswith("compacted-") and name.endswith(".parquet"))
    return name.endswith((".avro", ".metadata.json"))


class ForeignWriter(SignalError, RuntimeError):
    """A metadata file of another table at this table's location."""


_UUID_FIELD = re.compile(rb'"table-uuid"\s*:\s*"([0-9a-fA-F-]{36})"')


def _table_uuid(s3: Any, bucket: str, key: str) -> str | None:
    """The table a metadata file belongs to: from its first bytes (pyiceberg writes ``table-uuid`` near the start),
    else from the whole file."""
    head = s3.get_object(Bucket=bucket, Key=key, Range="bytes=0-4095")["Body"].read()
    found = _UUID_FIELD.search(head) or _UUID_FIELD.search(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return found.group(1).decode().lower() if found else None


def remove_orphans(load: Any, s3: Any, *, orphan_age_s: int, report: Report) -> None:
    """Delete what ``referenced`` does not name under ``data/`` and ``metadata/``, once older than ``orphan_age_s``.
    A metadata file of another table (its uuid not this one's) at the location stops it before anything is deleted:
    the other table's files are not leftovers of this one."""
    tbl = load()
    own = str(tbl.metadata.table_uuid).lower()
    keep = referenced(tbl)
    where = urlsplit(tbl.location())
    bucket, base = where.netloc, where.path.strip("/")
    cutoff = time.time() - orphan_age_s
    doomed: list[str] = []
    for folder in ("data/", "metadata/"):
        prefix = f"{base}/{folder}" if base else folder
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if f"s3://{bucket}/{key}" in keep or not _ours(key):
                    continue
                if key.endswith(".metadata.json") and _table_uuid(s3, bucket, key) != own:
                    raise ForeignWriter(
                        f"{key} belongs to another table: another table or writer uses this location, so nothing "
                        "was removed"
                    )
                if obj["LastModified"].timestamp() < cutoff:
                    doomed.append(key)
    # the table may have moved on while listing: anything it names now stays
    keep = referenced(load())
    doomed = [k for k in doomed if f"s3://{bucket}/{k}" not in keep]
    for start in range(0, len(doomed), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in doomed[start : start + 1000]], "Quiet": True}
        )
    report.orphans_removed += len(doomed)
