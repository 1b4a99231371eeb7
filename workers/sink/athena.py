"""The Athena table over an integration's objects: ``CREATE EXTERNAL TABLE`` with partition projection.

Objects live at ``<prefix>YYYY/MM/DD/HH/<batch-uuid><suffix>``, or ``<prefix>dt=YYYY-MM-DD/hr=HH/...`` with the
``hive`` date layout (``workers.sink.object_keys``). For the ``default``
variant (``.json.gz``, one canonical envelope per line) the table reads them with the OpenX JSON SerDe; for the
``parquet`` variant (``.parquet``, ``workers.sink.parquet``) it is ``STORED AS PARQUET`` with the Parquet schema's
columns. Both project the date of the key as partitions: ``year``/``month``/``day``/``hour`` for the ``path``
layout, ``dt`` (a ``date`` projection, ``yyyy-MM-dd``, up to a day past today, plus ``partition_time_bound_s`` when
events are partitioned by their own timestamp) and ``hr`` for ``hive``, so no crawler or ``MSCK REPAIR`` is ever
needed.

Choices:
- ``context``, ``properties`` and ``traits`` are ``string`` columns holding the raw JSON object. Their shape differs
  per event and per source; a ``struct`` would fix one shape (and silently null out the rest) and a ``map`` would
  fix one value type. Query them with ``json_extract_scalar(properties, '$.revenue')``.
- JSON variant: timestamps are ``string`` (ISO-8601 ``YYYY-MM-DDTHH:MM:SS.mmmZ``);
  ``from_iso8601_timestamp(\\`timestamp\\`)`` turns them into values. Parquet variant: they are ``timestamp``
  columns (UTC, millisecond precision, which Athena reads), and ``extra`` holds any other top-level fields as JSON.
- No compression property: Athena reads gzip text by the ``.gz`` extension every object has, and Parquet files
  name their own codec (zstd).
- Integer projection (digits 4/2/2/2) rather than one ``date`` column, so queries filter on plain strings
  (``WHERE year = '2026' AND month = '05'``). Day 31 of a short month projects to a prefix with no objects, which
  costs one empty listing, nothing more. Always filter on ``year`` (and better ``month``/``day``) to keep the number of
  projected partitions small.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

SERDE = "org.openx.data.jsonserde.JsonSerDe"

# The canonical envelope (workers.events.envelope.CANONICAL_ORDER) as Athena columns, in order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "string"),
    ("type", "string"),
    ("event", "string"),
    ("name", "string"),
    ("anonymous_id", "string"),
    ("user_id", "string"),
    ("group_id", "string"),
    ("previous_id", "string"),
    ("timestamp", "string"),
    ("received_at", "string"),
    ("sent_at", "string"),
    ("context", "string"),
    ("properties", "string"),
    ("traits", "string"),
    ("source_id", "string"),
    ("integration_id", "string"),
)

# The Parquet variant's columns (workers.sink.parquet.SCHEMA, kept free of pyarrow here), in order.
_PARQUET_TIMES = ("timestamp", "received_at", "sent_at")
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (name, "timestamp" if name in _PARQUET_TIMES else kind) for name, kind in COLUMNS
) + (("extra", "string"),)
COLUMNS_BY_VARIANT: dict[str, tuple[tuple[str, str], ...]] = {"default": COLUMNS, "parquet": PARQUET_COLUMNS}
_STORAGE_BY_VARIANT: dict[str, str] = {
    "default": (
        f"ROW FORMAT SERDE '{SERDE}'\n"
        "STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'\n"
        "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"
    ),
    "parquet": "STORED AS PARQUET\n",
}

# (name, digits, first, last) of each partition component of the key ``YYYY/MM/DD/HH``.
YEAR_MIN = 2020
YEAR_MAX = 2099
PARTITIONS: tuple[tuple[str, int, int, int], ...] = (
    ("year", 4, YEAR_MIN, YEAR_MAX),
    ("month", 2, 1, 12),
    ("day", 2, 1, 31),
    ("hour", 2, 0, 23),
)

# the hive layout: dt (a date projection from the first year to the present) and hr
HIVE_PARTITIONS: tuple[str, ...] = ("dt", "hr")
_HIVE_PROJECTION: tuple[tuple[str, str], ...] = (
    ("projection.dt.type", "date"),
    ("projection.dt.format", "yyyy-MM-dd"),
    ("projection.dt.interval", "1"),
    ("projection.dt.interval.unit", "DAYS"),
    ("projection.hr.type", "integer"),
    ("projection.hr.range", "00,23"),
    ("projection.hr.digits", "2"),
)

TABLE_PREFIX = "signal_events_"
_NAME_RE = re.compile(r"[a-z0-9_]{1,255}")
_NOT_NAME_CHAR_RE = re.compile(r"[^a-z0-9_]")
# Characters that cannot appear in a quoted DDL literal or would be read as a projection template variable.
_UNSAFE_LOCATION_CHARS = frozenset("'\"\\`${}")


class _PartitionField(Protocol):
    """A partition field as the table needs it (``workers.events.partitions.Field``)."""

    @property
    def name(self) -> str: ...

    @property
    def column(self) -> str: ...

    @property
    def enum(self) -> tuple[str, ...] | None: ...


class _Destination(Protocol):
    @property
    def bucket(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def date_layout(self) -> str: ...

    @property
    def partition_time(self) -> str: ...

    @property
    def partition_time_bound_s(self) -> int: ...


def default_table_name(integration_id: str) -> str:
    """``signal_events_`` + the first 8 characters of the id, lowercased, anything but ``[a-z0-9_]`` as ``_``."""
    if not isinstance(integration_id, str) or not integration_id:
        raise ValueError("integration_id must be a non-empty string")
    return TABLE_PREFIX + _NOT_NAME_CHAR_RE.sub("_", integration_id[:8].lower())


def location(cfg: _Destination) -> str:
    """``s3://<bucket>/<prefix>``: the folder holding every object of the destination (always ends with ``/``)."""
    _check_location_text(cfg.bucket, "bucket")
    _check_location_text(cfg.prefix, "prefix")
    return f"s3://{cfg.bucket}/{cfg.prefix}"


