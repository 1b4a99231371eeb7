"""The data files of an Iceberg table: the ``parquet`` variant's streaming encoder with the table's Parquet schema
(each column's Iceberg field id, timestamps in microseconds) and the batch's partition values as constant columns."""

from __future__ import annotations

import pyarrow as pa

from workers.sink import parquet


class IcebergEncoder(parquet.ParquetEncoder):
    """``ParquetEncoder`` writing ``arrow_schema`` (``table.Shape.arrow_schema``); ``constants`` names the value of
    every column the envelope has not (the ``p_<name>`` partition columns)."""

    def __init__(self, arrow_schema: pa.Schema, constants: dict[str, str], **row_groups: int) -> None:
        missing = [f.name for f in arrow_schema if f.name not in parquet.COLUMNS and f.name not in constants]
        if missing:
            raise ValueError(f"no value for column(s) {', '.join(missing)}")
        super().__init__(schema=arrow_schema, **row_groups)
        self._arrow_schema = arrow_schema
        self._constants = constants

    def _shaped(self, table: pa.Table) -> pa.Table:
        rows = table.num_rows
        columns = []
        for field in self._arrow_schema:
            if field.name in self._constants:
                columns.append(pa.repeat(pa.scalar(self._constants[field.name], field.type), rows))
            else:
                columns.append(table.column(field.name).cast(field.type))
        return pa.Table.from_arrays(columns, schema=self._arrow_schema)
