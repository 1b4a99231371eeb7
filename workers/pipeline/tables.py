"""Delivering a batch of an ``iceberg`` integration: its data file written, then committed to the table exactly once.

The batch's key (fixed at its first claim) names its data file. Before writing, the table is asked whether the batch
is already in it (an upload whose worker died after the commit, or whose commit answer was lost): then nothing is
written or committed again. Otherwise the file is written (a retry overwrites the same key with the same rows) and
committed under the table's fleet-wide lock (``workers.store.table_lock``) by ``workers.sink.iceberg.commit``.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from workers.classify import hint_for
from workers.errors import Failure, PermanentError
from workers.integrations.config import IntegrationConfig
from workers.settings import Settings
from workers.sink import writer
from workers.sink.iceberg import catalogs, commit, table
from workers.sink.iceberg.encoder import IcebergEncoder
from workers.store import table_lock


def _permanent(code: str, message: str) -> PermanentError:
    return PermanentError(Failure(code, message, True, hint_for(code), None))


def open_table(cfg: IntegrationConfig, settings: Settings):  # type: ignore[no-untyped-def]
    """The integration's catalog and table (created when missing); a table or catalog this integration cannot use
    is a ``PermanentError`` naming the field to change."""
    try:
        catalog = catalogs.open_catalog(cfg, settings)
    except catalogs.CatalogRefused as exc:
        raise _permanent("IcebergCatalogRefused", str(exc)) from None
    try:
        return catalog, table.ensure(catalog, cfg)
    except table.TableMismatch as exc:
        raise _permanent("IcebergTableMismatch", str(exc)) from None


def lock_name(cfg: IntegrationConfig, settings: Settings) -> str:
    where = catalogs.describe(cfg, settings)
    return table_lock.table_id(where["catalog"], where["where"], cfg.region, *table.identifier(cfg))


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
    catalog, tbl = open_table(cfg, settings)
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
    with table_lock.held(
        r, lock_name(cfg, settings), lease_s=settings.iceberg_lock_lease_s, wait_s=settings.iceberg_lock_wait_s
    ) as fence:
        commit.append_once(
            lambda: catalog.load_table(ident),
            batch_id,
            [data_file],
            fence=fence,
            properties={commit.INTEGRATION_ID: integration_id},
        )
    return result
