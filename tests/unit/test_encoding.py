"""NDJSON + gzip bodies: readable by the standard library and by zcat, one event per line, newline-terminated."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib
from pathlib import Path

import orjson
import pytest

from workers.sink.ndjson import ISAL_LEVEL, GzipNdjson, decode, encode


def lines_of(count: int, start: int = 0) -> list[bytes]:
    return [
        orjson.dumps({"event_id": f"evt-{i}", "type": "track", "properties": {"i": i, "city": "Zürich 🚀"}})
        for i in range(start, start + count)
    ]


def test_level_is_one() -> None:
    assert ISAL_LEVEL == 1


def test_encode_round_trips_through_stdlib_gzip() -> None:
    lines = lines_of(100)
    blob = encode(lines)
    assert blob[:2] == b"\x1f\x8b"  # gzip magic
    assert gzip.decompress(blob) == b"\n".join(lines) + b"\n"
    assert decode(blob) == lines


def test_single_line() -> None:
    blob = encode([b'{"a":1}'])
    assert gzip.decompress(blob) == b'{"a":1}\n'
    assert decode(blob) == [b'{"a":1}']


def test_empty_object_is_valid_gzip_with_no_lines() -> None:
    blob = encode([])
    assert gzip.decompress(blob) == b""
    assert decode(blob) == []


def test_streaming_many_chunks_with_empty_final_chunk() -> None:
    compressor = GzipNdjson()
    expected: list[bytes] = []
    parts: list[bytes] = []
    for chunk in range(200):
        lines = lines_of(50, start=chunk * 50)
        expected.extend(lines)
        parts.append(compressor.write(lines))
    parts.append(compressor.write([]))
    parts.append(compressor.finish())
    blob = b"".join(parts)

    assert gzip.decompress(blob) == b"".join(line + b"\n" for line in expected)
    assert decode(blob) == expected
    assert compressor.events == 10_000
    assert compressor.raw_bytes == sum(len(line) + 1 for line in expected)
    assert compressor.compressed_bytes == len(blob)
    assert len(blob) < compressor.raw_bytes / 3  # it does compress


def test_stream_equals_concatenation_of_chunks() -> None:
    chunks = [lines_of(3), lines_of(1, 3), lines_of(7, 4)]
    compressor = GzipNdjson()
    blob = b"".join(compressor.write(chunk) for chunk in chunks) + compressor.finish()
    assert decode(blob) == [line for chunk in chunks for line in chunk]
    assert decode(blob) == decode(encode(lines_of(11)))


def test_write_of_nothing_returns_nothing_and_counts_nothing() -> None:
    compressor = GzipNdjson()
    assert compressor.write([]) == b""
    assert (compressor.events, compressor.raw_bytes, compressor.compressed_bytes) == (0, 0, 0)
    blob = compressor.finish()
    assert gzip.decompress(blob) == b""
    assert compressor.compressed_bytes == len(blob)


def test_counters_before_finish() -> None:
    compressor = GzipNdjson()
    out = compressor.write([b"ab", b"cde"])
    assert compressor.events == 2
    assert compressor.raw_bytes == len(b"ab\ncde\n")
    assert compressor.compressed_bytes == len(out)


def test_unicode_lines_survive() -> None:
    lines = ['{"name":"テスト","emoji":"🚀","accent":"é"}'.encode()]
    assert decode(encode(lines)) == lines


def test_incompressible_data_round_trips() -> None:
    import os

    lines = [os.urandom(3000).hex().encode() for _ in range(50)]
    assert decode(encode(lines)) == lines


def test_stream_is_a_single_gzip_member_readable_by_zlib() -> None:
    blob = encode(lines_of(10))
    decompressor = zlib.decompressobj(wbits=31)
    data = decompressor.decompress(blob) + decompressor.flush()
    assert decompressor.eof
    assert decompressor.unused_data == b""
    assert data.count(b"\n") == 10


@pytest.mark.parametrize("bad", [[b"ok", b""], [b"\nleading"]])
def test_empty_elements_are_refused(bad: list[bytes]) -> None:
    compressor = GzipNdjson()
    with pytest.raises(ValueError, match="non-empty"):
        compressor.write(bad)
    assert compressor.events == 0


def test_elements_of_several_lines_are_taken_as_they_are_and_counted_by_line() -> None:
    compressor = GzipNdjson()
    blob = compressor.write([b'{"a":1}\n{"a":2}', b'{"a":3}']) + compressor.finish()
    assert compressor.events == 3
    assert decode(blob) == [b'{"a":1}', b'{"a":2}', b'{"a":3}']


def test_write_after_finish_and_double_finish_are_refused() -> None:
    compressor = GzipNdjson()
    compressor.write([b"x"])
    compressor.finish()
    with pytest.raises(ValueError):
        compressor.write([b"y"])
    with pytest.raises(ValueError):
        compressor.finish()


def test_decode_refuses_a_body_without_final_newline() -> None:
    with pytest.raises(ValueError, match="newline"):
        decode(gzip.compress(b'{"a":1}'))


@pytest.mark.skipif(shutil.which("zcat") is None, reason="zcat not installed")
def test_zcat_reads_the_object(tmp_path: Path) -> None:
    lines = lines_of(1000)
    compressor = GzipNdjson()
    blob = b"".join(compressor.write(lines[i : i + 100]) for i in range(0, 1000, 100)) + compressor.finish()
    path = tmp_path / "batch.json.gz"
    path.write_bytes(blob)
    result = subprocess.run(["zcat", str(path)], capture_output=True, check=True, timeout=30)
    assert result.stdout.splitlines() == lines
    assert result.stdout.endswith(b"\n")
