"""Parquet objects (the ``parquet`` variant): the fixed schema and a streaming encoder with bounded row groups.

Columns, in the envelope's canonical order, one row per event:

- ``event_id``, ``type``, ``event``, ``name``, ``anonymous_id``, ``user_id``, ``group_id``, ``previous_id``:
  ``string``;
- ``timestamp``, ``received_at``, ``sent_at``: ``timestamp[ms, UTC]`` (Parquet INT64 TIMESTAMP(MILLIS, UTC), Athena
  ``timestamp``), exactly the envelope's millisecond times;
- ``context``, ``properties``, ``traits``: ``string`` holding the object as compact JSON text (their shape differs per
  event and source; query them with ``json_extract_scalar``);
- ``source_id``, ``integration_id``: ``string``;
- ``extra``: ``string``, a JSON object of every other top-level field of the event (null when there is none), so
  nothing an event carried is lost. A value that does not fit its column (which validated envelopes never have) is
  kept there too, under its own name, and its column is null.

A missing field is null. Objects are zstd-compressed; low-cardinality columns are dictionary-encoded.

Memory: lines arrive in chunks (``buffer.read_batch``); every ``RECORD_BATCH_EVENTS`` lines of a chunk become one
Arrow record batch (their parsed JSON is dropped as soon as the columns are built). Record batches accumulate until
``row_group_events`` events or ``row_group_bytes`` bytes of event JSON, then are written as one row group and freed;
the bytes the writer produced are handed back to the caller (the uploader streams them into multipart parts). So a
worker holds about one row group and one chunk, whatever the batch size.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

CONTENT_TYPE: Final = "application/vnd.apache.parquet"
COMPRESSION: Final = "zstd"
COMPRESSION_LEVEL: Final = 3
ROW_GROUP_EVENTS: Final = 100_000
ROW_GROUP_BYTES: Final = 16 * 1024 * 1024  # of event JSON (uncompressed, as buffered)
# Lines turned into Arrow at a time: bounds the Python objects alive while a chunk is converted.
RECORD_BATCH_EVENTS: Final = 2_048

STRING_COLUMNS: tuple[str, ...] = (
    "event_id",
    "type",
    "event",
    "name",
    "anonymous_id",
    "user_id",
    "group_id",
    "previous_id",
)
TIME_COLUMNS: tuple[str, ...] = ("timestamp", "received_at", "sent_at")
JSON_COLUMNS: tuple[str, ...] = ("context", "properties", "traits")
TAIL_COLUMNS: tuple[str, ...] = ("source_id", "integration_id")
EXTRA_COLUMN: Final = "extra"
ENVELOPE_COLUMNS: tuple[str, ...] = STRING_COLUMNS + TIME_COLUMNS + JSON_COLUMNS + TAIL_COLUMNS
COLUMNS: tuple[str, ...] = ENVELOPE_COLUMNS + (EXTRA_COLUMN,)
TIME_TYPE: Final = pa.timestamp("ms", tz="UTC")
SCHEMA: Final = pa.schema(
    [(name, TIME_TYPE if name in TIME_COLUMNS else pa.string()) for name in COLUMNS],
    metadata={"signal.envelope": "canonical envelope; context/properties/traits/extra as JSON text"},
)
DICTIONARY_COLUMNS: tuple[str, ...] = (
    "type",
    "event",
    "name",
    "anonymous_id",
    "user_id",
    "group_id",
    "previous_id",
    "source_id",
    "integration_id",
)

_ENVELOPE_KEYS: Final = frozenset(ENVELOPE_COLUMNS)
_TEXT_COLUMNS: Final = STRING_COLUMNS + TIME_COLUMNS + TAIL_COLUMNS  # read as strings from the JSON
_loads = orjson.loads
_dumps = orjson.dumps


class _Sink:
    """The file the Parquet writer writes to: it keeps only the bytes not yet taken by the uploader."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._pending += view
        self._position += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = bytes(self._pending)
        self._pending.clear()
        return out


def _json_text(value: Any) -> str | None:
    return None if value is None else _dumps(value).decode("utf-8")


def record_batch(lines: list[bytes]) -> pa.RecordBatch:
    """One record batch of ``SCHEMA`` from NDJSON event lines (each a JSON object)."""
    texts: dict[str, list[Any]] = {name: [] for name in _TEXT_COLUMNS}
    jsons: dict[str, list[Any]] = {name: [] for name in JSON_COLUMNS}
    extras: list[dict[str, Any] | None] = []
    text_appends = [(name, texts[name].append) for name in _TEXT_COLUMNS]
    json_appends = [(name, jsons[name].append) for name in JSON_COLUMNS]
    envelope_keys = _ENVELOPE_KEYS
    for line in lines:
        event = _loads(line)
        if not isinstance(event, dict):
            raise ValueError("every line of a batch must be a JSON object")
        get = event.get
        for name, append in text_appends:
            append(get(name))
        for name, append in json_appends:
            value = get(name)
            # decoded at once: orjson's output buffer is far larger than its text, keeping it would hold ~4 KiB
            append(None if value is None else _dumps(value).decode("utf-8"))
        extras.append(
            None if envelope_keys.issuperset(event) else {k: v for k, v in event.items() if k not in envelope_keys}
        )
    arrays: dict[str, pa.Array] = {}
    for name in STRING_COLUMNS + TAIL_COLUMNS:
        arrays[name] = _strings(name, texts[name], extras)
    for name in TIME_COLUMNS:
        arrays[name] = _times(name, texts[name], extras)
    for name in JSON_COLUMNS:
        arrays[name] = pa.array(jsons[name], pa.string())
    arrays[EXTRA_COLUMN] = pa.array([None if e is None else _json_text(e) for e in extras], pa.string())
    return pa.RecordBatch.from_arrays([arrays[name] for name in COLUMNS], schema=SCHEMA)


