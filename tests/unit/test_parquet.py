"""The Parquet variant's encoder: fixed schema, typed times, JSON text columns, bounded row groups, streamed bytes."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workers import clock
from workers.events import prepared
from workers.sink import athena, formats, ndjson, parquet
from workers.sink.parquet import COLUMNS, SCHEMA, ParquetEncoder


def envelopes(n: int, *, start: int = 0) -> list[bytes]:
    """Stored lines exactly as ingest writes them (the envelope's serialiser)."""
    events = []
    for i in range(start, start + n):
        e: dict[str, Any] = {
            "event_id": f"e-{i}",
            "type": ("track", "page", "identify")[i % 3],
            "anonymous_id": f"a-{i % 97}",
            "timestamp": f"2026-05-12T10:{i % 60:02d}:00.{i % 1000:03d}Z",
            "sent_at": "2026-05-12T10:59:59.000Z",
            "context": {"ip": "203.0.113.7", "page": {"url": f"https://shop.example/p/{i}"}, "ünï": "cödé"},
            "properties": {"order_id": i, "revenue": i * 1.5, "tags": ["a", None, True]},
        }
        if i % 3 == 0:
            e["event"] = "Order Completed"
        if i % 3 == 1:
            e["name"] = f"Page {i % 7}"
        if i % 3 == 2:
            e["traits"] = {"plan": "pro", "email": f"u{i}@example.com"}
            e["user_id"] = f"u-{i}"
        if i % 5 == 0:
            e["campaign_code"] = f"c-{i}"  # not part of the envelope: kept in extra
        events.append(e)
    result = prepared.prepare(
        events, "integ-1", received_at=datetime(2026, 5, 12, 10, 30, tzinfo=UTC), event_max_bytes=32 * 1024
    )
    assert not result.rejected
    return [line for lines in result.lines_by_hour.values() for line in lines]


def as_row(line: bytes) -> dict[str, Any]:
    """What a Parquet row of ``line`` must read back as."""
    event = orjson.loads(line)
    row: dict[str, Any] = {name: event.get(name) for name in parquet.STRING_COLUMNS + parquet.TAIL_COLUMNS}
    for name in parquet.TIME_COLUMNS:
        row[name] = datetime.fromisoformat(event[name]) if name in event else None
    for name in parquet.JSON_COLUMNS:
        row[name] = event.get(name)
    extra = {k: v for k, v in event.items() if k not in parquet.ENVELOPE_COLUMNS}
    row["extra"] = extra or None
    return row


def read_rows(blob: bytes) -> list[dict[str, Any]]:
    out = []
    for row in pq.read_table(io.BytesIO(blob)).to_pylist():
        for name in (*parquet.JSON_COLUMNS, "extra"):
            row[name] = None if row[name] is None else orjson.loads(row[name])
        out.append(row)
    return out


def encode_in_chunks(lines: list[bytes], chunk: int, **row_groups: int) -> tuple[bytes, ParquetEncoder, list[int]]:
    encoder = ParquetEncoder(**row_groups)
    sizes = []
    body = b""
    for i in range(0, len(lines), chunk):
        out = encoder.write(lines[i : i + chunk])
        sizes.append(len(out))
        body += out
    body += encoder.finish()
    return body, encoder, sizes


def test_every_event_reads_back_row_by_row() -> None:
    lines = envelopes(1_000)
    body, encoder, _ = encode_in_chunks(lines, 300)
    rows = read_rows(body)
    assert len(rows) == 1_000
    for line, row in zip(lines, rows, strict=True):
        assert row == as_row(line)
    assert encoder.events == 1_000
    assert encoder.raw_bytes == sum(len(line) + 1 for line in lines)
    assert encoder.compressed_bytes == len(body)
    assert body[:4] == b"PAR1" and body[-4:] == b"PAR1"


def test_the_schema_is_fixed_typed_and_zstd_compressed() -> None:
    body = parquet.encode(envelopes(10))
    file = pq.ParquetFile(io.BytesIO(body))
    assert file.schema_arrow.equals(SCHEMA)
    assert list(COLUMNS) == [name for name, _ in athena.PARQUET_COLUMNS]
    for name, kind in athena.PARQUET_COLUMNS:
        assert (kind == "timestamp") == (SCHEMA.field(name).type == pa.timestamp("ms", tz="UTC")), name
    meta = file.metadata
    for column in range(meta.num_columns):
        assert meta.row_group(0).column(column).compression == "ZSTD"
    parquet_types = {file.schema.column(i).name: file.schema.column(i).logical_type for i in range(len(COLUMNS))}
    assert (
        str(parquet_types["timestamp"]) == "Timestamp(isAdjustedToUTC=true, timeUnit=milliseconds, "
        "is_from_converted_type=false, force_set_converted_type=false)"
    )
    assert str(parquet_types["context"]) == "String"


def test_an_empty_schema_column_reads_as_null_and_other_fields_go_to_extra() -> None:
    line = orjson.dumps(
        {
            "event_id": "e",
            "type": "alias",
            "previous_id": "p",
            "user_id": "u",
            "received_at": "2026-05-12T10:00:00.000Z",
            "integration_id": "i",
            "extra": {"nested": 1},
            "kind": [1, 2],
        }
    )
    (row,) = read_rows(parquet.encode([line]))
    assert row["previous_id"] == "p" and row["timestamp"] is None and row["context"] is None
    assert row["extra"] == {"extra": {"nested": 1}, "kind": [1, 2]}


def test_a_value_that_does_not_fit_its_column_is_kept_in_extra() -> None:
    lines = [
        orjson.dumps({"event_id": "ok", "type": "track", "received_at": "2026-05-12T10:00:00.000Z"}),
        orjson.dumps(
            {
                "event_id": 7,
                "type": "track",
                "received_at": "2026-05-12T10:00:00.000Z",
                "timestamp": "yesterday",
                "sent_at": 5,
                "campaign": "x",
            }
        ),
    ]
    ok, odd = read_rows(parquet.encode(lines))
    assert ok["event_id"] == "ok" and ok["extra"] is None
    assert odd["event_id"] is None and odd["timestamp"] is None and odd["sent_at"] is None
    assert odd["received_at"] == datetime(2026, 5, 12, 10, tzinfo=UTC)
    assert odd["extra"] == {"campaign": "x", "event_id": 7, "timestamp": "yesterday", "sent_at": 5}


def test_row_groups_are_bounded_by_events_and_bytes() -> None:
    lines = envelopes(2_500)
    body, encoder, sizes = encode_in_chunks(lines, 100, row_group_events=1_000)
    file = pq.ParquetFile(io.BytesIO(body))
    assert [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)] == [1_000, 1_000, 500]
    assert encoder.row_groups == 3
    # bytes leave the encoder as each row group is written, not all at the end
    assert [i for i, size in enumerate(sizes) if size > 0] == [0, 9, 19]
    size = sum(len(line) + 1 for line in lines[:300])
    body, _, _ = encode_in_chunks(lines, 100, row_group_bytes=size)
    file = pq.ParquetFile(io.BytesIO(body))
    assert {file.metadata.row_group(i).num_rows for i in range(file.num_row_groups - 1)} == {300}
    assert read_rows(body) == [as_row(line) for line in lines]


