"""Reading back what was written, to find one event: the line (NDJSON) or row (Parquet) of an object holding it.

Bounded: an object is read as a stream and given up after ``max_bytes`` of its stored size, so a search costs at most
that much per object. Needs ``s3:GetObject`` on the integration's objects, which writing does not (the error is
returned to the caller, classified, never raised past it).
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import orjson

from workers.classify import classify
from workers.errors import Failure
from workers.settings import Settings
from workers.sink.clients import S3Config, client_for
from workers.sink.object_keys import variant_of

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Found:
    """Where an event is in an object: its line (1-based), and the line itself (None: not in the object)."""

    line_number: int | None
    line: bytes | None = None
    failure: Failure | None = None  # the object could not be read
    truncated: bool = False  # the object is larger than the bound: the rest was not read


def needle(event_id: str) -> bytes:
    """How an event's id appears in its canonical line (compact JSON, as the envelope writes it)."""
    return b'"event_id":' + orjson.dumps(event_id)


def line_with(lines: list[bytes], event_id: str) -> int | None:
    """The index of the line of ``event_id`` among canonical lines, else None (a substring test, then a parse)."""
    wanted = needle(event_id)
    for n, line in enumerate(lines):
        if wanted in line and orjson.loads(line).get("event_id") == event_id:
            return n
    return None


def find_in_object(cfg: S3Config, key: str, event_id: str, *, settings: Settings, max_bytes: int) -> Found:
    """Stream the object ``key`` and find the line (or Parquet row) of ``event_id``."""
    try:
        answer = client_for(cfg, settings=settings).get_object(Bucket=cfg.bucket, Key=key)
        body = answer["Body"]
        size = int(answer.get("ContentLength") or 0)
        if variant_of(key) in ("parquet", "iceberg"):
            if size > max_bytes:
                return Found(None, truncated=True)
            return _in_parquet(body.read(), event_id)
        return _in_ndjson(body, event_id, max_bytes)
    except Exception as exc:  # noqa: BLE001 - reported to the caller, classified
        return Found(None, failure=classify(exc))


def _in_ndjson(body: object, event_id: str, max_bytes: int) -> Found:
    wanted = needle(event_id)
    inflate = zlib.decompressobj(wbits=31)
    pending = b""
    number = 0
    read = 0
    while True:
        chunk = body.read(READ_CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            break
        read += len(chunk)
        pending += inflate.decompress(chunk)
        *complete, pending = pending.split(b"\n")
        for line in complete:
            number += 1
            if wanted in line and orjson.loads(line).get("event_id") == event_id:
                return Found(number, line)
        if read >= max_bytes:
            return Found(None, truncated=True)
    pending += inflate.flush()
    for line in pending.split(b"\n"):
        if line:
            number += 1
            if wanted in line and orjson.loads(line).get("event_id") == event_id:
                return Found(number, line)
    return Found(None)


def _in_parquet(data: bytes, event_id: str) -> Found:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    hits = pc.indices_nonzero(pc.equal(table.column("event_id"), event_id)).to_pylist()
    if not hits:
        return Found(None)
    row = table.slice(hits[0], 1).to_pylist()[0]
    return Found(hits[0] + 1, orjson.dumps(row, default=str))
