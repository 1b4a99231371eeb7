"""The object ledger: one record per object written, kept for ``SIGNAL_LEDGER_RETENTION_S``.

The uploader packs the record (``pack``) and ``ack.lua`` appends it in the step that deletes the delivered batch, so
every object is recorded exactly once (an ack run again finds the batch gone and records nothing). Records of the
objects confirmed in one UTC hour are packed one after another into one Redis string per integration and hour
(``keys.ledger``), so an object costs its record and nothing per key: 66 bytes plus its key, ETag and bucket. The
hour is the one the object was written in, the hour the delivery overview counts it in, so the ledger's sums per hour
are the overview's ``objects``, ``delivered`` and ``bytes``.

A record, little-endian (``struct`` in Lua and in Python)::

    u16 length of the rest | u32 events | u64 raw bytes | u64 object bytes | u64 first append ms | u64 last append ms
    | u64 written ms | u32 upload ms | u16 attempts | 10 bytes partition hour YYYYMMDDHH | u16 key length | key
    | u8 etag length | etag | u8 bucket length | bucket (where it was written: the config may change since)
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from workers import clock
from workers.store import keys

_HEAD = struct.Struct("<IQQQQQIH10sH")
_LEN = struct.Struct("<H")
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Record:
    """One object as the ledger knows it."""

    key: str
    hour: str  # the partition hour of its events, YYYYMMDDHH
    events: int
    raw_bytes: int  # uncompressed NDJSON lines
    bytes: int  # the object's size
    first_ms: int  # when the batch's first event was appended
    last_ms: int  # when its last event was appended
    written_ms: int  # when S3 confirmed the object
    upload_ms: int  # the successful upload attempt
    attempts: int  # upload attempts (1: the first one succeeded)
    etag: str
    bucket: str = ""

    @property
    def batch_id(self) -> str:
        name = self.key.rsplit("/", 1)[-1]
        return name.split(".", 1)[0]

    def view(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "key": self.key,
            "batch_id": self.batch_id,
            "hour": self.hour,
            "events": self.events,
            "raw_bytes": self.raw_bytes,
            "bytes": self.bytes,
            "first_event_at": clock.iso(clock.from_ms(self.first_ms)),
            "last_event_at": clock.iso(clock.from_ms(self.last_ms)),
            "written_at": clock.iso(clock.from_ms(self.written_ms)),
            "upload_s": self.upload_ms / 1000,
            "attempts": self.attempts,
            "etag": self.etag,
            "copy_command": f"aws s3 cp s3://{self.bucket}/{self.key} .",
        }


def pack(rec: Record) -> bytes:
    """A record as ``ack.lua`` appends it."""
    key, etag, bucket = rec.key.encode(), rec.etag.encode()[:255], rec.bucket.encode()[:255]
    body = (
        _HEAD.pack(
            rec.events,
            rec.raw_bytes,
            rec.bytes,
            rec.first_ms,
            rec.last_ms,
            rec.written_ms,
            rec.upload_ms,
            rec.attempts,
            rec.hour.encode(),
            len(key),
        )
        + key
        + bytes([len(etag)])
        + etag
        + bytes([len(bucket)])
        + bucket
    )
    return _LEN.pack(len(body)) + body


def unpack(blob: bytes) -> Iterator[Record]:
    """The records of one hour's string, in the order they were written."""
    pos = 0
    while pos + _LEN.size <= len(blob):
        (length,) = _LEN.unpack_from(blob, pos)
        start = pos + _LEN.size
        body = blob[start : start + length]
        pos = start + length
        if len(body) < length:
            return  # a torn tail cannot happen (APPEND is atomic); stop rather than misread
        events, raw, size, first, last, written, upload_ms, attempts, hour, key_len = _HEAD.unpack_from(body)
        at = _HEAD.size
        key = body[at : at + key_len].decode()
        at += key_len
        etag = body[at + 1 : at + 1 + body[at]].decode()
        at += 1 + body[at]
        bucket = body[at + 1 : at + 1 + body[at]].decode() if at < len(body) else ""
        yield Record(key, hour.decode(), events, raw, size, first, last, written, upload_ms, attempts, etag, bucket)


def hours_between(since_ms: int, until_ms: int) -> list[str]:
    """The UTC hours ``YYYYMMDDHH`` from the one holding ``since_ms`` to the one holding ``until_ms``, newest first."""
    first, last = since_ms // 3_600_000, until_ms // 3_600_000
    return [clock.hour_of_ms(h * 3_600_000) for h in range(last, first - 1, -1)]


@dataclass(frozen=True)
class Page:
    records: list[Record]
    cursor: str | None  # where the next page starts; None: nothing more in the window


def read(
    r: redis.Redis, integration_id: str, *, since_ms: int, until_ms: int, cursor: str | None = None, limit: int = 100
) -> Page:
    """Records written from ``since_ms`` to ``until_ms``, newest first, ``limit`` at a time. The cursor names the hour
    and how many of its records (newest first) were already returned."""
    limit = max(1, min(limit, MAX_LIMIT))
    hours = hours_between(since_ms, until_ms)
    skip_hour, skip = cursor.split(".", 1) if cursor else (None, "0")
    if skip_hour is not None:
        hours = [h for h in hours if h <= skip_hour]
    out: list[Record] = []
    for hour in hours:
        blob = r.get(keys.ledger(integration_id, hour))
        records = [rec for rec in reversed(list(unpack(blob or b""))) if since_ms <= rec.written_ms <= until_ms]
        offset = int(skip) if hour == skip_hour else 0
        room = limit - len(out)
        out += records[offset : offset + room]
        if offset + room < len(records):
            return Page(out, f"{hour}.{offset + room}")
        if len(out) == limit:
            later = hours[hours.index(hour) + 1 :]
            return Page(out, f"{later[0]}.0" if later else None)
    return Page(out, None)


def records_of_hours(r: redis.Redis, integration_id: str, hours: list[str]) -> list[Record]:
    """Every record written in these hours, oldest first (one round trip)."""
    pipe = r.pipeline(transaction=False)
    for hour in hours:
        pipe.get(keys.ledger(integration_id, hour))
    return sorted((rec for blob in pipe.execute() for rec in unpack(blob or b"")), key=lambda rec: rec.written_ms)