def test_write_and_finish_misuse() -> None:
    encoder = ParquetEncoder()
    assert encoder.write([]) == b""
    encoder.write(envelopes(1))
    encoder.finish()
    with pytest.raises(ValueError):
        encoder.write(envelopes(1))
    with pytest.raises(ValueError):
        encoder.finish()
    with pytest.raises(ValueError):
        ParquetEncoder(row_group_events=0)
    with pytest.raises(ValueError):
        parquet.encode([b"[1, 2]"])


def test_encoders_per_variant() -> None:
    gz = formats.encoder_for("default")
    pqt = formats.encoder_for("parquet")
    assert isinstance(gz, ndjson.GzipNdjson) and gz.content_type == "application/x-ndjson"
    assert isinstance(pqt, ParquetEncoder) and pqt.content_type == "application/vnd.apache.parquet"
    with pytest.raises(ValueError):
        formats.encoder_for("orc")


def test_decode_reads_what_encode_wrote() -> None:
    lines = envelopes(3)
    rows = parquet.decode(parquet.encode(lines))
    assert [r["event_id"] for r in rows] == ["e-0", "e-1", "e-2"]
    assert rows[0]["received_at"] == clock.from_ms(clock.to_ms(datetime(2026, 5, 12, 10, 30, tzinfo=UTC)))
