"""Committing a batch's data file to its table, exactly once.

A batch is committed by one append snapshot whose summary records ``signal.batch-id``. Before committing, and
again after any conflict, the uploader reloads the table and looks for its batch id in every snapshot the table
still has: found, the batch is already in the table (a retried or redelivered upload, or a commit whose answer was
lost) and nothing is committed. The append asserts the snapshot it was built on (pyiceberg's ``AssertRefSnapshotId``):
a commit that raced another lands only if nothing was committed meanwhile, so the look and the append are one
decision. The table's ``commit.retry.num-retries`` is 0 (``table.PROPERTIES``) so pyiceberg never re-applies an append
without that look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from workers import compat
from workers.errors import SignalError

if TYPE_CHECKING:
    import pyarrow.parquet as pq
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot

BATCH_ID: Final = "signal.batch-id"
FENCE: Final = "signal.fence"
INTEGRATION_ID: Final = "signal.integration-id"
MAINTENANCE: Final = "signal.maintenance"
MAX_CONFLICTS: Final = 8


class StaleFence(SignalError, RuntimeError):
    """A commit under a newer lock landed meanwhile: this uploader's lock expired."""


@dataclass(frozen=True)
class Committed:
    snapshot_id: int
    already: bool  # the batch was in the table before this call


def hour_value(hour: str) -> int:
    """Iceberg's ``hour`` transform of ``YYYYMMDDHH``: hours since 1970-01-01T00:00Z."""
    moment = datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC)
    return int(moment.timestamp()) // 3600


def data_file(table: Table, uri: str, size: int, metadata: pq.FileMetaData, partition: tuple[Any, ...]) -> DataFile:
    """The manifest entry of one data file written by ``encoder.IcebergEncoder``: its statistics from the Parquet
    footer, its partition given (``(hour_value, *partition values)`` in the spec's order), never inferred from the
    rows (an event outside the ``partition_time`` bound sits in its received hour)."""
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    stats = compat.iceberg_statistics(table, metadata)
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=uri,
        file_format=FileFormat.PARQUET,
        partition=Record(*partition),
        file_size_in_bytes=size,
        sort_order_id=None,
        spec_id=table.metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats,
    )


def find_batch(table: Table, batch_id: str) -> Snapshot | None:
    """The snapshot that committed ``batch_id``, among every snapshot the table still has."""
    for snapshot in reversed(table.metadata.snapshots):
        summary = snapshot.summary
        if summary is not None and summary.additional_properties.get(BATCH_ID) == batch_id:
            return snapshot
    return None


def last_fence(table: Table) -> int:
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get(FENCE, 0) or 0)


def append_once(
    load: Callable[[], Table], batch_id: str, files: list[DataFile], *, fence: int, properties: dict[str, str]
) -> Committed:
    """Commit ``files`` as one append snapshot recording ``batch_id``, unless a snapshot of the table already does.

    ``load`` returns the table as the catalog has it now. Conflicts (another commit landed between the load and this
    one) are retried from a fresh load, at most ``MAX_CONFLICTS`` times, then raised. ``fence``: the token of the lock
    this commit is made under; a table whose last commit carries a newer one means the lock expired (``StaleFence``).
    """
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(MAX_CONFLICTS + 1):
        table = load()
        found = find_batch(table, batch_id)
        if found is not None:
            return Committed(found.snapshot_id, already=True)
        if last_fence(table) > fence:
            raise StaleFence(f"a commit under lock token {last_fence(table)} landed after this one's ({fence})")
        tx = table.transaction()
        summary = {**properties, BATCH_ID: batch_id, FENCE: str(fence)}
        # a merge append: every commit.manifest.min-count-to-merge manifests are merged into one, so a table of many
        # small commits keeps a short manifest list
        with tx.update_snapshot(snapshot_properties=summary).merge_append() as append:
            for file in files:
                append.append_data_file(file)
        try:
            committed = tx.commit_transaction()
        except CommitFailedException:
            if attempt == MAX_CONFLICTS:
                raise
            continue
        snapshot = find_batch(committed, batch_id)
        return Committed(snapshot.snapshot_id if snapshot is not None else 0, already=False)
    raise AssertionError("unreachable")