def partition_names(date_layout: str) -> tuple[str, ...]:
    """The table's partition columns for a date layout, in the key's order."""
    if date_layout == "hive":
        return HIVE_PARTITIONS
    if date_layout == "path":
        return tuple(name for name, *_ in PARTITIONS)
    raise ValueError(f"date_layout must be path or hive, got {date_layout!r}")


def days_ahead(cfg: _Destination) -> int:
    """How many days past today a ``dt`` can be: a day of clock skew, plus ``partition_time_bound_s`` when events are
    partitioned by their own timestamp (a device clock ahead)."""
    if cfg.partition_time == "timestamp":
        return 1 + -(-cfg.partition_time_bound_s // 86_400)
    return 1


def location_template(cfg: _Destination, fields: Sequence[_PartitionField] = ()) -> str:
    """The ``storage.location.template``: ``s3://<bucket>/<prefix>${year}/${month}/${day}/${hour}/``, or
    ``s3://<bucket>/<prefix>dt=${dt}/hr=${hr}/`` for the hive layout; partition fields first, as
    ``<name>=${p_<name>}/``."""
    folders = "".join(f"{f.name}=${{{f.column}}}/" for f in fields)
    if cfg.date_layout == "hive":
        components = "/".join(f"{name}=${{{name}}}" for name in HIVE_PARTITIONS)
    else:
        components = "/".join(f"${{{name}}}" for name in partition_names(cfg.date_layout))
    return f"{location(cfg)}{folders}{components}/"


def athena_ddl(
    integration_id: str,
    cfg: _Destination,
    *,
    table: str | None = None,
    database: str = "default",
    variant: str = "default",
    fields: Sequence[_PartitionField] = (),
) -> str:
    """The ``CREATE EXTERNAL TABLE IF NOT EXISTS`` statement for the objects of one integration, in its variant's
    format (``default``: gzipped NDJSON, ``parquet``).

    ``table`` defaults to ``default_table_name(integration_id)``; ``table`` and ``database`` must be Athena names
    (lowercase letters, digits, underscores). ValueError for a name or location that cannot be expressed.
    """
    table_name = default_table_name(integration_id) if table is None else table
    _check_name(table_name, "table")
    _check_name(database, "database")
    if variant == "iceberg":
        raise ValueError(
            "an iceberg integration needs no DDL: Athena reads its table from the Glue Data Catalog "
            "(iceberg_catalog glue); signal-s3 iceberg show ID prints the queries"
        )
    if variant not in COLUMNS_BY_VARIANT:
        raise ValueError(f"variant must be one of {', '.join(COLUMNS_BY_VARIANT)}, got {variant!r}")
    table_columns = COLUMNS_BY_VARIANT[variant]

    width = max(len(name) for name, _ in table_columns) + 2
    columns = ",\n".join(f"  {_quote(name):<{width}} {kind}" for name, kind in table_columns)
    names = [f.column for f in fields] + list(partition_names(cfg.date_layout))
    partitions = ",\n".join(f"  {_quote(name)} string" for name in names)

    properties: list[tuple[str, str]] = [("projection.enabled", "true")]
    for f in fields:
        if f.enum is None:  # open values: a query names the value it wants (WHERE p_event = '...')
            properties.append((f"projection.{f.column}.type", "injected"))
        else:
            properties += [(f"projection.{f.column}.type", "enum"), (f"projection.{f.column}.values", ",".join(f.enum))]
    if cfg.date_layout == "hive":
        properties += _HIVE_PROJECTION
        properties.append(("projection.dt.range", f"{YEAR_MIN}-01-01,NOW+{days_ahead(cfg)}DAYS"))
    else:
        for name, digits, first, last in PARTITIONS:
            properties += [
                (f"projection.{name}.type", "integer"),
                (f"projection.{name}.range", f"{first:0{digits}d},{last:0{digits}d}"),
                (f"projection.{name}.digits", str(digits)),
            ]
    properties.append(("storage.location.template", location_template(cfg, fields)))
    tblproperties = ",\n".join(f"  '{key}'='{value}'" for key, value in properties)

    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {_quote(database)}.{_quote(table_name)} (\n"
        f"{columns}\n"
        ")\n"
        "PARTITIONED BY (\n"
        f"{partitions}\n"
        ")\n"
        f"{_STORAGE_BY_VARIANT[variant]}"
        f"LOCATION '{location(cfg)}'\n"
        "TBLPROPERTIES (\n"
        f"{tblproperties}\n"
        ");\n"
    )


def _quote(identifier: str) -> str:
    """Backticks around every identifier: ``timestamp``, ``type``, ``year``... are reserved words in Athena DDL."""
    return f"`{identifier}`"


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or _NAME_RE.fullmatch(value) is None:
        raise ValueError(
            f"{what} must be 1-255 lowercase letters, digits or underscores (an Athena name), got {value!r}"
        )


def _check_location_text(value: str, what: str) -> None:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    bad = sorted(set(value) & _UNSAFE_LOCATION_CHARS)
    if bad:
        raise ValueError(
            f"{what} {value!r} contains {' '.join(bad)}, which an Athena LOCATION or partition template cannot "
            "hold; create the table by hand or choose a prefix without these characters"
        )
