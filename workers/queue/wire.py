"""How task messages look on the broker: plain JSON written and read by orjson, ``signal.ingest`` bodies compressed.

Imported by every process that publishes or consumes (``workers.app``, ``workers.queue.producer``); ``install()``
registers the codecs in kombu once per process. The bytes on the wire stay standard, so any Celery producer still works:

- ``json``: the same JSON any producer writes, produced and parsed by orjson (kombu's decoder calls a Python hook for
  every object, ~5 per event). Celery decodes a protocol-2 body twice (the consumer strategy reads
  ``message.payload``, then the task's trace decodes the same bytes again); the decoder remembers the last body it
  parsed and answers the second call for that same bytes object from it, so each message is parsed once.
- ``zlib`` compression (kombu's ``application/x-gzip`` content, zlib format), done by isal at level 1: kombu's Redis
  transport stores a message as JSON text with the body in base64, and a worker that takes a message re-serialises
  all of it into the unacked hash; compressed, those steps and the broker's memory handle ~1/8 of the bytes, for
  about 1 µs of compression per event at the producer. ``INGEST_COMPRESSION`` is what producers pass to
  ``send_task``; uncompressed messages are read as before.
- kombu's Redis envelopes (the JSON around each message's base64 body) of plain JSON types are written by orjson
  (``workers.compat.write_kombu_redis_envelopes_with_orjson``): the same JSON, without the standard library's
  escaping of the base64 body, once at the producer.
- ``signal-prepared`` (content type ``application/x-signal-prepared``): ``signal.append`` only, so its lines travel
  as raw bytes instead of JSON strings the worker must unescape. The body is Celery's protocol-2 body
  ``[args, kwargs, embed]`` as JSON, in which the prepared message's ``hours`` maps each hour to the byte length of
  its NDJSON text, then a newline, then those texts one after the other, in the order of ``hours``. The decoder
  gives the task the same arguments with each hour's text as bytes (``decode_message`` reads both forms, and the
  JSON ``signal.append`` of any producer as before). The header is compact JSON, so its first newline ends it.
  Each text of 4 KB or more is one gzip member (``workers.store.elements.compress``), which the worker appends and
  Redis keeps as it is: such bodies are sent without kombu's compression, which would only compress them again
  (older bodies, compressed whole, are read as before).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from isal import isal_zlib
from kombu import compression, serialization

from workers import compat
from workers.errors import InvalidInput
from workers.events.message import COMPRESSED_TEXTS_SINCE
from workers.store import elements

JSON_CONTENT_TYPE = "application/json"
PREPARED = "signal-prepared"  # the serializer of signal.append (send_task / task option)
PREPARED_CONTENT_TYPE = "application/x-signal-prepared"
INGEST_COMPRESSION = "zlib"
_ZLIB_CONTENT_TYPE = "application/x-gzip"  # kombu's name for zlib-format bodies ("zlib", "gzip" are its aliases)
COMPRESSION_LEVEL = 1  # isal: ~1.5 GB/s, ratio ~8 on event batches (level 2 is twice as slow for ~1 % smaller)


class _DecodeOnce:
    """A decoder (``orjson.loads`` by default) that returns its previous result for the very same bytes object.

    Keeps a strong reference to the last body, so an identity match can only be that body (never a new object
    at a reused address). Bodies are immutable, and Celery only reads the first result before handing the second
    to the task, so sharing it is safe; one (body, result) pair is held until the next message.
    """

    __slots__ = ("_last", "_decode")

    def __init__(self, decode: Any = orjson.loads) -> None:
        self._last: tuple[object, Any] = (None, None)
        self._decode = decode

    def __call__(self, data: bytes | str) -> Any:
        last = self._last  # one read: safe against another thread replacing it meanwhile
        if last[0] is data:
            return last[1]
        result = self._decode(data)
        self._last = (data, result)
        return result


loads = _DecodeOnce()
dumps = orjson.dumps


class BadBody(InvalidInput):
    """A body of content type ``application/x-signal-prepared`` that cannot be read (kombu reports it as a
    ``DecodeError``; the consumer logs and drops the message, as for a body that is not JSON)."""


def dump_prepared(body: Any) -> bytes:
    """The ``signal-prepared`` body of Celery's ``(args, kwargs, embed)`` for ``signal.append(integration_id,
    message)``; each hour's text may be str (``encode_message``) or bytes (a retry of a decoded message, compressed
    or not). In a message of version 2, texts of ``elements.MIN_BYTES`` or more are compressed, the others sent as they
    are; a version 1 message (a retry of one queued by a producer of the version before, which ingest workers of that
    version may still take) keeps its texts as text."""
    try:
        (integration_id, message), kwargs, embed = body
        hours = message["hours"]
        texts = [t.encode() if type(t) is str else t for t in hours.values()]
        if _compressible(message):
            texts = [elements.compress(t) for t in texts]
        header = {**message, "hours": {hour: len(t) for hour, t in zip(hours, texts, strict=True)}}
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise BadBody(f"signal-prepared carries signal.append(integration_id, message) only: {exc}") from None
    return b"".join((dumps([[integration_id, header], kwargs, embed]), b"\n", *texts))


def _compressible(message: dict[str, Any]) -> bool:
    v = message.get("v")
    return type(v) is int and v >= COMPRESSED_TEXTS_SINCE


def worth_compressing(message: dict[str, Any]) -> bool:
    """Whether ``dump_prepared`` compresses a text of ``message``; when none is, the producer has kombu compress the
    whole body (its header of records and small texts), as before."""
    return _compressible(message) and any(len(t) >= elements.MIN_BYTES for t in message["hours"].values())


def load_prepared(data: bytes) -> list[Any]:
    """``[args, kwargs, embed]`` of a ``signal-prepared`` body, each hour's text as bytes. A header that cannot be
    read raises ``BadBody``. Texts whose lengths do not add up to the bytes after the header are given as None, so
    the task reports the message as one it cannot append (``BadMessage``, counted as ``ingest_failed``)."""
    if type(data) is str:
        data = data.encode()
    cut = data.find(b"\n")
    try:
        if cut < 0:
            raise ValueError("no newline after the header")
        body = orjson.loads(memoryview(data)[:cut])
        (_, message), _, _ = body
        lengths = message["hours"]
        if type(lengths) is not dict:
            raise ValueError("hours must map each hour to a byte length")
    except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
        raise BadBody(f"not a signal-prepared body: {str(exc)[:200]}") from None
    hours: dict[str, bytes | None] = {}
    start = cut + 1
    for hour, n in lengths.items():
        end = start + n if type(n) is int and n >= 0 else -1
        hours[hour] = data[start:end] if start <= end <= len(data) else None
        start = end if end >= 0 else len(data) + 1
    if start != len(data):
        hours = dict.fromkeys(lengths)
    message["hours"] = hours
    return body


compress = partial(isal_zlib.compress, level=COMPRESSION_LEVEL)
decompress = isal_zlib.decompress

_installed = False


def install() -> None:
    """Register the codecs in kombu, and let its Redis transport write its envelopes with orjson (idempotent)."""
    global _installed
    if _installed:
        return
    compat.write_kombu_redis_envelopes_with_orjson()
    serialization.register("json", dumps, loads, content_type=JSON_CONTENT_TYPE, content_encoding="utf-8")
    serialization.register(
        PREPARED,
        dump_prepared,
        _DecodeOnce(load_prepared),
        content_type=PREPARED_CONTENT_TYPE,
        content_encoding="binary",
    )
    compression.register(compress, decompress, _ZLIB_CONTENT_TYPE, aliases=["gzip", "zlib"])
    _installed = True
