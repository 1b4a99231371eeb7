"""The Iceberg table of an ``iceberg`` integration: its schema, partition spec, location, creation and check.

Columns: the ``parquet`` variant's, in its order (``workers.sink.parquet.COLUMNS``; timestamps as Iceberg
``timestamptz``, microseconds), then one ``p_<name>`` string column per partition field holding the event's partition
value exactly as the other variants name its folder (``IntegrationConfig.partition_by``). Field ids are the columns'
positions from 1.

Partitioning: ``hour(<partition time>)`` (``received_at`` or ``timestamp``, as ``partition_time`` says), then
``identity(p_<name>)`` per partition field. Every data file holds one batch, i.e. one hour and one value of each field.

The table lives at ``s3://<bucket>/<prefix>`` (without the prefix's last ``/``): metadata under ``metadata/``, data
files under ``data/``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from workers.errors import SignalError
from workers.sink import parquet

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.catalog import Catalog
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table

# Set on the tables this fleet creates (a table made elsewhere keeps its own). Commits are retried by the uploader,
# which first looks for its batch in the table (exactly once); the library's own retry would re-apply an append
# without that look (harmless while the commit lock is held, which is why another writer's table can keep it).
PROPERTIES: Final[dict[str, str]] = {
    "commit.retry.num-retries": "0",
    "write.parquet.compression-codec": parquet.COMPRESSION,
    "signal.writer": "signal-s3",
}
PARTITION_FIELD_ID_BASE: Final = 1000
HOUR_PARTITION: Final = "{}_hour"


class TableMismatch(SignalError, ValueError):
    """The table exists but cannot take this integration's events (the message says why)."""


class TableSettings:
    """The fields of an integration's config the table depends on (``IntegrationConfig``)."""

    bucket: str
    prefix: str
    partition_time: str
    partition_by: tuple[Any, ...]
    iceberg_namespace: str
    iceberg_table: str


@dataclass(frozen=True)
class Shape:
    """What an integration's table looks like, from its config alone."""

    columns: tuple[str, ...]
    time_column: str
    partition_columns: tuple[str, ...]

    @classmethod
    def of(cls, cfg: Any) -> Shape:
        extra = tuple(f.column for f in cfg.partition_by)  # workers.events.partitions.Field
        return cls(parquet.COLUMNS + extra, cfg.partition_time, extra)

    def schema(self) -> Schema:
        from pyiceberg.schema import Schema
        from pyiceberg.types import NestedField, StringType, TimestamptzType

        return Schema(
            *(
                NestedField(
                    i,
                    name,
                    TimestamptzType() if name in parquet.TIME_COLUMNS else StringType(),
                    required=False,
                )
                for i, name in enumerate(self.columns, start=1)
            )
        )

    def spec(self) -> PartitionSpec:
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.transforms import HourTransform, IdentityTransform

        ids = {name: i for i, name in enumerate(self.columns, start=1)}
        fields = [PartitionField(ids[self.time_column], PARTITION_FIELD_ID_BASE, HourTransform(), self.hour_partition)]
        for n, column in enumerate(self.partition_columns, start=1):
            fields.append(PartitionField(ids[column], PARTITION_FIELD_ID_BASE + n, IdentityTransform(), column))
        return PartitionSpec(*fields)

    @property
    def hour_partition(self) -> str:
        return HOUR_PARTITION.format(self.time_column)

    def arrow_schema(self) -> pa.Schema:
        """The Parquet schema of the data files: Arrow types with each column's Iceberg field id."""
        return _writable(self.schema())


def identifier(cfg: Any) -> tuple[str, str]:
    return (cfg.iceberg_namespace, cfg.iceberg_table)


def location(cfg: Any) -> str:
    """``s3://<bucket>/<prefix>`` without a trailing ``/``."""
    return f"s3://{cfg.bucket}/{cfg.prefix}".rstrip("/")


def data_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def ensure(
    catalog: Catalog,
    cfg: Any,
    *,
    create: bool = True,
    location_taken: Callable[[], bool] = lambda: False,
    creating: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> Table:
    """The integration's table: created (with its namespace) when missing and ``create``, else checked
    (``TableMismatch``). A location that already holds a table's metadata is never given a second table (its
    maintenance would take the other's files for its own leftovers): ``location_taken`` says so, asked inside
    ``creating()`` (the fleet's lock on creating a table there), where the table is created."""
    from pyiceberg.exceptions import NoSuchTableError

    try:
        table = catalog.load_table(identifier(cfg))
    except NoSuchTableError:
        if not create:
            raise
        with creating():
            table = _load_or_create(catalog, cfg, location_taken)
    problem = mismatch(table, cfg)
    if problem:
        raise TableMismatch(problem)
    return table


def _load_or_create(catalog: Catalog, cfg: Any, location_taken: Callable[[], bool]) -> Table:
    from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError

    ident = identifier(cfg)
    try:
        return catalog.load_table(ident)  # made by another worker while this one waited for the lock
    except NoSuchTableError:
        pass
    if location_taken():
        raise TableMismatch(
            f"{location(cfg)} already holds an Iceberg table that catalog does not know as {'.'.join(ident)}: "
            "choose another prefix for a new table, or register that table in the catalog under this name (its "
            "newest metadata/*.metadata.json)"
        )
    try:
        catalog.create_namespace(cfg.iceberg_namespace)
    except NamespaceAlreadyExistsError:
        pass
    shape = Shape.of(cfg)
    return catalog.create_table(
        ident, schema=shape.schema(), partition_spec=shape.spec(), location=location(cfg), properties=PROPERTIES
    )


def mismatch(table: Table, cfg: Any) -> str | None:
    """Why ``table`` cannot take this integration's events (None when it can)."""
    name = ".".join(identifier(cfg))
    if table.location().rstrip("/") != location(cfg):
        return (
            f"table {name} exists at {table.location()}, not at {location(cfg)}: choose another iceberg_table, or "
            "the bucket and prefix the table is at"
        )
    shape = Shape.of(cfg)
    want = shape.schema()
    have = table.schema()
    for field in want.fields:
        try:
            found = have.find_field(field.name)
        except ValueError:
            return f"table {name} has no column {field.name}: it was made for other partition_fields"
        if found.field_type != field.field_type:
            return f"table {name}'s column {field.name} is {found.field_type}, not {field.field_type}"
    spec = table.spec()
    wanted = [(f.name, str(f.transform)) for f in shape.spec().fields]
    got = [(f.name, str(f.transform)) for f in spec.fields]
    if wanted != got:
        return (
            f"table {name} is partitioned by {', '.join(f'{t}({n})' for n, t in got) or 'nothing'}, "
            f"not {', '.join(f'{t}({n})' for n, t in wanted)}: partition_time and partition_fields must match it"
        )
    return None


def arrow_schema_of(tbl: Table) -> pa.Schema:
    """The Parquet schema of ``tbl``'s data files as this fleet writes them (field ids included)."""
    return _writable(tbl.schema())


def _writable(schema: Schema) -> pa.Schema:
    """pyiceberg's Arrow schema of ``schema`` with ``string`` where it says ``large_string``: the same Parquet column,
    without casting (copying) every string column of a row group from what the encoder builds."""
    import pyarrow as pa
    from pyiceberg.io.pyarrow import schema_to_pyarrow

    arrow = schema_to_pyarrow(schema)
    return pa.schema(
        [f.with_type(pa.string()) if f.type == pa.large_string() else f for f in arrow], metadata=arrow.metadata
    )