def _strings(name: str, values: list[Any], extras: list[dict[str, Any] | None]) -> pa.Array:
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array(_keep_misfits(name, values, extras, lambda v: isinstance(v, str)), pa.string())


def _times(name: str, values: list[Any], extras: list[dict[str, Any] | None]) -> pa.Array:
    try:
        return pa.array(values, pa.string()).cast(TIME_TYPE)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_time_or_none(v) for v in _keep_misfits(name, values, extras, _is_time)], TIME_TYPE)


def _is_time(value: Any) -> bool:
    return _time_or_none(value) is not None


def _time_or_none(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return pa.scalar(value, pa.string()).cast(TIME_TYPE).as_py()
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return None


def _keep_misfits(name: str, values: list[Any], extras: list[dict[str, Any] | None], fits: Any) -> list[Any]:
    """``values`` with every value that does not fit its column moved into its row's ``extra`` (under ``name``)."""
    out: list[Any] = []
    for row, value in enumerate(values):
        if value is None or fits(value):
            out.append(value)
            continue
        extras[row] = {**(extras[row] or {}), name: value}
        out.append(None)
    return out


class ParquetEncoder:
    """Streaming encoder: ``write`` elements a few at a time, then ``finish`` once; concatenate everything returned.

    ``events`` counts lines written, ``raw_bytes`` their NDJSON size (lines plus newlines, as the gzip variant
    counts), ``compressed_bytes`` the object bytes returned so far (the full object size after ``finish``).
    """

    content_type = CONTENT_TYPE

    def __init__(
        self,
        *,
        row_group_events: int = ROW_GROUP_EVENTS,
        row_group_bytes: int = ROW_GROUP_BYTES,
        schema: pa.Schema = SCHEMA,
    ) -> None:
        if row_group_events <= 0 or row_group_bytes <= 0:
            raise ValueError("row groups must hold at least one event and one byte")
        self._row_group_events = row_group_events
        self._row_group_bytes = row_group_bytes
        self._sink = _Sink()
        # the file's footer once finished (its statistics describe an Iceberg data file)
        self.metadata: list[pq.FileMetaData] = []
        self._writer = pq.ParquetWriter(
            self._sink,
            schema,
            metadata_collector=self.metadata,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            use_dictionary=list(DICTIONARY_COLUMNS),
            write_statistics=True,
        )
        self._pending: list[pa.RecordBatch] = []
        self._pending_events = 0
        self._pending_bytes = 0
        self._finished = False
        self.events = 0
        self.raw_bytes = 0
        self.compressed_bytes = 0
        self.row_groups = 0

    def write(self, elements: list[bytes]) -> bytes:
        """Add ``elements`` (each compact JSON objects, one event each, joined by newlines: lines are split as they
        are parsed); returns the object bytes available so far."""
        if self._finished:
            raise ValueError("write after finish")
        lines = [line for element in elements for line in element.split(b"\n")]
        if not lines:
            return b""
        size = sum(map(len, lines)) + len(lines)
        for start in range(0, len(lines), RECORD_BATCH_EVENTS):
            self._pending.append(record_batch(lines[start : start + RECORD_BATCH_EVENTS]))
        self._pending_events += len(lines)
        self._pending_bytes += size
        self.events += len(lines)
        self.raw_bytes += size
        if self._pending_events >= self._row_group_events or self._pending_bytes >= self._row_group_bytes:
            self._write_row_group()
        return self._take()

    def finish(self) -> bytes:
        """The last row group and the footer; the encoder cannot be used afterwards."""
        if self._finished:
            raise ValueError("finish called twice")
        self._finished = True
        self._write_row_group()
        self._writer.close()
        return self._take()

    def _write_row_group(self) -> None:
        if not self._pending:
            return
        table = self._shaped(pa.Table.from_batches(self._pending, schema=SCHEMA))
        self._pending = []
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.row_groups += 1
        self._pending_events = 0
        self._pending_bytes = 0

    def _shaped(self, table: pa.Table) -> pa.Table:
        """A row group of ``SCHEMA`` as the writer's schema wants it (the same here; see ``IcebergEncoder``)."""
        return table

    def _take(self) -> bytes:
        out = self._sink.take()
        self.compressed_bytes += len(out)
        return out


def encode(lines: list[bytes], **row_groups: int) -> bytes:
    """One Parquet object holding ``lines``."""
    encoder = ParquetEncoder(**row_groups)
    return encoder.write(lines) + encoder.finish()


def decode(blob: bytes) -> list[dict[str, Any]]:
    """The rows of a Parquet object as dicts (pyarrow types: timestamps are aware datetimes)."""
    import io

    return pq.read_table(io.BytesIO(blob)).to_pylist()
