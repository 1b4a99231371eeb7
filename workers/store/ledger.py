"""The object ledger: one record per object written, kept for ``SIGNAL_LEDGER_RETENTION_S``.

The uploader packs the record (``pack``) and ``ack.lua`` appends it in the step that deletes the delivered batch, so
every object is recorded exactly once (an ack run again finds the batch gone and records nothing). The records of one
integration and UTC day are the elements of one Redis list (``keys.ledger``), newest last: a list packs small elements
tightly, where a string grown by APPEND keeps up to as much room again as it holds.

Compact, because a busy integration writes an object a minute: what every object of a day shares (bucket, prefix,
format) is written once, as a header record, whenever it changes (``ack.lua`` compares it with the day's last header,
``keys.ledger_head``); an object record holds its numbers, its batch uuid and its ETag in binary (16 bytes each), and
its key is rebuilt from the header: ``<prefix>YYYY/MM/DD/HH/<uuid><suffix>``, or ``<prefix>dt=YYYY-MM-DD/hr=HH/...``
for the ``hive`` date layout. A key that follows neither is kept whole. About 60 bytes per object of those layouts.

Records, little-endian, each ``u16 length | u8 type | body``:

- ``H`` header: u8 flags (1: Parquet, 2: the hive date layout) | u8 length, bucket | u8 length, prefix
- ``O`` object: varints (LEB128) of events | raw bytes | object bytes | written, ms since the day began | ms from its
  first event's append to written | from its last | upload ms | attempts | hours from its partition hour to the hour
  it was written (zigzag) | 16 bytes batch uuid | ETag: u8 1, 16 bytes MD5, varint parts when it has that form, else
  u8 0, u8 length and its text
- ``K`` object with its key kept whole: the ``O`` fields, then u16 length and the key

The hour a record is written in is the hour the delivery overview counts the object in, so the ledger's sums per hour
are the overview's ``objects``, ``delivered`` and ``bytes``.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from workers import clock
from workers.store import keys

MAX_LIMIT = 1000
SUFFIXES = (".json.gz", ".parquet")  # by the header's flag bit 0
_LEN = struct.Struct("<H")
_MD5_ETAG = re.compile(r"([0-9a-f]{32})(?:-([0-9]{1,5}))?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _framed(kind: bytes, body: bytes) -> bytes:
    return _LEN.pack(len(body) + 1) + kind + body


def _short(text: str) -> bytes:
    data = text.encode()[:255]
    return bytes([len(data)]) + data


def _hour_number(hour: str) -> int:
    return int((datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=UTC) - _EPOCH).total_seconds()) // 3600


def _hour_text(number: int) -> str:
    return clock.hour_of_ms(number * 3_600_000)


def _varints(*numbers: int) -> bytes:
    out = bytearray()
    for n in numbers:
        while n >= 0x80:
            out.append((n & 0x7F) | 0x80)
            n >>= 7
        out.append(n)
    return bytes(out)


def _read_varints(buf: bytes, pos: int, count: int) -> tuple[list[int], int]:
    values = []
    for _ in range(count):
        n, shift = 0, 0
        while True:
            byte = buf[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        values.append(n)
    return values, pos


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def _rebuilt(prefix: str, hour: str, batch_id: str, suffix: str, hive: bool) -> str:
    """The key ``workers.sink.object_keys.object_key`` gives these parts."""
    if hive:
        return f"{prefix}dt={hour[0:4]}-{hour[4:6]}-{hour[6:8]}/hr={hour[8:10]}/{batch_id}{suffix}"
    return f"{prefix}{hour[0:4]}/{hour[4:6]}/{hour[6:8]}/{hour[8:10]}/{batch_id}{suffix}"


def pack(rec: Record, *, prefix: str) -> tuple[bytes, bytes]:
    """The header ``rec`` belongs under (bucket, ``prefix``, format) and its object record, as ``ack.lua`` appends
    them (the header only when it differs from the day's last one)."""
    parquet = rec.key.endswith(SUFFIXES[1])
    try:
        batch = uuid.UUID(rec.batch_id)
    except ValueError:
        batch = uuid.UUID(int=0)
    hive = _rebuilt(prefix, rec.hour, str(batch), SUFFIXES[parquet], True) == rec.key
    whole = not hive and _rebuilt(prefix, rec.hour, str(batch), SUFFIXES[parquet], False) != rec.key
    header = _framed(b"H", bytes([parquet | hive << 1]) + _short(rec.bucket) + _short(prefix))
    day_start = rec.written_ms - rec.written_ms % 86_400_000
    fields = _varints(
        rec.events,
        rec.raw_bytes,
        rec.bytes,
        rec.written_ms - day_start,
        max(rec.written_ms - rec.first_ms, 0),
        max(rec.written_ms - rec.last_ms, 0),
        max(rec.upload_ms, 0),
        rec.attempts,
        _zigzag(rec.written_ms // 3_600_000 - _hour_number(rec.hour)),
    )
    fields += batch.bytes
    md5 = _MD5_ETAG.fullmatch(rec.etag)
    etag = (
        bytes([1]) + bytes.fromhex(md5.group(1)) + _varints(int(md5.group(2) or 0))
        if md5 is not None
        else bytes([0]) + _short(rec.etag)
    )
    body = fields + etag
    if whole:
        key = rec.key.encode()
        return header, _framed(b"K", body + _LEN.pack(len(key)) + key)
    return header, _framed(b"O", body)


def unpack(blob: bytes, day: str) -> Iterator[Record]:
    """The object records of one day's elements (joined), in the order they were written (``day``: YYYYMMDD, the
    day they were written, which their times count from)."""
    day_ms = clock.to_ms(datetime.strptime(day, "%Y%m%d").replace(tzinfo=UTC))
    pos = 0
    bucket, prefix, suffix, hive = "", "", SUFFIXES[0], False
    while pos + _LEN.size < len(blob):
        (length,) = _LEN.unpack_from(blob, pos)
        start = pos + _LEN.size
        kind, body = blob[start : start + 1], blob[start + 1 : start + length]
        pos = start + length
        if len(body) < length - 1:
            return  # each record is one element: a torn one cannot happen; stop rather than misread
        if kind == b"H":
            suffix, hive = SUFFIXES[body[0] & 1], bool(body[0] & 2)
            bucket = body[2 : 2 + body[1]].decode()
            at = 2 + body[1]
            prefix = body[at + 1 : at + 1 + body[at]].decode()
            continue
        numbers, at = _read_varints(body, 0, 9)
        events, raw, size, written_in_day, first_d, last_d, upload_ms, attempts, hour_back = numbers
        batch = body[at : at + 16]
        at += 16
        if body[at] == 1:
            etag = body[at + 1 : at + 17].hex()
            (parts,), at = _read_varints(body, at + 17, 1)
            etag += f"-{parts}" if parts else ""
        else:
            etag = body[at + 2 : at + 2 + body[at + 1]].decode()
            at += 2 + body[at + 1]
        written = day_ms + written_in_day
        hour_n = written // 3_600_000 - _unzigzag(hour_back)
        hour = _hour_text(hour_n)
        if kind == b"K":
            (key_len,) = _LEN.unpack_from(body, at)
            key = body[at + 2 : at + 2 + key_len].decode()
        else:
            key = _rebuilt(prefix, hour, str(uuid.UUID(bytes=batch)), suffix, hive)
        yield Record(
            key,
            hour,
            events,
            raw,
            size,
            written - first_d,
            written - last_d,
            written,
            upload_ms,
            attempts,
            etag,
            bucket,
        )


def days_between(since_ms: int, until_ms: int) -> list[str]:
    """The UTC days ``YYYYMMDD`` from the one holding ``since_ms`` to the one holding ``until_ms``, newest first."""
    first, last = since_ms // 86_400_000, until_ms // 86_400_000
    return [clock.hour_of_ms(d * 86_400_000)[:8] for d in range(last, first - 1, -1)]


def day_of(ms: int) -> str:
    return clock.hour_of_ms(ms)[:8]


@dataclass(frozen=True)
class Page:
    records: list[Record]
    cursor: str | None  # where the next page starts; None: nothing more in the window


def read(
    r: redis.Redis, integration_id: str, *, since_ms: int, until_ms: int, cursor: str | None = None, limit: int = 100
) -> Page:
    """Records written from ``since_ms`` to ``until_ms``, newest first, ``limit`` at a time. The cursor names the day
    and how many of its records in the window (newest first) were already returned."""
    limit = max(1, min(limit, MAX_LIMIT))
    days = days_between(since_ms, until_ms)
    skip_day, skip = cursor.split(".", 1) if cursor else (None, "0")
    if skip_day is not None:
        days = [d for d in days if d <= skip_day]
    out: list[Record] = []
    for n, day in enumerate(days):
        blob = b"".join(r.lrange(keys.ledger(integration_id, day), 0, -1))
        records = [rec for rec in reversed(list(unpack(blob, day))) if since_ms <= rec.written_ms <= until_ms]
        offset = int(skip) if day == skip_day else 0
        room = limit - len(out)
        out += records[offset : offset + room]
        if offset + room < len(records):
            return Page(out, f"{day}.{offset + room}")
        if len(out) == limit:
            return Page(out, f"{days[n + 1]}.0" if n + 1 < len(days) else None)
    return Page(out, None)


def records_between(r: redis.Redis, integration_id: str, since_ms: int, until_ms: int) -> list[Record]:
    """Every record written from ``since_ms`` to ``until_ms``, oldest first (one round trip)."""
    days = days_between(since_ms, until_ms)
    pipe = r.pipeline(transaction=False)
    for day in days:
        pipe.lrange(keys.ledger(integration_id, day), 0, -1)
    found = zip(days, pipe.execute(), strict=True)
    return sorted(
        (rec for day, got in found for rec in unpack(b"".join(got), day) if since_ms <= rec.written_ms <= until_ms),
        key=lambda rec: rec.written_ms,
    )
